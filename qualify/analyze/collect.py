"""Score an input through the batch machinery and keep, per lead, the verdict and the outcome.

The rule base and the mapping are loaded and checked by ``qualify.batch.pipeline.prepare``;
leads are read by the batch readers and scored in this process by
``qualify.batch.score_partition`` (the batch's unit of work), with the outcome column carried
through as a key column. Every input row ends up analysed or counted: a lead that could not
be scored (``errors``), or one with a blank or unreadable outcome (``no_outcome``). Beside
each verdict it keeps the lead's fields as mapped (for leakage) and, with a mapping, the
input columns the mapping does not read (for proposals).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qualify.analyze.outcomes import AnalyzeError, OutcomeReader
from qualify.batch import Scorer, score_partition
from qualify.batch.job import Job
from qualify.batch.pipeline import BatchError, key_columns, names_list, prepare
from qualify.batch.readers import BadRecord, InputError, Item, open_reader
from qualify.batch.rows import LIST_SEP, Layout, Row
from qualify.batch.runner import PARTITION, Values
from qualify.errors import did_you_mean
from qualify.rulebook import Rulebook

MAX_ERRORS_KEPT = 5  # error lines kept to show
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Scored:
    """One scored lead as the call list shows it (with or without an outcome)."""

    line: int
    lead_id: str | None
    keys: tuple[Any, ...]  # the key columns' values (Dataset.key_names)
    score: int
    grade: str
    status: str
    next_step: str
    traits: tuple[str, ...]  # fired
    outcome: bool | None  # None: blank or unreadable (an open lead)


@dataclass(slots=True)
class Dataset:
    """The analysed leads (in input order) and the count of every row left out."""

    rulebook: Rulebook
    source: str
    outcome: str  # the outcome column's name
    as_of: dt.date
    rows: int = 0  # every input row
    errors: int = 0  # leads that could not be scored
    error_lines: list[str] = field(default_factory=list)  # the first few, as file:line: why
    no_outcome: int = 0  # scored, but the outcome blank or unreadable
    unknown_outcomes: Counter[str] = field(default_factory=Counter)  # unreadable values
    lines: list[int] = field(default_factory=list)
    y: list[bool] = field(default_factory=list)
    score: list[int] = field(default_factory=list)
    grade: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    next_step: list[str] = field(default_factory=list)
    qualifiers: dict[str, list[str]] = field(default_factory=dict)  # id -> state per lead
    traits: dict[str, list[bool]] = field(default_factory=dict)  # id -> fired per lead
    fields: dict[str, list[Any]] = field(default_factory=dict)  # lead field -> value (mapped)
    # input columns no rule reads (with a mapping: not mapped, not a key) -> value
    unread: dict[str, list[Any]] = field(default_factory=dict)
    key_names: list[str] = field(default_factory=list)  # key columns kept (not the outcome)
    scored: list[Scored] = field(default_factory=list)  # every lead scored, for the call list

    @property
    def leads(self) -> int:
        return len(self.y)

    def outcomes(self) -> Bools:
        return np.asarray(self.y, dtype=bool)

    def scores(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.score, dtype=float)

    def fired(self) -> npt.NDArray[np.float64]:
        """Leads x traits (in rule-base order): 1.0 where the trait fired."""
        ids = [t.id for t in self.rulebook.traits]
        if not ids:
            return np.zeros((self.leads, 0))
        return np.column_stack([np.asarray(self.traits[i], dtype=float) for i in ids])


def collect(input_path: Path, outcome: str, positive: Sequence[str] = (), *,
            rules: Path | None = None, mapping: Path | None = None,
            as_of: dt.date | None = None) -> Dataset:
    """Score every lead of ``input_path`` and read its outcome. Raises AnalyzeError (no such
    column), BatchError (a file) or RulebaseError (the rule base or the mapping)."""
    job = Job(input=input_path, output=Path("analysis.csv"), rules=rules, mapping=mapping,
              as_of=as_of, workers=1)
    spec, rulebook, profile = prepare(job)
    try:
        reader = open_reader(input_path)
    except InputError as e:
        raise BatchError(str(e)) from None
    try:
        check_outcome_column(reader.columns, str(reader.path), outcome)
        keys = key_columns(job, profile, reader.columns, reader.path)
        keys = tuple(dict.fromkeys([*keys, outcome]))
        spec = dataclasses.replace(spec, keys=keys, verdicts=False, values=True)
        unread: list[str] = []
        if profile is not None and reader.columns:  # the other columns: for proposals
            unread = [c for c in reader.columns if c not in profile.sources() and c != outcome]
        if reader.columns and not (profile is not None and profile.model.passthrough):
            wanted = set(profile.sources()) if profile is not None else set(rulebook.fields)
            reader.select(wanted | set(keys) | set(unread))
        scorer = Scorer(spec)
        try:
            data = Dataset(rulebook, str(input_path), outcome, spec.as_of,
                           unread={c: [] for c in unread})
            _score(data, scorer, iter(reader), OutcomeReader(positive))
        finally:
            scorer.close()
    except InputError as e:
        raise BatchError(str(e)) from None
    finally:
        reader.close()
    if not reader.columns and data.rows and data.no_outcome == data.rows - data.errors \
            and not data.unknown_outcomes:
        raise AnalyzeError(f"{input_path}: no lead has a value for --outcome '{outcome}'")
    return data


def check_outcome_column(columns: tuple[str, ...], where: str, outcome: str) -> None:
    """Raises AnalyzeError when the input's columns are known and ``outcome`` is not one."""
    if columns and outcome not in columns:
        hint = did_you_mean(outcome, columns)
        raise AnalyzeError(f"{where}: no column '{outcome}' for --outcome"
                           + (f" ({hint})" if hint else "")
                           + f"; the columns are: {names_list(columns)}")


