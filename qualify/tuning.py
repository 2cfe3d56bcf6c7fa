"""Process-wide tuning for processes of ours that score many leads: batch workers, the
``qualify batch`` command and service workers. Library code never calls these.
"""

from __future__ import annotations

import gc

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_MALLOC_KEEP = 64 * 1024 * 1024


def tune_malloc() -> bool:
    """Keep freed memory in this process's heap instead of returning it to the system.

    durable-rules allocates a session's memory (about 87 KB, per the field notes) and frees
    it again for every lead. Depending on what else lives on the heap, glibc's defaults
    then hand fresh pages to each lead: measured up to ~90 page faults and ~200 µs of
    system time per lead (JSONL output, or a partition of 3,000 verdicts kept), none in
    other runs. Higher mmap and trim thresholds make those blocks reuse the heap; peak
    memory does not grow (the same blocks are reused). A no-op off glibc.
    """
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MALLOC_KEEP)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 4 * _MALLOC_KEEP))
    except (AttributeError, OSError, TypeError):  # not glibc: nothing to tune
        return False


GC_THRESHOLD = 20_000  # allocations between young-generation collections (default 700)
# Batch workers keep no latency promise: they collect far less often. Scoring creates no
# reference cycles (tests/test_tuning.py checks), so a collection only spends time: over a
# 60,000-lead stream, 67-78 µs a lead at 20,000, 61-66 at 300,000, 59-65 with none.
BATCH_GC_THRESHOLD = 300_000
_gc_tuned = False


def tune_gc(threshold: int = GC_THRESHOLD) -> None:
    """Collect cycles less often while scoring: a verdict allocates a few hundred dicts,
    lists and tuples, nearly all freed by reference counting, so the default threshold runs
    the cyclic collector every few leads. Callgrind over a 10,000-lead ``qualify batch``:
    the collector cost 11,400 instructions a lead by default, 2,600 tuned (0 disabled).
    Objects alive now (modules, the rule base, the compiled engine) leave its sight
    (``gc.freeze``), so a full collection no longer walks them: in a service worker that
    had scored 5,000 leads, 40-48 ms with all 66,000 objects in sight, 1-3 ms with the
    imported modules frozen. Process-wide: called by our batch workers, the ``qualify
    batch`` command and the service's worker factory, never by the library functions.
    ``threshold``: allocations between young collections (batch: ``BATCH_GC_THRESHOLD``)."""
    global _gc_tuned  # noqa: PLW0603 - process-wide by nature
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
