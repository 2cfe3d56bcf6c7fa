"""One batch run: read -> map -> score (in partitions, in processes) -> write, compare, sum up.

``run_batch(job)`` does it all and returns an ``Outcome``. It raises ``BatchError`` (one
line) for a file it cannot read or create, ``OutputError`` (one line) when writing fails
(a full disk), ``RulebaseError`` for a bad rule base or mapping (every problem, located),
and ``WorkerError`` if a worker process dies. Whatever happens, no output file is left
under its final name unless the whole run succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qualify.batch.compare import CHANGE_COLUMNS, Comparer, Previous
from qualify.batch.interrupts import held
from qualify.batch.job import Job, Outcome, sibling
from qualify.batch.progress import Progress
from qualify.batch.readers import InputError, Raw, Reader, format_of, open_reader
from qualify.batch.runner import (
    PARTITION,
    Pool,
    Scorer,
    Spec,
    default_workers,
    layout_of,
    score_all,
)
from qualify.batch.writers import Pending, Writer, open_writer
from qualify.compiler import compile_rulebook
from qualify.engine import today
from qualify.errors import Problem, QualifyError, RulebaseError, did_you_mean
from qualify.mapping import Profile, load_profile_text
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook_text

if TYPE_CHECKING:
    pass

ERROR_COLUMNS = ("line", "lead_id", "field", "error")


class BatchError(QualifyError):
    """A batch cannot run: a file cannot be read or written. One line, naming the file."""


class InterruptedWhenWritten(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) came while the finished files were renamed into place: they
    are all there and complete."""


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise RulebaseError([Problem("file-encoding", f"not UTF-8 text: {e.reason}",
                                     str(path), 1, 1, f"save the {what} as UTF-8")]) from None
    except OSError as e:
        raise BatchError(f"{path}: {e.strerror or e}") from None


def key_columns(job: Job, profile: Profile | None, columns: Sequence[str],
                where: object) -> tuple[str, ...]:
    """The input columns copied to the output; each must exist where columns are known."""
    keys = job.keys or (profile.keys if profile else ())
    if not keys and profile is not None and "lead_id" in profile.fields:
        source = profile.fields["lead_id"].source
        if isinstance(source, str) and source != "lead_id":
            keys = (source,)
    if columns:
        for k in keys:
            if k not in columns:
                hint = did_you_mean(k, columns)
                raise BatchError(f"{where}: no column '{k}' to copy to the output"
                                 + (f" ({hint})" if hint else ""))
    return tuple(dict.fromkeys(keys))


def needed(rulebook: Rulebook, profile: Profile | None, keys: tuple[str, ...]) -> set[str]:
    wanted = set(profile.sources()) if profile is not None else set(rulebook.fields)
    return wanted | set(keys)


def no_columns(columns: Sequence[str], rulebook: Rulebook,
               profile: Profile | None) -> str | None:
    """Every row's error when the input has none of the columns scoring reads (None: it
    has some, or its records have keys of their own, as JSONL's do)."""
    if profile is None:
        expected = list(rulebook.fields)
    else:
        expected = sorted(profile.sources(keys=False))
        if profile.model.passthrough:
            expected += [f for f in rulebook.fields if f not in expected]
    if not columns or not expected or set(expected) & set(columns):
        return None
    return (f"no column the rule base reads (found: {names_list(columns)}; expected: "
            f"{names_list(expected)}); name the columns as the rule base does, or map them "
            "with --map")


def names_list(names: Sequence[str], shown: int = 8) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def prepare(job: Job) -> tuple[Spec, Rulebook, Profile | None]:
    """Load and check the rule base and the mapping (raises RulebaseError)."""
    rules_path = job.rules or default_rules_path()
    rules_text = _read_text(rules_path, "rule base")
    rulebook = load_rulebook_text(rules_text, str(rules_path))
    compile_rulebook(rulebook)  # what the engine refuses (too complex), said before workers
    profile = None
    mapping_text = None
    if job.mapping is not None:
        mapping_text = _read_text(job.mapping, "mapping")
        profile = load_profile_text(mapping_text, rulebook, str(job.mapping))
    spec = Spec(rules_text=rules_text, rules_file=str(rules_path), as_of=job.as_of or today(),
                mapping_text=mapping_text,
                mapping_file=str(job.mapping) if job.mapping else None, locale=job.locale,
                verdicts=_format(job.output) == "jsonl", output_format=_format(job.output))
    return spec, rulebook, profile


def _format(path: Path) -> str:
    try:
        return format_of(path)
    except InputError as e:
        raise BatchError(str(e)) from None


def _distinct_files(job: Job) -> None:
    """The outputs must not overwrite the input, the previous run, or each other."""
    reads = {"the input": job.input, **({"--compare": job.compare} if job.compare else {})}
    writes = {"--out": job.output, **({"--report": job.report} if job.report else {})}
    seen = {Path(path).resolve(): what for what, path in reads.items()}
    for what, path in writes.items():
        real = Path(path).resolve()
        if real in seen:
            raise BatchError(f"{path}: {what} is the same file as {seen[real]}; "
                             "write the output under another name")
        seen[real] = what


