"""Spark benchmark: leads/s on a standalone Spark cluster next to the local batch, same input,
same run.

    python bench/spark.py [--leads 200000] [--runs 3] [--cores 2] [--keep DIR]

Writes ``--leads`` generated leads (qualify.synthetic, 1 % with a bad value) to one Parquet
file (row groups of 10,000, so Spark reads them as several partitions), starts a standalone
cluster on 127.0.0.1 (a master and one worker of ``--cores`` cores, from pyspark's
``bin/spark-class``, one executor per core), then runs ``--runs`` rounds of, in this order:
  local      `qualify batch LEADS --out OUT.parquet --workers CORES` (a child process);
  spark cli  `qualify batch LEADS --out OUT --spark spark://...` (a child process: its own
             driver; the time it prints covers counting, scoring, writing the output and the
             errors, and the summary's aggregation, not the JVM's start);
  spark      ``qualify.spark.score`` of the file, written to Spark's ``noop`` sink by a
             driver kept across rounds: scoring alone (and the row count for ``line``).
It prints each run and the median leads/s of each, the ratios to local, and leads/s per
core, which the README's estimate for 100 million leads on N executors starts from. The
figures are for this machine: the cluster's daemons and driver share its cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qualify.synthetic import generate  # noqa: E402
from tests.service.helpers import free_port  # noqa: E402
from tests.spark.conftest import Cluster  # noqa: E402

AS_OF = dt.date(2026, 1, 1)
START = "import sys; from qualify.cli import main; sys.exit(main())"
RATE = re.compile(r"in ([0-9.]+) s \(([0-9,]+) leads/s")


def write_leads(path: Path, n: int) -> None:
    """``n`` generated leads as Parquet, every value as text (as a CRM export has them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(generate(n, seed=17, bad_rate=0.01))
    names = sorted({k for r in rows for k in r})

    def text(v: Any) -> str | None:
        if v is None:
            return None
        return ";".join(map(str, v)) if isinstance(v, list) else str(v)

    table = pa.table({c: pa.array([text(r.get(c)) for r in rows], pa.string()) for c in names})
    pq.write_table(table, path, row_group_size=10_000)


def command(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``qualify ARGS``: (wall seconds of the whole command, the seconds it printed)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", START, *args], capture_output=True,
                          text=True, env=env, check=False)
    wall = time.perf_counter() - started
    match = RATE.search(done.stdout)
    if done.returncode not in (0, 1) or match is None:
        sys.exit(f"qualify {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, float(match.group(1))


def driver(master: str, cores: int) -> Any:
    """A SparkSession on the bench's cluster: one executor per core, 1 MB splits."""
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName("qualify bench")
            .config("spark.executor.cores", "1").config("spark.executor.memory", "1g")
            .config("spark.ui.enabled", "false").config("spark.log.level", "ERROR")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.files.maxPartitionBytes", "1m")
            .config("spark.cores.max", str(cores)).getOrCreate())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the files here")
    a = parser.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="qualify-spark-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    leads = work / "leads.parquet"
    write_leads(leads, a.leads)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "SPARK_LOG_DIR": str(work / "logs"), "SPARK_NO_DAEMONIZE": "1"}
    os.environ.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    (work / "logs").mkdir(exist_ok=True)
    port, ui = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", work / "logs", env)
    print(f"{a.leads:,} leads in {leads} ({leads.stat().st_size / 1e6:.1f} MB); "
          f"{os.cpu_count()} cores here; local --workers {a.cores}, cluster of 1 worker with "
          f"{a.cores} cores (1 executor per core)")
    results: dict[str, list[float]] = {"local": [], "spark cli": [], "spark": []}
    walls: dict[str, list[float]] = {"local": [], "spark cli": []}
    try:
        cluster.start("master", "org.apache.spark.deploy.master.Master", "--host",
                      "127.0.0.1", "--port", str(port), "--webui-port", str(ui))
        cluster.worker("worker-1", a.cores)
        cluster.wait_workers(1)
        from qualify.spark import score

        spark = driver(cluster.url, a.cores)
        for run in range(1, a.runs + 1):
            wall, secs = command(["batch", str(leads), "--out", str(work / "local.parquet"),
                                  "--as-of", AS_OF.isoformat(), "--workers", str(a.cores)],
                                 env)
            results["local"].append(a.leads / secs)
            walls["local"].append(wall)
            spark.stop()  # one driver at a time: the cli's needs the cluster's cores
            wall, secs = command(["batch", str(leads), "--out", str(work / "spark.parquet"),
                                  "--as-of", AS_OF.isoformat(), "--spark", cluster.url], env)
            results["spark cli"].append(a.leads / secs)
            walls["spark cli"].append(wall)
            spark = driver(cluster.url, a.cores)
            df = spark.read.parquet(str(leads))
            # a first, untimed pass starts the executors' Python workers and engines
            score(df, as_of=AS_OF).write.format("noop").mode("overwrite").save()
            started = time.perf_counter()
            score(df, as_of=AS_OF).write.format("noop").mode("overwrite").save()
            results["spark"].append(a.leads / (time.perf_counter() - started))
            print(f"run {run}: local {results['local'][-1]:,.0f} leads/s "
                  f"(command {walls['local'][-1]:.1f} s); spark cli "
                  f"{results['spark cli'][-1]:,.0f} leads/s (command "
                  f"{walls['spark cli'][-1]:.1f} s); spark scoring "
                  f"{results['spark'][-1]:,.0f} leads/s", flush=True)
        spark.stop()
    finally:
        cluster.stop()
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    local = statistics.median(results["local"])
    print(f"\nmedian of {a.runs} runs, {a.leads:,} leads, {a.cores} cores each:")
    for name, rates in results.items():
        rate = statistics.median(rates)
        print(f"  {name:<10} {rate:>9,.0f} leads/s  {rate / a.cores:>8,.0f} per core  "
              f"{rate / local:6.2f} x local  (runs: "
              f"{', '.join(f'{r:,.0f}' for r in rates)})")
    per_core = statistics.median(results["spark"]) / a.cores
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          "(other work on the machine lowers every figure)")
    print(f"\nper-core efficiency (spark scoring per core / local per worker): "
          f"{per_core / (local / a.cores):.2f}")
    for executors, cores in ((10, 4), (50, 4), (100, 8)):
        minutes = 100e6 / (per_core * executors * cores) / 60
        print(f"  100 million leads on {executors} executors x {cores} cores at "
              f"{per_core:,.0f} leads/s a core: {minutes:,.1f} min of scoring")


if __name__ == "__main__":
    main()
