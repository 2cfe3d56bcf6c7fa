"""Batch benchmark: `qualify batch` on generated leads, CSV in, Parquet out.

    python bench/batch.py [--leads 200000] [--workers 1,2] [--keep DIR] [--no-breakdown]
    python bench/batch.py --leads 1000000 --workers 2 --no-breakdown   # the memory check

Writes ``--leads`` generated leads (qualify.synthetic, the default rule base's fields) to a
CSV file, then runs, in this order and in the same session:
  baseline   qualify's own CSV reader and Parquet writer on the same file, no scoring:
             what reading and writing alone cost;
  workers=N  `qualify batch LEADS.csv --out OUT.parquet --workers N` for each N.
Each run is a child process; the bench samples the memory and CPU time of its whole process
tree (the command and its workers, and a forkserver where one starts them) every 50 ms. It
prints wall time, leads/s, CPU µs per lead and the tree's peak memory: RSS summed over the
processes (pages shared between forked processes counted in each) and PSS (shared pages
split). Then the load average (other work on the machine slows every figure), and where one
lead's time goes (in one process, by stage, and the functions that cost most). Peak memory
is checked against the 500 MB budget the issue sets for 1,000,000 leads.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import datetime as dt
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qualify import Engine, default_rules_path, load_rulebook  # noqa: E402
from qualify.batch.readers import decode, open_reader  # noqa: E402
from qualify.batch.runner import PARTITION, Scorer, Spec, score_partition  # noqa: E402
from qualify.batch.summary import Summary  # noqa: E402
from qualify.batch.writers import open_writer  # noqa: E402
from qualify.synthetic import generate  # noqa: E402
from qualify.tuning import BATCH_GC_THRESHOLD, tune_gc, tune_malloc  # noqa: E402

AS_OF = dt.date(2026, 1, 1)
TARGET = 25_000  # leads/s end to end with 2 workers (issue 4)
RSS_BUDGET_MB = 500
SAMPLE = 0.05  # seconds between RSS samples

# The child: run one job, print its own CPU seconds as JSON on stderr (the workers' CPU is
# sampled from /proc: a process's own rusage leaves them out until it waits for them).
CHILD = """\
import json, resource, sys, time
t = time.perf_counter()
mode = sys.argv.pop(1)
if mode == "baseline":
    from qualify.batch.readers import open_reader
    from qualify.batch.writers import open_writer
    reader = open_reader(sys.argv[1])
    cols = ("line", *reader.columns)
    writer = open_writer(sys.argv[2], cols)
    rows, n = [], 0
    for line, record in reader:
        rows.append((line, *record.values()))
        if len(rows) == 1000:
            writer.write(rows); n += len(rows); rows = []
    writer.write(rows); n += len(rows)
    writer.commit()
else:
    sys.argv.insert(1, mode)
    from qualify.cli import main
    try:
        main()
    except SystemExit:
        pass
me = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": me.ru_utime + me.ru_stime}),
      file=sys.stderr)
