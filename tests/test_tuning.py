"""Process-wide tuning (qualify/tuning.py)."""

from __future__ import annotations

import gc

import pytest

from qualify import tuning
from qualify.batch.runner import Scorer, score_partition
from tests.batch.conftest import synthetic
from tests.batch.test_runner import SPEC


def test_tune_gc_is_process_wide_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collect cycles every GC_THRESHOLD allocations, and freeze what exists, once."""
    frozen: list[None] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(None))
    monkeypatch.setattr(tuning, "_gc_tuned", False)
    before = gc.get_threshold()
    try:
        tuning.tune_gc()
        tuning.tune_gc()
        assert gc.get_threshold() == (tuning.GC_THRESHOLD, *before[1:])
        assert len(frozen) == 1
    finally:
        gc.set_threshold(*before)



def test_batch_threshold_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "freeze", lambda: None)
    monkeypatch.setattr(tuning, "_gc_tuned", False)
    before = gc.get_threshold()
    try:
        tuning.tune_gc(tuning.BATCH_GC_THRESHOLD)
        assert gc.get_threshold()[0] == tuning.BATCH_GC_THRESHOLD
    finally:
        gc.set_threshold(*before)


def test_scoring_leaves_no_reference_cycles() -> None:
    """What lets batch workers collect rarely: every object a partition makes, good leads
    and bad, is freed by reference counting, so the cyclic collector finds nothing."""
    scorer = Scorer(SPEC)
    items = list(enumerate(synthetic(1500, seed=8, bad_rate=0.15), 1))
    enabled = gc.isenabled()
    try:
        score_partition(scorer, items[:300])  # memos and caches filled
        gc.collect()
        gc.disable()
        for start in range(0, len(items), 500):
            score_partition(scorer, items[start:start + 500])
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
        scorer.close()
