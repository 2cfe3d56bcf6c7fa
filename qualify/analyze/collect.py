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
from qualify.batch.pipeline import BatchError, Job, prepare
from qualify.batch.readers import BadRecord, InputError, Item, open_reader
from qualify.batch.runner import PARTITION
from qualify.errors import did_you_mean
from qualify.rulebook import Rulebook

MAX_ERRORS_KEPT = 5  # error lines kept to show
Bools = npt.NDArray[np.bool_]


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
    spec = dataclasses.replace(spec, keys=(outcome,), verdicts=False)
    try:
        reader = open_reader(input_path)
    except InputError as e:
        raise BatchError(str(e)) from None
    try:
        if reader.columns and outcome not in reader.columns:
            hint = did_you_mean(outcome, reader.columns)
            raise AnalyzeError(f"{input_path}: no column '{outcome}' for --outcome"
                               + (f" ({hint})" if hint else ""))
        unread: list[str] = []
        if profile is not None and reader.columns:  # the other columns: for proposals
            unread = [c for c in reader.columns if c not in profile.sources() and c != outcome]
        if reader.columns and not (profile is not None and profile.model.passthrough):
            wanted = set(profile.sources()) if profile is not None else set(rulebook.fields)
            reader.select(wanted | {outcome} | set(unread))
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


def _chunks(items: Iterator[Item]) -> Iterator[list[Item]]:
    while chunk := list(islice(items, PARTITION)):
        yield chunk


def _score(data: Dataset, scorer: Scorer, items: Iterator[Item], reader: OutcomeReader) -> None:
    rb, layout, profile = data.rulebook, scorer.layout, scorer.profile
    names = layout.names
    at = {n: i for i, n in enumerate(names)}
    q_cols = [(q.id, at[f"qualifier_{q.id}"]) for q in rb.qualifiers]
    trait_ids = [t.id for t in rb.traits]
    data.qualifiers = {q: [] for q, _ in q_cols}
    data.traits = {t: [] for t in trait_ids}
    field_names = list(rb.fields)
    placeholders = {m.strip().casefold() for m in profile.model.missing} if profile else set()
    data.fields = {f: [] for f in field_names}
    for chunk in _chunks(items):
        part = score_partition(scorer, chunk)
        for (line, record), row in zip(chunk, part.rows, strict=True):
            data.rows += 1
            error = row[at["error"]]
            if error is not None:
                data.errors += 1
                if len(data.error_lines) < MAX_ERRORS_KEPT:
                    data.error_lines.append(f"{data.source}:{line}: {error}")
                continue
            y = reader.read(row[1])  # the key column: the outcome, as text
            if y is None:
                data.no_outcome += 1
                continue
            assert not isinstance(record, BadRecord)
            data.lines.append(line)
            data.y.append(y)
            data.score.append(int(row[at["score"]]))
            data.grade.append(str(row[at["grade"]]))
            data.status.append(str(row[at["status"]]))
            data.next_step.append(str(row[at["next_step"]]))
            for q, i in q_cols:
                data.qualifiers[q].append(str(row[i]))
            fired = set(str(row[at["traits"]] or "").split(";"))
            for t in trait_ids:
                data.traits[t].append(t in fired)
            lead = profile.apply(record) if profile is not None else record
            for f in field_names:
                data.fields[f].append(lead.get(f))
            for c, values in data.unread.items():
                value = record.get(c)
                if isinstance(value, str) and value.strip().casefold() in placeholders:
                    value = None  # the mapping's placeholders for missing ("Select", "")
                values.append(value)
    data.unknown_outcomes = reader.unknown
