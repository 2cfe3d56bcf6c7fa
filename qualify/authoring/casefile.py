"""Read a test file: named cases, each a lead and what the rule base should say about it.

    rules: default.yaml       # optional: the rule base (default: this file without ".test")
    as_of: "2026-01-01"       # the date days_since() counts to (default: today)
    cases:
      - name: hot lead, ready to close
        lead: {budget: 60000, is_decision_maker: true, ...}   # lead_id defaults to the name
        expect:
          status: qualified
          grade: A
          score: {min: 80}            # or an exact score: 85
          next_step: close
          traits: [urgent_need]       # these fire
          not_traits: [small_deal]    # these do not
          qualifiers: {need: met}

Every mistake is reported at once and located: YAML syntax, unknown keys, a lead naming an
unknown field or holding a bad value, an expectation naming an unknown rule, grade or state.
A case with a mistake is not run; the others are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qualify.conditions import STATES, STATUSES
from qualify.errors import LeadError, Problem, RulebaseError, did_you_mean
from qualify.leads import MAX_ID, LeadReader
from qualify.rulebook import Rulebook
from qualify.yamlsource import Positions, load_yaml_file, parse_yaml_bytes

TEST_SUFFIX = ".test.yaml"

# ----------------------------------------------------------------------------- YAML shape

Text = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ScoreRangeModel(_Model):
    min: int | None = Field(None, description="the lowest score that passes")
    max: int | None = Field(None, description="the highest score that passes")


class ExpectModel(_Model):
    """What the rule base should say; only the keys given are checked."""

    status: Text | None = Field(None, description="qualified, disqualified or needs_discovery")
    grade: Text | None = Field(None, description="a grade id, e.g. A")
    score: int | ScoreRangeModel | None = Field(
        None, description="an exact score, or a range {min: 80, max: 100}")
    next_step: Text | None = Field(None, description="the id of the next step recommended")
    traits: list[Text] | None = Field(None, description="trait ids that must fire")
    not_traits: list[Text] | None = Field(None, description="trait ids that must not fire")
    qualifiers: dict[str, Text] | None = Field(
        None, description="qualifier id -> met, unmet or unknown")


class CaseModel(_Model):
    name: Text = Field(description="what the case shows; unique in the file")
    description: str | None = None
    lead: dict[str, Any] = Field(description="lead fields as a CRM would send them")
    expect: ExpectModel
    as_of: str | None = Field(None, description="YYYY-MM-DD; overrides the file's as_of")


class CaseFileModel(_Model):
    """A test file for a rule base (``<rules>.test.yaml`` beside ``<rules>.yaml``)."""

    rules: Text | None = Field(None, description="the rule base, relative to this file")
    description: str | None = None
    as_of: str | None = Field(None, description="YYYY-MM-DD: the date days_since() counts to")
    cases: list[Any] = Field(default=[], description="the test cases (see CaseModel)")


_TAGS = {"int", "str", "bool", "float", "ScoreRangeModel"}
_HINTS = {
    "score": "write score: 85, or score: {min: 80, max: 100}",
    "lead": "write lead: {field: value, ...}",
    "traits": "write traits: [trait_id, ...]",
    "not_traits": "write not_traits: [trait_id, ...]",
    "qualifiers": "write qualifiers: {need: met, ...}",
}

# ----------------------------------------------------------------------------- checked form


@dataclass(frozen=True, slots=True)
class Expect:
    """Checked expectations, each with where it is written (for failures)."""

    status: str | None = None
    grade: str | None = None
    score: tuple[int | None, int | None] | None = None  # (min, max), inclusive
    next_step: str | None = None
    traits: tuple[str, ...] = ()
    not_traits: tuple[str, ...] = ()
    qualifiers: Mapping[str, str] = field(default_factory=dict)
    where: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # key -> (line, col)

    def is_empty(self) -> bool:
        return not (self.status or self.grade or self.score or self.next_step or self.traits
                    or self.not_traits or self.qualifiers)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    file: str
    line: int
    column: int
    lead: Mapping[str, Any]
    as_of: dt.date
    expect: Expect
    problems: tuple[Problem, ...] = ()  # a case with problems is not run

    @property
    def runnable(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class CaseFile:
    """A read test file: its cases, and the mistakes that are not any one case's."""

    path: str
    rules: Path
    found: bool = True
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    data: Any = None
    pos: Positions | None = None


def tests_path_for(rules: Path) -> Path:
    """``rules/default.yaml`` -> ``rules/default.test.yaml``."""
    return rules.with_name(rules.name.rsplit(".", 1)[0] + TEST_SUFFIX)


def rules_path_for(tests: Path) -> Path:
    """``rules/default.test.yaml`` -> ``rules/default.yaml``."""
    stem, _, suffix = tests.name.rsplit(".", 2)
    return tests.with_name(f"{stem}.{suffix}")


def is_test_file(path: Path) -> bool:
    return path.name.endswith((".test.yaml", ".test.yml"))


