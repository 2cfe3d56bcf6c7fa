"""Score partitions of leads: a pure function, and a pool of processes that runs it in order.

``score_partition(scorer, items)`` is the unit of work: records in, rows out, with the
partition's summary. It reads nothing but its arguments and writes nothing but its result,
so a distributed runner can call it on any partition. A ``Scorer`` is one process's engine,
built from a picklable ``Spec`` (the rule base and mapping as text, not paths).

``run_partition`` also encodes the rows for the output file (CSV or JSONL bytes, an Arrow
batch for Parquet), so that work is spread over the workers too. ``score_all`` feeds
partitions to ``workers`` processes (each builds its own engine from the ``Spec``, as the
durable-rules field notes advise) and yields them in input order, with a bounded number in
flight so memory stays flat whatever the input size. One worker scores in-process.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from qualify.batch.compare import Snapshot, snapshot
from qualify.batch.orphans import die_with_parent
from qualify.batch.readers import BadRecord, Item, Raw, Record, decode, raw_items
from qualify.batch.rows import Layout, Row, key_value
from qualify.batch.summary import Summary, row_stats
from qualify.batch.writers import encoder
from qualify.engine import Engine
from qualify.errors import LeadError, QualifyError
from qualify.mapping import Profile, load_profile_text
from qualify.rulebook import Rulebook, load_rulebook_text
from qualify.tuning import BATCH_GC_THRESHOLD, tune_gc, tune_malloc
from qualify.verdict import verdict_json

PARTITION = 1000  # records per unit of work
IN_FLIGHT = 2  # partitions queued per worker beyond the one it is scoring
ErrorRow = tuple[int, str | None, str | None, str]  # line, lead_id, field, message
Values = tuple[Any, ...]  # a lead's field values, in rule-base order (Spec.values)


class WorkerError(QualifyError):
    """A worker process died (killed, or crashed in the engine). One line, for users."""


@dataclass(frozen=True, slots=True)
class Spec:
    """Everything a process needs to score, as plain data (picklable, path-free)."""

    rules_text: str
    rules_file: str
    as_of: dt.date
    mapping_text: str | None = None
    mapping_file: str | None = None
    locale: str | None = None
    keys: tuple[str, ...] = ()
    verdicts: bool = False  # carry each whole verdict as JSON (JSONL output)
    output_format: str = "csv"  # how workers encode their rows: csv, jsonl or parquet
    compare: bool = False  # also send a snapshot of each row, for --compare
    rows: bool = False  # also send the rows themselves, for --outcome
    values: bool = False  # also send each lead's rule-base field values (--outcome's leakage)
    no_columns: str | None = None  # every row's error: the input has no column scoring reads
    row_stats: bool = False  # also give each row's summary.row_stats (for a cluster's sums)


class Scorer:
    """One process's engine, mapping and output layout. Raises QualifyError if the rule
    base or the mapping is bad."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rulebook = load_rulebook_text(spec.rules_text, spec.rules_file)
        self.profile: Profile | None = None
        if spec.mapping_text is not None:
            self.profile = load_profile_text(spec.mapping_text, self.rulebook,
                                             spec.mapping_file or "<mapping>")
        self.engine = Engine(self.rulebook)
        self.layout = layout_of(spec, self.rulebook)
        self.encode = encoder(spec.output_format, self.layout.names)

    def close(self) -> None:
        self.engine.close()


def layout_of(spec: Spec, rulebook: Rulebook) -> Layout:
    """The output rows' columns for this spec and rule base."""
    return Layout(spec.keys, tuple(q.id for q in rulebook.qualifiers), rulebook.sha256)


@dataclass(slots=True)
class Partition:
    """What scoring a partition gives: rows in input order and their summary."""

    rows: list[Row] = field(default_factory=list)
    verdicts: list[str | None] | None = None  # JSON of each row's verdict (spec.verdicts)
    errors: list[ErrorRow] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    stats: list[str] | None = None  # each row's summary.row_stats (spec.row_stats)
    # each row's lead field values, in rule-base order; None for an error row (spec.values)
    values: list[Values | None] | None = None


