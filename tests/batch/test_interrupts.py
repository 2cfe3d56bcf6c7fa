"""Interrupts at the exact moments a batch creates or renames files: nothing is orphaned.

CI once found a hidden .partial file left after Ctrl-C: the signal landed inside the Parquet
writer's constructor, after its file existed and before the run recorded the writer. These
tests deliver the signal at those moments on purpose instead of hoping a timer hits them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qualify.batch import pipeline
from qualify.batch.interrupts import held, sigterm_as_interrupt
from qualify.batch.job import Job
from qualify.batch.pipeline import InterruptedWhenWritten, run_batch
from qualify.batch.writers import open_writer
from tests.batch.conftest import FORK_IN_THREADS, synthetic, write_leads
from tests.conftest import AS_OF


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


class TestHeld:
    def test_a_signal_waits_for_the_block_then_reaches_its_handler(self) -> None:
        done = []
        with pytest.raises(KeyboardInterrupt), held() as caught:
            signal.raise_signal(signal.SIGINT)
            done.append("after the signal")
            assert caught == [signal.SIGINT]
        assert done == ["after the signal"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def test_sigterm_reaches_the_handler_of_the_run(self) -> None:
        with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(), held():
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def test_no_signal_no_effect(self) -> None:
        with held() as caught:
            pass
        assert caught == []
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_a_writer_that_fails_to_set_up_removes_its_file(
        tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt inside a writer's constructor, after its file exists."""
    import csv

    import pyarrow.parquet as pq

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "ParquetWriter", interrupted)
    monkeypatch.setattr(csv, "writer", interrupted)
    if ext == "jsonl":
        monkeypatch.setattr("os.fdopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_writer(tmp_path / f"o.{ext}", ("line",))
    assert names(tmp_path) == set()


def _signal_after(real: Callable[..., Any], calls: int) -> Callable[..., Any]:
    """``real``, sending SIGINT to this process right after its ``calls``-th call."""
    count = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        count[0] += 1
        if count[0] == calls:
            signal.raise_signal(signal.SIGINT)
        return result
    return wrapped


def _job(tmp_path: Path) -> Job:
    src = write_leads(tmp_path / "leads.csv", synthetic(50, seed=3))
    return Job(input=src, output=tmp_path / "o.parquet", workers=1,
               as_of=AS_OF, progress=False)


@pytest.mark.parametrize("calls", [1, 2])
def test_ctrl_c_as_a_writer_opens_leaves_nothing(
        tmp_path: Path, calls: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal lands between a writer's file being created and the run recording the
    writer (the output's, then the errors file's): both are removed."""
    monkeypatch.setattr(pipeline, "open_writer", _signal_after(open_writer, calls))
    job = _job(tmp_path)
    with pytest.raises(KeyboardInterrupt) as e:
        run_batch(job)
    assert not isinstance(e.value, InterruptedWhenWritten)
    assert names(tmp_path) == {"leads.csv"}


def test_ctrl_c_while_renaming_finishes_the_renames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal lands after the errors file is renamed: the output is renamed too (never
    an errors file without its output), and the run says the files are complete."""
    from qualify.batch.writers import AtomicFile

    monkeypatch.setattr(AtomicFile, "commit", _signal_after(AtomicFile.commit, 1))
    job = _job(tmp_path)
    with pytest.raises(InterruptedWhenWritten):
        run_batch(job)
    assert names(tmp_path) == {"leads.csv", "o.parquet", "o.errors.csv"}


@pytest.mark.filterwarnings(FORK_IN_THREADS)
def test_ctrl_c_while_workers_start_leaves_no_worker_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal lands after the first worker is forked, before the pool is complete: the
    pool still starts whole and then stops. (A pool interrupted halfway left a worker
    waiting for work forever, and the command's output pipes open: a hang.)"""
    import dataclasses
    import multiprocessing
    import time
    from multiprocessing.process import BaseProcess

    from qualify.batch import runner

    monkeypatch.setattr(runner, "start_method", lambda: "fork")
    monkeypatch.setattr(BaseProcess, "start", _signal_after(BaseProcess.start, 1))
    job = dataclasses.replace(_job(tmp_path), workers=2)
    with pytest.raises(KeyboardInterrupt):
        run_batch(job)
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []
    assert names(tmp_path) == {"leads.csv"}