def read_test_file(path: Path, raw: bytes | None = None) -> CaseFile:
    """Parse a test file (or its bytes ``raw``, already read) and find its rule base; cases
    are checked later (``check_cases``)."""
    out = CaseFile(str(path), rules_path_for(path))
    if raw is None and not path.exists():
        out.found = False
        return out
    try:
        data, pos = load_yaml_file(path) if raw is None else parse_yaml_bytes(raw, str(path))
    except RulebaseError as e:
        out.problems = e.problems
        return out
    out.data, out.pos = data, pos
    if not isinstance(data, dict):
        out.problems.append(pos.problem((), "bad-document", "a test file is a mapping",
                                        "start with 'cases:'"))
        out.data = None
        return out
    try:
        cases = data.get("cases")  # validated item by item later
        CaseFileModel.model_validate(data | {"cases": [] if cases is None else cases})
    except ValidationError as e:
        out.problems.extend(_shape_problems(e, pos, (), CaseFileModel))
    rules = data.get("rules")
    if isinstance(rules, str) and rules:
        out.rules = path.parent / rules
        if not out.rules.is_file():
            out.problems.append(pos.problem(("rules",), "file-not-found",
                                            f"rule base '{rules}' not found",
                                            f"give a path relative to {path.parent}/"))
    return out


def check_cases(tf: CaseFile, rulebook: Rulebook, today: dt.date,
                as_of: dt.date | None = None) -> None:
    """Validate every case of a read test file against the rule base (fills ``tf.cases``).

    Dates: a case's own ``as_of``, else ``as_of`` (the command line's), else the file's,
    else ``today``.
    """
    if tf.data is None or tf.pos is None:
        return
    pos = tf.pos
    in_file = _date(tf.data.get("as_of"), ("as_of",), pos, tf.problems)
    default_as_of = as_of or in_file or today
    raw_cases = tf.data.get("cases")
    if not isinstance(raw_cases, list):
        return  # reported as a shape problem
    checker = _CaseChecker(rulebook, pos)
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_cases):
        tf.cases.append(checker.case(i, raw, default_as_of, seen))