def score_partition(scorer: Scorer, items: Iterable[Item]) -> Partition:
    """Score ``items`` ((line, record) pairs) into rows. A bad record gives an error row."""
    spec, layout, engine, profile = scorer.spec, scorer.layout, scorer.engine, scorer.profile
    out = Partition(verdicts=[] if spec.verdicts else None,
                    stats=[] if spec.row_stats else None, values=[] if spec.values else None)
    names = tuple(scorer.rulebook.fields)
    keys = spec.keys
    unread: list[tuple[str, Any]] = []  # values of 'unmapped: unknown' fields left out
    if spec.no_columns is not None:
        items = [(line, BadRecord(spec.no_columns, r.fields if isinstance(r, BadRecord) else r))
                 for line, r in items]
    for line, record in items:
        fields = record.fields if isinstance(record, BadRecord) else record
        key_values = [key_value(fields.get(k)) for k in keys]
        lead_id: str | None = None
        read = len(unread)
        try:
            if isinstance(record, BadRecord):
                lead_id = _bad_lead_id(fields, profile)
                raise LeadError(None, record.reason)
            raw: Any = profile.apply(record, unread) if profile is not None else record
            lead_id = _lead_id(raw)
            verdict = engine.score(raw, as_of=spec.as_of, locale=spec.locale)
        except Exception as e:
            name, message = _error(e)
            out.rows.append(layout.error_row(line, key_values, lead_id, message))
            out.errors.append((line, lead_id, name, message))
            out.summary.add_error(line, name, message)
            if out.verdicts is not None:
                out.verdicts.append(None)
            if out.stats is not None:
                out.stats.append(row_stats(None, name))
            if out.values is not None:
                out.values.append(None)
            continue
        out.rows.append(layout.row(line, key_values, verdict))
        out.summary.add_missing(verdict)
        if out.verdicts is not None:
            out.verdicts.append(verdict_json(verdict).decode())
        if out.stats is not None:
            out.stats.append(row_stats(verdict, unread=[n for n, _ in unread[read:]]))
        if out.values is not None:
            out.values.append(tuple(raw.get(f) for f in names))
    out.summary.add_rows(layout.names, out.rows)  # the rest of the counts, column-wise
    out.summary.unread.update(name for name, _ in unread)
    return out


@dataclass(slots=True)
class Block:
    """A scored partition as a worker sends it back: its rows already encoded for the
    output file, so the parent only writes bytes (or an Arrow batch) in order."""

    data: Any  # bytes (CSV, JSONL) or a pyarrow RecordBatch (Parquet)
    rows: int
    errors: list[ErrorRow]
    summary: Summary
    snapshots: list[Snapshot] | None  # for --compare
    kept: list[Row] | None = None  # the rows, for --outcome
    values: list[Values | None] | None = None  # their lead field values (spec.values)


def run_partition(scorer: Scorer, items: list[Item]) -> Block:
    """Score ``items`` and encode the rows for the output format (both pure). The summary
    counts the records read here, apart from the rows that scoring makes of them."""
    part = score_partition(scorer, items)
    part.summary.rows_in = len(items)
    snapshots = None
    if scorer.spec.compare:
        names = scorer.layout.names
        snapshots = [snapshot(dict(zip(names, row, strict=True)), row[0]) for row in part.rows]
    return Block(scorer.encode(part.rows, part.verdicts), len(part.rows), part.errors,
                 part.summary, snapshots, part.rows if scorer.spec.rows else None,
                 part.values)


def _lead_id(raw: Any) -> str | None:
    value = raw.get("lead_id") if isinstance(raw, dict) else None
    return key_value(value) if isinstance(value, str | int) else None


def _bad_lead_id(fields: Record, profile: Profile | None) -> str | None:
    """The lead id in what could be read of a bad row, if any."""
    try:
        return _lead_id(profile.apply(fields) if profile is not None else fields)
    except Exception:  # a mapping's patterns on a half-read row: the id is not needed
        return None


def _error(e: Exception) -> tuple[str | None, str]:
    """(field, message) for a row that failed. Anything but our own errors is a bug in
    qualify, reported on the row (never a traceback that stops the batch)."""
    if isinstance(e, LeadError):
        return e.field, str(e)
    if isinstance(e, QualifyError):
        return None, str(e)
    return None, f"internal error ({type(e).__name__}: {e}); please report it"


# ----------------------------------------------------------------------------- processes

_scorer: Scorer | None = None  # this worker process's engine, built once by _start
_failed: QualifyError | None = None  # why it could not be built (_ready raises it)


def _start(spec: Spec) -> None:
    global _scorer, _failed  # noqa: PLW0603 - one engine per worker process, by design
    die_with_parent()  # a `kill -9` of the command ends its workers too
    # Ctrl-C reaches the whole process group; the parent decides what happens. A worker
    # it killed could die halfway through sending a result, and the executor's thread
    # would then wait forever for the rest (seen: a hang in 1 of 25 interrupts). SIGTERM
    # ends a worker, whatever handler a forked one inherited from the command.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tune_malloc()
    tune_gc(BATCH_GC_THRESHOLD)
    try:
        _scorer = Scorer(spec)
    except QualifyError as e:  # the engine refused the rule base: said as it is, not as
        _failed = e  # a dead worker (an error here would break the pool)
        return
    gc.freeze()  # the engine lives as long as the process: out of the collector's sight