"""


def write_csv(path: Path, n: int) -> None:
    """``n`` generated leads as a CSV export would have them (lists joined by ";")."""
    columns = [*load_rulebook(default_rules_path()).fields, "company"]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for lead in generate(n, seed=42, as_of=AS_OF):
            w.writerow([";".join(map(str, v)) if isinstance(v, list) else
                        "" if v is None else v for v in (lead.get(c) for c in columns)])


TICK = os.sysconf("SC_CLK_TCK")


def _kb(text: str, key: str) -> int:
    return int(next(x for x in text.splitlines() if x.startswith(key)).split()[1])


def tree(pid: int) -> dict[int, tuple[int, int, float]]:
    """``pid`` and every descendant (workers of a forkserver too): pid -> (RSS kB, PSS kB,
    CPU s). RSS counts pages shared between forked processes in each; PSS splits them."""
    out: dict[int, tuple[int, int, float]] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            rss = _kb(Path(f"/proc/{p}/status").read_text(), "VmRSS:")
            pss = _kb(Path(f"/proc/{p}/smaps_rollup").read_text(), "Pss:")
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            out[p] = (rss, pss, (int(fields[11]) + int(fields[12])) / TICK)  # utime + stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    return out


def measure(args: list[str]) -> dict[str, Any]:
    """Run the child with ``args``: its wall time, the CPU time of its whole process tree
    (sampled every 50 ms for the workers) and the tree's peak RSS (sum over processes)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        sample = tree(proc.pid)
        peak_rss = max(peak_rss, sum(rss for rss, _, _ in sample.values()))
        peak_pss = max(peak_pss, sum(pss for _, pss, _ in sample.values()))
        for p, (_, _, seconds) in sample.items():
            cpu[p] = max(cpu.get(p, 0.0), seconds)
        time.sleep(SAMPLE)
    out, err = proc.communicate()
    try:
        result = json.loads(err.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"run failed: {' '.join(args)}\n{err}") from None
    cpu.pop(proc.pid, None)  # the command's own CPU time is exact, from itself
    result["cpu"] = result["cpu"] + sum(cpu.values())
    result["rss_mb"] = peak_rss / 1024
    result["pss_mb"] = peak_pss / 1024
    result["stdout"] = out
    return result


def row(label: str, n: int, r: dict[str, Any]) -> str:
    return (f"{label:<34}{r['seconds']:>9.1f}{n / r['seconds']:>11,.0f}"
            f"{r['cpu'] / n * 1e6:>14,.0f}{r['rss_mb']:>10,.0f}{r['pss_mb']:>10,.0f}")


def _cpu() -> float:
    return time.process_time()