def run_batch(job: Job) -> Outcome:
    """Run ``job``; see the module docstring for what it raises."""
    spec, rulebook, profile = prepare(job)
    for path in (job.input, job.output, *([job.compare] if job.compare else [])):
        _format(path)
    if job.report is not None and job.report.suffix.lower() not in (".html", ".htm"):
        raise BatchError(f"{job.report}: the report is HTML; name it .html")
    _distinct_files(job)
    workers = job.workers or default_workers()
    with contextlib.ExitStack() as stack:
        try:
            reader = open_reader(job.input)
            stack.callback(reader.close)
            keys = key_columns(job, profile, reader.columns, reader.path)
            if job.watcher is not None:  # before any row is scored
                job.watcher.check(reader.columns, str(reader.path))
                keys = tuple(dict.fromkeys([*keys, job.watcher.column]))
            if profile is not None and reader.columns:  # a typo in a 'from': before any row
                problems = profile.check_columns(reader.columns, str(job.input))
                if problems:
                    raise RulebaseError(problems)
            if reader.columns and not (profile is not None and profile.model.passthrough):
                reader.select(needed(rulebook, profile, keys))
            previous = Previous(job.compare) if job.compare else None
        except InputError as e:
            raise BatchError(str(e)) from None
        if previous is not None:
            stack.callback(previous.close)
        spec = dataclasses.replace(spec, keys=keys, compare=previous is not None,
                                   no_columns=no_columns(reader.columns, rulebook, profile),
                                   rows=job.watcher is not None,
                                   values=job.watcher is not None)
        pool = scorer = None
        if workers > 1:  # first: no engine and no other thread here yet, see Pool
            # Ctrl-C waits until every worker started and the pool is on the exit stack: a
            # pool interrupted halfway through starting left a forked worker behind, waiting
            # for work forever (seen in 1 of 40 interrupts)
            with held():
                pool = Pool(spec, workers)
                stack.push(_closer(pool))
        else:
            scorer = Scorer(spec)
            stack.callback(scorer.close)
        layout = layout_of(spec, rulebook)
        outcome = Outcome(job, rulebook, spec.as_of, workers)
        watcher = job.watcher
        if watcher is not None:
            watcher.start(rulebook, spec.as_of, layout, str(job.input))
        if profile is not None and reader.columns:
            outcome.unread_columns = tuple(profile.unread_columns(reader.columns))
        writers: list[Pending] = []  # every file of the run: committed together, or none
        try:
            out = _open(job.output, layout.names, writers)
            outcome.errors_path = sibling(job.output, "errors")
            errors = _open(outcome.errors_path, ERROR_COLUMNS, writers)
            comparer = None
            if previous is not None:
                outcome.changes_path = sibling(job.output, "changes")
                changes = _open(outcome.changes_path, CHANGE_COLUMNS, writers)
                comparer = Comparer(previous, layout, changes)
            started = time.perf_counter()
            label = f"scoring {job.input.name}"
            marks: deque[int] = deque()  # input position after each partition read
            chunks = _marked(reader.partitions(PARTITION), reader, marks)
            with Progress(reader.progress, label, enabled=job.progress) as bar:
                for block in score_all(spec, chunks, scorer=scorer, pool=pool):
                    out.write_block(block.data)
                    errors.write(block.errors)
                    if comparer is not None and block.snapshots is not None:
                        for snap in block.snapshots:
                            comparer.add(snap)
                    outcome.summary.merge(block.summary)
                    if watcher is not None and block.kept is not None:
                        assert block.values is not None  # spec.values is set with spec.rows
                        for row, lead in zip(block.kept, block.values, strict=True):
                            watcher.add(row, lead)
                    bar.update(outcome.summary.leads, time.perf_counter() - started,
                               marks.popleft())
            if comparer is not None:
                outcome.comparison = comparer.finish()
            outcome.seconds = time.perf_counter() - started
            if watcher is not None:
                watcher.finish()
            if job.report is not None:
                from qualify.batch.report import write_report

                with held():
                    writers.append(write_report(job.report, outcome))
            for w in writers:  # all on disk before any rename: a full disk fails here
                w.finish()
            try:
                with held():  # all renamed, or (interrupted before this) none
                    for w in reversed(writers):  # the output last: it appears when all is done
                        w.commit()
            except KeyboardInterrupt:
                raise InterruptedWhenWritten from None
        except InputError as e:  # the input broke mid-file (a truncated Parquet file)
            _abort(writers)
            raise BatchError(str(e)) from None
        except BaseException:
            _abort(writers)
            raise
    return outcome


def _marked(chunks: Iterator[Raw], reader: Reader, marks: deque[int]) -> Iterator[Raw]:
    for chunk in chunks:
        marks.append(reader.progress()[0])
        yield chunk


def _closer(pool: Pool) -> Callable[..., None]:
    """Exit callback: wait for the workers after a run, stop them at once after a failure."""
    def close(kind: type[BaseException] | None, *_: object) -> None:
        pool.close(cancel=kind is not None)
    return close


def _open(path: Path, columns: tuple[str, ...], writers: list[Pending]) -> Writer:
    """A writer, recorded in ``writers`` before an interrupt can land: its temporary file
    is always one that ``_abort`` removes (an orphan .partial was once left in CI)."""
    with held():
        try:
            w = open_writer(path, columns)
        except InputError as e:
            raise BatchError(str(e)) from None
        writers.append(w)
    return w


def _abort(writers: list[Pending]) -> None:
    with held():  # a second Ctrl-C does not cut the clean-up short
        for w in writers:
            with contextlib.suppress(Exception):
                w.abort()