def _work(raw: Raw) -> Block:
    assert _scorer is not None, "worker started without an engine"
    return run_partition(_scorer, decode(raw))


def _ready() -> int:
    if _failed is not None:
        raise _failed
    return os.getpid()


def start_method() -> str:
    """How to start workers: ``fork`` when this process runs a single thread, so they begin
    with its imports (ready in about 0.03 s); else ``forkserver`` (a fresh process imports
    qualify again, about 0.2 s), as forking a process with other threads running (pyarrow's
    pools after reading Parquet, a progress bar) can deadlock the child."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: no way to count native threads
        return "forkserver"
    return "fork" if threads == 1 and threading.active_count() == 1 else "forkserver"


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def partitions(records: Iterable[Item], size: int = PARTITION) -> Iterator[Raw]:
    """Records already read, cut into partitions (readers cut their own files)."""
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield raw_items(chunk)


class Pool:
    """``workers`` processes, each with its own engine built from the picklable ``Spec``;
    results in input order. The processes start at once, in ``__init__``."""

    def __init__(self, spec: Spec, workers: int, method: str | None = None) -> None:
        """``method``: how to start the workers (default: ``start_method()``). Every
        worker is forked here, at once: make the pool before this process starts threads
        or builds an engine of its own."""
        self.workers = workers
        self.method = method or start_method()
        ctx = multiprocessing.get_context(self.method)
        if self.method == "forkserver":
            ctx.set_forkserver_preload(["qualify.batch.runner"])
        self._ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start,
                                       initargs=(spec,))
        try:  # fork every worker now, and surface an engine that fails to build
            for f in [self._ex.submit(_ready) for _ in range(workers)]:
                f.result()
        except BrokenProcessPool:
            self.close(cancel=True)
            raise WorkerError("a worker process could not start its engine") from None
        except BaseException:  # the engine refused the rule base; Ctrl-C while they start
            self.close(cancel=True)
            raise

    def map(self, chunks: Iterable[Raw]) -> Iterator[Block]:
        """Blocks in input order. Futures left pending when the caller stops are not
        cancelled here: the executor's own thread may be failing them at that moment (a
        worker died, or Ctrl-C reached the workers), and in Python 3.11 that thread then
        dies on the cancelled one (InvalidStateError) before it unblocks the queue feeding
        the workers, and the interpreter's exit hangs on the feeder (seen in CI).
        ``close(cancel=True)`` cancels them from the executor's side."""
        pending: deque[tuple[Future[Block], int]] = deque()
        limit = self.workers * (1 + IN_FLIGHT)
        for raw in chunks:
            try:
                future = self._ex.submit(_work, raw)
            except BrokenProcessPool:
                raise _died(pending[0][1] if pending else raw.first) from None
            pending.append((future, raw.first))
            while len(pending) >= limit:
                yield self._take(pending)
        while pending:
            yield self._take(pending)

    @staticmethod
    def _take(pending: deque[tuple[Future[Block], int]]) -> Block:
        future, first = pending.popleft()
        try:
            return future.result()
        except BrokenProcessPool:
            raise _died(first) from None

    def close(self, cancel: bool = False) -> None:
        """Stop the workers once they are done: with every partition sent (``cancel=False``),
        or (``cancel=True``) with those already handed to a worker, at most one each beyond
        the one it scores: well under a second. Workers are never killed here: a worker
        killed while sending its result leaves the executor's thread waiting for the rest
        of the message, and the interpreter's exit waiting for that thread. A worker that
        dies by itself breaks the pool, and the executor then ends the others safely."""
        self._ex.shutdown(wait=True, cancel_futures=cancel)


def _died(line: int) -> WorkerError:
    return WorkerError(f"a worker process died while scoring the partition from line {line} "
                       "(killed, or the engine crashed)")


def score_all(spec: Spec, chunks: Iterable[Raw], *, scorer: Scorer | None = None,
              pool: Pool | None = None) -> Iterator[Block]:
    """Raw partitions decoded, scored and encoded, in input order: in a ``pool`` if given,
    else in this process."""
    if pool is not None:
        yield from pool.map(chunks)
        return
    tune_malloc()
    own = scorer is None
    local = scorer or Scorer(spec)
    try:
        for raw in chunks:
            yield run_partition(local, decode(raw))
    finally:
        if own:
            local.close()