def per_lead(csv_path: Path, n: int = 4000) -> None:
    """Where one lead's CPU time goes, in one process, each stage timed on its own (tuned
    as a worker process is)."""
    tune_malloc()
    tune_gc(BATCH_GC_THRESHOLD)
    spec = Spec(rules_text=default_rules_path().read_text(encoding="utf-8"),
                rules_file="default.yaml", as_of=AS_OF, output_format="parquet")
    scorer = Scorer(spec)
    engine: Engine = scorer.engine
    reader = open_reader(csv_path)
    t = _cpu()
    raw = next(reader.partitions(n))  # the reading process: cut the file
    cut = _cpu() - t
    t = _cpu()
    items = decode(raw)  # a worker: parse the CSV text into records
    parse = _cpu() - t
    reader.close()
    records = [r for _, r in items]
    t = _cpu()
    decisions = []
    for r in records:
        try:
            decisions.append(engine.decide(r, AS_OF))
        except Exception:  # a bad lead: not part of this breakdown
            continue
    decide = _cpu() - t
    t = _cpu()
    verdicts = [engine.explain(d, AS_OF, "en") for d in decisions]
    explain = _cpu() - t
    t = _cpu()
    rows, summary = [], Summary()
    for (line, _), v in zip(items, verdicts, strict=False):  # as score_partition does
        rows.append(scorer.layout.row(line, (), v))
        summary.add_missing(v)
    summary.add_rows(scorer.layout.names, rows)
    row = _cpu() - t
    # a worker: the rows as Arrow batches, a partition at a time; the first partition is
    # not timed (it grows the heap: 40 µs a row where later ones take 2-3)
    scorer.encode(rows[:PARTITION], None)
    t = _cpu()
    blocks = [scorer.encode(rows[i:i + PARTITION], None)
              for i in range(PARTITION, len(rows), PARTITION)]
    encode = (_cpu() - t) * len(rows) / max(len(rows) - PARTITION, 1)
    with tempfile.TemporaryDirectory() as d:
        w = open_writer(Path(d) / "o.parquet", scorer.layout.names)
        t = _cpu()
        for block in blocks:
            w.write_block(block)  # the writing process: Parquet encoding and compression
        w.commit()
        write = (_cpu() - t) * len(rows) / max(len(rows) - PARTITION, 1)
    stages = [("cut the CSV into partitions (reader)", cut / n),
              ("parse CSV text into records (worker)", parse / n),
              ("engine.decide: read lead, facts, match", decide / len(decisions)),
              ("engine.explain: build the Verdict", explain / len(verdicts)),
              ("output row + summary counts (worker)", row / len(rows)),
              ("encode rows as Arrow (worker)", encode / len(rows)),
              ("write Parquet (writer)", write / len(rows))]
    total = sum(v for _, v in stages)
    print(f"\nwhere one lead's CPU time goes (one process, {n:,} leads, µs per lead):")
    for name, v in stages:
        print(f"  {name:<42}{v * 1e6:>8.0f}  {100 * v / total:5.1f} %")
    print(f"  {'total':<42}{total * 1e6:>8.0f}  -> {1 / total:,.0f} leads/s per core")
    prof = cProfile.Profile()
    prof.enable()
    score_partition(scorer, items[:1500])
    prof.disable()
    print("\nfunctions that cost most while scoring (cProfile, own time):")
    stats = pstats.Stats(prof)
    entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]  # type: ignore[attr-defined]
    own = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    for (file, line, name), (_, calls, tt, _, _) in entries:
        where = f"{Path(file).name}:{line} {name}" if line else name
        print(f"  {100 * tt / own:5.1f} %  {tt / 1500 * 1e6:7.1f} µs  {calls / 1500:6.1f}x  "
              f"{where[:70]}")
    scorer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=200_000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    ap.add_argument("--no-breakdown", action="store_true")
    a = ap.parse_args()
    workers = [int(w) for w in a.workers.split(",")]
    folder = a.keep or Path(tempfile.mkdtemp(prefix="qualify-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        src = folder / f"leads{a.leads}.csv"
        if not src.exists():
            write_csv(src, a.leads)
        print(f"qualify batch benchmark: {a.leads:,} generated leads, CSV in -> Parquet out "
              f"({src.stat().st_size / 1e6:,.0f} MB of CSV)")
        print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average before "
              f"{os.getloadavg()[0]:.2f}")
        print(f"\n{'':<34}{'wall s':>9}{'leads/s':>11}{'CPU µs/lead':>14}{'RSS MB':>10}"
              f"{'PSS MB':>10}")
        base = measure(["baseline", str(src), str(folder / "baseline.parquet")])
        print(row("baseline: read + write, no scoring", a.leads, base), flush=True)
        rates, peak = {}, {"rss_mb": 0.0, "pss_mb": 0.0}
        for w in workers:
            r = measure(["batch", str(src), "--out", str(folder / f"w{w}.parquet"),
                         "--workers", str(w), "--as-of", AS_OF.isoformat()])
            rates[w] = a.leads / r["seconds"]
            peak = {k: max(v, r[k]) for k, v in peak.items()}
            print(row(f"qualify batch, {w} worker{'s' if w > 1 else ''}", a.leads, r),
                  flush=True)
        print(f"load average after {os.getloadavg()[0]:.2f}")
        ok = "within" if peak["rss_mb"] < RSS_BUDGET_MB else "OVER"
        print(f"peak memory of a run: RSS {peak['rss_mb']:,.0f} MB, PSS {peak['pss_mb']:,.0f} MB: "
              f"{ok} the {RSS_BUDGET_MB} MB budget (set for 1,000,000 leads)")
        if 2 in rates:
            verdict = "met" if rates[2] >= TARGET else "NOT met"
            print(f"target {TARGET:,} leads/s with 2 workers: {verdict} "
                  f"({rates[2]:,.0f} leads/s, {rates[2] / TARGET:.0%} of it)")
        if not a.no_breakdown:
            per_lead(src)
    finally:
        if a.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
