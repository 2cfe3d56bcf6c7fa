"""Process-wide tuning (qualify/tuning.py)."""

from __future__ import annotations

import gc

import pytest

from qualify import tuning


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