class _CaseChecker:
    def __init__(self, rulebook: Rulebook, pos: Positions) -> None:
        self.rb = rulebook
        self.pos = pos
        self.reader = LeadReader(rulebook)
        self.traits = [t.id for t in rulebook.traits]
        self.steps = [s.id for s in rulebook.next_steps]
        self.qualifiers = [q.id for q in rulebook.qualifiers]
        self.grades = [g.id for g in rulebook.grades]

    def case(self, i: int, raw: Any, default_as_of: dt.date,
             seen: dict[str, int]) -> Case:
        path: tuple[Any, ...] = ("cases", i)
        at = self.pos.of(path)
        problems: list[Problem] = []
        if not isinstance(raw, dict):
            problems.append(self.pos.problem(path, "bad-value", "a case is a mapping",
                                             "give it name:, lead: and expect:"))
            return Case(f"case {i + 1}", self.pos.file, at.line, at.column, {},
                        default_as_of, Expect(), tuple(problems))
        try:
            CaseModel.model_validate(raw)
        except ValidationError as e:
            problems.extend(_shape_problems(e, self.pos, path, CaseModel))
        # then every part that has the right shape, so no mistake hides another
        name = raw.get("name")
        name = name if isinstance(name, str) and name else f"case {i + 1}"
        if name in seen:
            problems.append(self.pos.problem((*path, "name"), "duplicate-name",
                                             f"duplicate case name '{name}'",
                                             f"first used at line {seen[name]}"))
        else:
            seen[name] = self.pos.of((*path, "name")).line
        as_of = default_as_of
        if isinstance(raw.get("as_of"), str):
            as_of = _date(raw["as_of"], (*path, "as_of"), self.pos, problems) or as_of
        lead: dict[str, Any] = {}
        if isinstance(raw.get("lead"), dict):
            lead = self.lead(raw["lead"], name, path, problems)
        expect = Expect()
        try:
            model = ExpectModel.model_validate(raw.get("expect"))
        except ValidationError:
            pass  # reported with the case's shape
        else:
            expect = self.expect(model, (*path, "expect"), problems)
        problems.sort(key=lambda p: (p.line, p.column))
        return Case(name, self.pos.file, at.line, at.column, lead, as_of, expect,
                    tuple(problems))

    def lead(self, raw: dict[str, Any], name: str, path: tuple[Any, ...],
             problems: list[Problem]) -> dict[str, Any]:
        lead = dict(raw)
        lead.setdefault("lead_id", name[:MAX_ID])
        for key in raw:
            if key not in self.rb.fields:
                problems.append(self.pos.problem(
                    (*path, "lead", key), "unknown-field",
                    f"'{key}' is not a field of the rule base",
                    did_you_mean(key, self.rb.fields) or "see 'fields:' in the rule base",
                    key=True))
                del lead[key]
        trial = dict(lead)
        while True:  # every bad value, not only the first
            try:
                self.reader.read(trial)
                break
            except LeadError as e:
                if e.field is None or e.field not in trial:  # e.g. a required field missing
                    problems.append(self.pos.problem((*path, "lead"), "bad-lead", str(e)))
                    break
                problems.append(self.pos.problem((*path, "lead", e.field), "bad-value",
                                                 f"{e.field}: {e.reason}"))
                del trial[e.field]
        return lead

    def expect(self, m: ExpectModel, path: tuple[Any, ...],
               problems: list[Problem]) -> Expect:
        def known(value: str | None, key: Any, choices: list[str], what: str,
                  where: tuple[Any, ...] | None = None) -> None:
            if value is not None and value not in choices:
                problems.append(self.pos.problem(
                    where or (*path, key), "unknown-id" if what.endswith("id") else
                    "unknown-value", f"unknown {what} '{value}'",
                    did_you_mean(value, choices) or f"one of: {', '.join(choices)}"))

        known(m.status, "status", list(STATUSES), "status")
        known(m.grade, "grade", self.grades, "grade")
        known(m.next_step, "next_step", self.steps, "next step id")
        for key in ("traits", "not_traits"):
            for j, tid in enumerate(getattr(m, key) or ()):
                where = (*path, key, j)
                if tid not in self.traits and tid in self.qualifiers + self.steps:
                    kind = "qualifier" if tid in self.qualifiers else "next step"
                    problems.append(self.pos.problem(
                        where, "unknown-id", f"'{tid}' is a {kind}, not a trait",
                        f"use qualifiers: {{{tid}: met}}" if kind == "qualifier"
                        else f"use next_step: {tid}"))
                else:
                    known(tid, key, self.traits, "trait id", where)
        both = set(m.traits or ()) & set(m.not_traits or ())
        if both:
            problems.append(self.pos.problem(
                (*path, "not_traits"), "contradiction",
                f"{', '.join(sorted(both))} both in traits and not_traits"))
        for qid, state in (m.qualifiers or {}).items():
            if qid not in self.qualifiers:
                problems.append(self.pos.problem(
                    (*path, "qualifiers", qid), "unknown-id", f"unknown qualifier id '{qid}'",
                    did_you_mean(qid, self.qualifiers)
                    or f"one of: {', '.join(self.qualifiers)}", key=True))
            known(state, "qualifiers", list(STATES), "qualifier state",
                  (*path, "qualifiers", qid))
        score: tuple[int | None, int | None] | None = None
        if isinstance(m.score, int):
            score = (m.score, m.score)
        elif m.score is not None:
            score = (m.score.min, m.score.max)
            if score == (None, None):
                problems.append(self.pos.problem((*path, "score"), "bad-value",
                                                 "score range without min or max",
                                                 _HINTS["score"]))
            elif None not in score and score[0] > score[1]:  # type: ignore[operator]
                problems.append(self.pos.problem((*path, "score"), "bad-value",
                                                 f"score min {score[0]} is above max {score[1]}"))
        expect = Expect(
            status=m.status, grade=m.grade, score=score, next_step=m.next_step,
            traits=tuple(m.traits or ()), not_traits=tuple(m.not_traits or ()),
            qualifiers=dict(m.qualifiers or {}),
            where={k: _at(self.pos, (*path, k)) for k in ExpectModel.model_fields})
        if expect.is_empty():
            problems.append(self.pos.problem(
                path, "no-expectations", "the case expects nothing, so it can never fail",
                "add status, grade, score, next_step, traits, not_traits or qualifiers",
                key=True))
        return expect


def _at(pos: Positions, path: tuple[Any, ...]) -> tuple[int, int]:
    p = pos.of(path)
    return p.line, p.column


def _date(value: Any, path: tuple[Any, ...], pos: Positions,
          problems: list[Problem]) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append(pos.problem(path, "bad-value", f"{value!r} is not a date",
                                    'write it as "YYYY-MM-DD"'))
        return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (for "did you mean" hints)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            continue  # list indexes, dict keys and union tags keep the current model
        ann = current.model_fields[part].annotation
        nested = [a for a in (ann, *getattr(ann, "__args__", ()))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        current = nested[0] if nested else None
    return current


def _shape_problems(err: ValidationError, pos: Positions, prefix: tuple[Any, ...],
                    model: type[BaseModel]) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if x not in _TAGS and not (
            isinstance(x, str) and "[" in x))  # union member tags are not places
        full = (*prefix, *loc)
        if loc in seen:
            continue
        seen.add(loc)
        if e["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            choices = list(parent.model_fields) if parent else []
            out.append(pos.problem(full, "unknown-key", f"unknown key '{loc[-1]}'",
                                   did_you_mean(str(loc[-1]), choices)
                                   or f"allowed: {', '.join(choices)}", key=True))
        elif e["type"] == "missing":
            out.append(pos.problem(full[:-1], "missing-key", f"missing key '{loc[-1]}'",
                                   f"add '{loc[-1]}:'"))
        else:
            where = ".".join(str(x) for x in loc)
            key = next((str(x) for x in reversed(loc) if isinstance(x, str)), "")
            out.append(pos.problem(full, "bad-value",
                                   f"{where}: {e['msg'].lower()} (got {e.get('input')!r})",
                                   _HINTS.get(key)))
    return out
