"""A full disk, or a file-size limit, while `qualify batch` writes (issue 13, item 10).

It exited 1 ("some rows failed") with a 33-line traceback. Now: exit 4, one line naming the
file, the system's words for the error and what to do, and no file left behind.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.batch.conftest import synthetic, write_leads
from tests.conftest import ROOT

OUTPUT_FAILED = 4


def batch(src: Path, out: Path, *, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    """`qualify batch SRC --out OUT` in a process of its own, its files limited to
    ``fsize`` bytes if given (RLIMIT_FSIZE: a write past it fails with EFBIG)."""
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-c", "from qualify.cli import main; main()", "batch", str(src),
         "--out", str(out), "--workers", "2", "--as-of", "2026-01-01"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=limit, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root, as the test machine runs; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", str(disk)], check=False, capture_output=True)


@pytest.fixture(scope="module")
def leads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 leads: their scored rows are over 256 KiB in every format (Parquet: 540 KB)."""
    return write_leads(tmp_path_factory.mktemp("in") / "leads.csv", synthetic(3000, seed=3))


@pytest.mark.slow
class TestDiskFull:
    @pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
    def test_one_line_and_its_own_exit_code(self, leads: Path, small_disk: Path,
                                            ext: str) -> None:
        """A disk that fills up mid-run: exit 4, one line naming the output, the error
        and a way out; nothing left on the disk."""
        out = small_disk / f"scored.{ext}"
        done = batch(leads, out)
        assert done.returncode == OUTPUT_FAILED, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"error: cannot write {out}: No space left on device (ENOSPC)")
        assert "free some space" in line and "no output written" in line
        assert os.listdir(small_disk) == []

    def test_a_file_size_limit(self, leads: Path, tmp_path: Path) -> None:
        """A limit on the size of files (ulimit -f) fails writes with EFBIG: the same."""
        out = tmp_path / "scored.parquet"
        done = batch(leads, out, fsize=200_000)
        assert done.returncode == OUTPUT_FAILED, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"error: cannot write {out}: File too large (EFBIG)")
        assert "ulimit -f" in line
        assert sorted(os.listdir(tmp_path)) == []


def test_help_documents_the_exit_codes() -> None:
    """`qualify batch --help` lists every exit status, 4 included."""
    done = subprocess.run([sys.executable, "-c", "from qualify.cli import main; main()",
                           "batch", "--help"], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    text = " ".join(done.stdout.split())
    assert "4 an output file could not be written" in text
