"""qualify on a real standalone Spark cluster (tests/spark/conftest.py): the same rows as the
local batch, bad rows as error rows, an executor killed mid-job, and a client's mistakes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from qualify.spark import SparkError, check_java, score
from tests.batch.conftest import read_rows, run, synthetic, write_leads
from tests.conftest import AS_OF
from tests.spark.conftest import Cluster

pytestmark = pytest.mark.slow


def leads_parquet(path: Path, n: int, seed: int = 7, bad_rate: float = 0.03,
                  group: int = 250) -> Path:
    """``n`` synthetic leads (some with a budget of 'lots') as Parquet in row groups of
    ``group``: Spark reads them as several partitions."""
    import pyarrow.parquet as pq

    write_leads(path, synthetic(n, seed=seed, bad_rate=bad_rate))
    pq.write_table(pq.read_table(path), path, row_group_size=group)
    return path


def spark_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a folder Spark wrote, in line order."""
    import pyarrow.dataset as ds

    return sorted(ds.dataset(path, format="parquet").to_table().to_pylist(),
                  key=lambda r: r["line"])


def body(summary: str) -> list[str]:
    """The printed summary without its timing line and the names of the files written."""
    lines = summary.splitlines()
    return [line for line in lines[1:] if "wrote" not in line
            and not line.endswith((".errors.csv", ".html", "failed rows)"))]


class TestSameAsLocal:
    def test_cli_rows_summary_and_errors(self, spark: Any, cluster: Cluster,
                                         tmp_path: Path) -> None:
        """``qualify batch --spark`` on the cluster writes the local batch's rows, lead for
        lead and column for column (bad rows as the same error rows), the same errors file,
        prints the same summary (summed by Spark; the report from it too) and exits 1 like
        it."""
        leads = leads_parquet(tmp_path / "leads.parquet", 2000)
        local = tmp_path / "local.parquet"
        code, out, _ = run(leads, "--out", local, "--as-of", AS_OF.isoformat(), "--workers", "1")
        assert code == 1
        remote = tmp_path / "spark.parquet"
        s_code, s_out, s_err = run(leads, "--out", remote, "--as-of", AS_OF.isoformat(),
                                   "--spark", cluster.url, "--report", tmp_path / "r.html")
        assert (code, "") == (s_code, s_err)
        expected = read_rows(local)
        actual = spark_rows(remote)
        assert len(list(remote.glob("part-*.parquet"))) > 1  # scored in several partitions
        assert expected == actual
        assert any(r["error"] for r in actual) and "lots" in str(actual)
        assert body(out) == body(s_out)
        report = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "Batch: leads.parquet" in report and "2,000 in = " in report
        local_errors = (tmp_path / "local.errors.csv").read_text(encoding="utf-8")
        [part] = (tmp_path / "spark.errors.csv").glob("part-*.csv")
        assert local_errors.splitlines() == part.read_text(encoding="utf-8").splitlines()

    def test_score_api_and_csv_input(self, spark: Any, tmp_path: Path) -> None:
        """``qualify.spark.score`` on a DataFrame Spark read from CSV gives the rows the
        local batch writes for that CSV file (lines counted after the header)."""
        leads = write_leads(tmp_path / "leads.csv", synthetic(800, seed=3, bad_rate=0.05))
        local = tmp_path / "local.parquet"
        assert run(leads, "--out", local, "--as-of", AS_OF.isoformat(), "--workers", "1")[0] == 1
        df = spark.read.option("header", True).csv(str(leads))
        rows = [r.asDict() for r in score(df, as_of=AS_OF).collect()]
        expected = read_rows(local)
        for r in expected:
            r["line"] -= 1  # the API numbers a DataFrame's rows from 1; the file has a header
        assert expected == sorted(rows, key=lambda r: r["line"])


    def test_jsonl_in_and_out(self, spark: Any, cluster: Cluster, tmp_path: Path) -> None:
        """JSON lines in (Spark infers the types: a column of numbers and text is text) and
        out: the same rows as the local batch, each with its whole verdict."""
        import json

        leads = write_leads(tmp_path / "leads.jsonl", synthetic(300, seed=5, bad_rate=0.05))
        local, remote = tmp_path / "local.jsonl", tmp_path / "spark.jsonl"
        assert run(leads, "--out", local, "--as-of", AS_OF.isoformat(), "--workers", "1")[0] == 1
        assert run(leads, "--out", remote, "--as-of", AS_OF.isoformat(), "--spark",
                   cluster.url)[0] == 1
        rows = [json.loads(line) for part in sorted(remote.glob("part-*"))
                for line in part.read_text(encoding="utf-8").splitlines()]
        assert read_rows(local) == sorted(rows, key=lambda r: r["line"])
        assert all(("verdict" in r) for r in rows)


    def test_csv_in_and_out(self, spark: Any, cluster: Cluster, tmp_path: Path) -> None:
        """CSV in and out, a key column with quotes and commas inside its values: the same
        cells as the local batch's file (quotes doubled, not backslashed), and the same
        errors file."""
        import csv

        leads = synthetic(400, seed=8, bad_rate=0.05)
        for i, lead in enumerate(leads):
            if i % 7 == 0:
                lead["company"] = 'Acme "Big, Bold" Ltd'
        source = write_leads(tmp_path / "leads.csv", leads)
        args = ("--key", "company", "--as-of", AS_OF.isoformat())
        assert run(source, "--out", tmp_path / "local.csv", *args, "--workers", "1")[0] == 1
        assert run(source, "--out", tmp_path / "spark.csv", *args, "--spark", cluster.url)[0] == 1

        def cells(paths: list[Path]) -> list[list[str]]:
            rows: list[list[str]] = []
            for path in paths:
                with path.open(encoding="utf-8", newline="") as f:
                    rows += list(csv.reader(f))[0 if not rows else 1:]
            return rows

        local = cells([tmp_path / "local.csv"])
        assert local == cells(sorted((tmp_path / "spark.csv").glob("part-*.csv")))
        assert 'Acme "Big, Bold" Ltd' in {row[1] for row in local}
        assert cells([tmp_path / "local.errors.csv"]) == cells(
            sorted((tmp_path / "spark.errors.csv").glob("part-*.csv")))