def _chunks(items: Iterator[Item]) -> Iterator[list[Item]]:
    while chunk := list(islice(items, PARTITION)):
        yield chunk


class Rows:
    """Reads output rows (the batch layout, ``qualify.batch.rows``) into ``data``: the
    analysis of ``qualify analyze`` and of ``qualify batch --outcome`` alike."""

    def __init__(self, data: Dataset, layout: Layout, reader: OutcomeReader, *,
                 keep_leads: bool = True) -> None:
        """``keep_leads``: keep every scored lead in ``data.scored`` (for the call list)."""
        self.data, self.reader, self.keep_leads = data, reader, keep_leads
        data.fields = {f: [] for f in data.rulebook.fields}
        self.field_lists = list(data.fields.values())
        at = {n: i for i, n in enumerate(layout.names)}
        self.error_at, self.traits_at, self.lead_id_at = at["error"], at["traits"], at["lead_id"]
        # score, grade, status, next step: each column beside the list it fills
        self.columns: list[tuple[int, list[Any]]] = [
            (at["score"], data.score), (at["grade"], data.grade), (at["status"], data.status),
            (at["next_step"], data.next_step)]
        rb = data.rulebook
        data.qualifiers = {q.id: [] for q in rb.qualifiers}
        data.traits = {t.id: [] for t in rb.traits}
        self.q_cols = [(at[f"qualifier_{q}"], states) for q, states in data.qualifiers.items()]
        self.t_lists = list(data.traits.items())
        keys = list(layout.keys)
        self.outcome_at = 1 + keys.index(data.outcome)
        self.key_at = [1 + i for i, k in enumerate(keys) if k != data.outcome]
        data.key_names = [k for k in keys if k != data.outcome]

    def add(self, row: Row, values: Values | None) -> bool:
        """Count ``row`` (``values``: its lead's fields, Spec.values); True when it is
        analysed (scored, with an outcome). Runs once per lead in the batch's parent process:
        kept lean."""
        data = self.data
        data.rows += 1
        error = row[self.error_at]
        if error is not None:
            data.errors += 1
            if len(data.error_lines) < MAX_ERRORS_KEPT:
                data.error_lines.append(f"{data.source}:{row[0]}: {error}")
            return False
        y = self.reader.read(row[self.outcome_at])
        traits = row[self.traits_at] or ""
        fired = traits.split(LIST_SEP) if traits else []
        if self.keep_leads:
            score, grade, status, step = (row[i] for i, _ in self.columns)
            data.scored.append(Scored(
                int(row[0]), row[self.lead_id_at], tuple(row[i] for i in self.key_at),
                int(score), grade, status, step, tuple(fired), y))
        if y is None:
            data.no_outcome += 1
            return False
        data.lines.append(int(row[0]))
        data.y.append(y)
        for i, column in self.columns:
            column.append(row[i])
        for i, states in self.q_cols:
            states.append(row[i])
        for t, hits in self.t_lists:
            hits.append(t in fired)
        assert values is not None, "a scored row without its lead's values (Spec.values)"
        for values_of, value in zip(self.field_lists, values, strict=True):
            values_of.append(value)
        return True

    def finish(self) -> None:
        self.data.unknown_outcomes = self.reader.unknown


def _score(data: Dataset, scorer: Scorer, items: Iterator[Item], reader: OutcomeReader) -> None:
    rows = Rows(data, scorer.layout, reader)
    profile = scorer.profile
    placeholders = {m.strip().casefold() for m in profile.model.missing} if profile else set()
    for chunk in _chunks(items):
        part = score_partition(scorer, chunk)
        assert part.values is not None
        for (_, record), row, lead in zip(chunk, part.rows, part.values, strict=True):
            if not rows.add(row, lead):
                continue
            assert not isinstance(record, BadRecord)
            for c, values in data.unread.items():
                value = record.get(c)
                if isinstance(value, str) and value.strip().casefold() in placeholders:
                    value = None  # the mapping's placeholders for missing ("Select", "")
                values.append(value)
    rows.finish()
