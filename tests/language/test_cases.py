"""The condition language against hand-written results (``cases.yaml``), as OPA keeps
``want_result`` beside each query: the engine and the reference evaluator must both give
what the specification says. The reference reads the condition text with its own parser
(``tests/reference.py``), and the results are written by hand, so a parser bug has nowhere
to hide."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualify import Engine, load_rulebook_text
from qualify.leads import LeadReader
from qualify.rulebook import Rulebook
from tests.reference import evaluate, schema_of

AS_OF = dt.date(2026, 1, 1)
CASES = yaml.safe_load((Path(__file__).with_name("cases.yaml")).read_text(encoding="utf-8"))
WANT = {True: True, False: False, "unknown": None}
FIELDS = """
  n: {type: number}
  i: {type: integer}
  e: {type: enum, values: [a, b, c]}
  b: {type: boolean}
  s: {type: string}
  l: {type: list}
  d: {type: date}
"""


def _quoted(condition: str) -> str:
    return "'" + condition.replace("'", "''") + "'"


def _rulebook() -> Rulebook:
    """One trait per case, in file order (a qualifier reads nothing the cases read)."""
    traits = "".join(f"  - {{id: t{k}, kind: golden, points: 1, when: {_quoted(c['when'])}, "
                     "label: {en: t, zh: t}}\n" for k, c in enumerate(CASES["cases"]))
    return load_rulebook_text(f"""
rulebook: language
version: 1
fields:{FIELDS}
qualifiers:
  q: {{label: {{en: q, zh: q}}, when: 'true'}}
traits:
{traits}grades:
  - {{id: A, min_score: 0, label: {{en: a, zh: a}}}}
next_steps:
  - {{id: last, label: {{en: l, zh: l}}, reason: {{en: r, zh: r}}}}
""", "language.yaml")


RULEBOOK = _rulebook()


def _examples() -> Iterator[Any]:
    for k, case in enumerate(CASES["cases"]):
        for lead in case["leads"]:
            yield pytest.param(k, case["when"], lead["lead"], WANT[lead["want"]],
                               id=f"{case['when']} | {lead['lead']}")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with Engine(RULEBOOK) as e:
        yield e


@pytest.mark.parametrize(("index", "when", "lead", "want"), list(_examples()))
def test_engine_and_reference_give_the_written_result(
        engine: Engine, index: int, when: str, lead: dict[str, Any], want: bool | None) -> None:
    """Trait t<index> has the case's condition: its state on the lead is ``want``."""
    decided = engine.decide({"lead_id": "x", **lead}, AS_OF)
    got = decided.states[len(RULEBOOK.qualifiers) + index]
    assert got is want, f"engine: {when} on {lead} is {got}, the spec says {want}"
    read = LeadReader(RULEBOOK).read({"lead_id": "x", **lead})
    ref = evaluate(when, read, AS_OF, schema_of(RULEBOOK))
    assert ref is want, f"reference: {when} on {lead} is {ref}, the spec says {want}"


def test_every_case_has_each_outcome_it_can() -> None:
    """The table exercises true and false everywhere, and unknown wherever a field is read
    without known() (so a regression to two-valued logic cannot pass)."""
    for case in CASES["cases"]:
        wants = {lead["want"] for lead in case["leads"]}
        if case["when"] != "true":
            assert {True, False} <= wants, case["when"]