class TestKilledExecutor:
    def test_every_lead_exactly_once(self, spark: Any, tmp_path: Path) -> None:
        """An executor killed with SIGKILL while tasks run: Spark runs its tasks again
        elsewhere, and the output has every lead exactly once, in its line."""
        n = 24_000
        leads = leads_parquet(tmp_path / "leads.parquet", n, seed=9, group=500)
        scored = score(spark.read.parquet(str(leads)), as_of=AS_OF)  # counts rows: done here
        out = tmp_path / "scored.parquet"
        failure: list[BaseException] = []

        def write() -> None:
            try:
                scored.write.parquet(str(out))
            except BaseException as e:  # reported below
                failure.append(e)

        job = threading.Thread(target=write)
        job.start()
        tracker = spark.sparkContext.statusTracker()
        killed, failed = None, 0
        deadline = time.monotonic() + 120
        while job.is_alive() and time.monotonic() < deadline:
            for stage in filter(None, map(tracker.getStageInfo, tracker.getActiveStageIds())):
                if killed is None and stage.numCompletedTasks >= 2 and stage.numActiveTasks:
                    killed = executors(spark.sparkContext.applicationId)[0]
                    os.kill(killed, signal.SIGKILL)
                failed = max(failed, stage.numFailedTasks)
            time.sleep(0.05)
        job.join(timeout=60)
        assert not job.is_alive(), "the Spark job did not finish in time"
        assert not failure, failure
        assert killed is not None, "the job ended before an executor could be killed"
        assert failed >= 1, "no task was running on the killed executor"
        rows = spark_rows(out)
        assert [r["line"] for r in rows] == list(range(1, n + 1))
        assert [r["lead_id"] for r in rows] == [f"L{i:07d}" for i in range(n)]
        assert all((r["status"] is None) != (r["error"] is None) for r in rows)


def executors(app: str) -> list[int]:
    """The pids of this application's executor JVMs."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"CoarseGrainedExecutorBackend" in text and app.encode() in text:
            found.append(int(cmdline.parent.name))
    assert found, f"no executor of {app} found"
    return found


class TestMistakes:
    def test_missing_input(self, spark: Any, cluster: Cluster, tmp_path: Path) -> None:
        """An input that is not there: exit 2, one line naming it, no stack trace."""
        code, _, err = run(tmp_path / "nope.parquet", "--out", tmp_path / "o.parquet",
                             "--spark", cluster.url)
        assert code == 2
        assert "nope.parquet: cannot read it as parquet" in err
        assert "Traceback" not in err and "at org.apache" not in err

    def test_compare_is_refused(self, tmp_path: Path) -> None:
        """--compare needs the local batch: exit 2 with the reason."""
        code, _, err = run(tmp_path / "in.parquet", "--out", tmp_path / "o.parquet",
                           "--compare", tmp_path / "prev.parquet", "--spark", "local[1]")
        assert code == 2 and "do not apply with --spark" in err

    def test_no_java(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without Java, the error says to install one (before pyspark tries to start it)."""
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.delenv("JAVA_HOME", raising=False)
        with pytest.raises(SparkError, match="Spark needs Java"):
            check_java()

    def test_bad_master_url(self, tmp_path: Path) -> None:
        """A master URL Spark cannot parse: exit 2 and the URLs it takes, no stack trace
        (in a process of its own: this one already runs a driver)."""
        leads = leads_parquet(tmp_path / "leads.parquet", 10)
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from qualify.cli import main; sys.exit(main())",
             "batch", str(leads), "--out", str(tmp_path / "o.parquet"), "--spark",
             "nonsense://here"], check=False, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "cannot start Spark on master 'nonsense://here' (" in done.stderr
        assert "A master URL is local[N], spark://HOST:7077" in done.stderr
        assert "Traceback" not in done.stderr
