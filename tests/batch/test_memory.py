"""Streaming: peak memory does not grow with the number of leads (measured, not assumed).

The full check (1,000,000 leads under 500 MB) is in bench/batch.py; this one is CI-sized:
the same run on 2,000 and on 16,000 leads must peak within a few MB of each other.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.batch.conftest import ROOT, TINY_RULES

# Runs the command in a child process, then prints that process's peak RSS in kB.
PEAK = ("import resource, sys\nfrom qualify.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def peak_kb(tmp_path: Path, n: int) -> int:
    """Peak RSS of `qualify batch` (one worker: all in one process) over ``n`` leads."""
    rnd = random.Random(n)
    src = tmp_path / f"leads{n}.csv"
    with src.open("w", encoding="utf-8") as f:
        f.write("lead_id,budget,notes\n")
        for i in range(n):  # a long note per lead, so growth would show
            f.write(f"T{i},{rnd.choice([0, 5000, 20000, 80000, 'x'])},{'lorem ' * 40}\n")
    rules = tmp_path / "tiny.yaml"
    rules.write_text(TINY_RULES, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", PEAK, "batch", str(src), "--rules", str(rules),
                           "--out", str(tmp_path / f"o{n}.parquet"), "--workers", "1",
                           "--as-of", "2026-01-01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    return int(done.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_is_flat(tmp_path: Path) -> None:
    """Eight times the leads costs no more than 16 MB more peak memory."""
    small, large = peak_kb(tmp_path, 2_000), peak_kb(tmp_path, 16_000)
    assert large - small < 16 * 1024, (small, large)
