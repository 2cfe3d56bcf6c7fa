"""Verdicts share the engine's kept parts, so no caller may change them (issue 16, item 4:
appending to ``verdict.qualifiers["need"]["evidence"]`` changed the next lead's verdict)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import pickle
from typing import Any

import pytest

from qualify import Engine, Rulebook
from qualify.synthetic import generate

AS_OF = dt.date(2026, 1, 1)


def vandalise(value: Any) -> None:
    """Try every change a careless caller might make, everywhere in ``value``."""
    if isinstance(value, dict):
        for key in list(value):
            vandalise(value[key])
        for change in (lambda: value.__setitem__("x", 1), lambda: value.pop(next(iter(value))),
                       lambda: value.update(x=1), value.clear):
            with contextlib.suppress(TypeError, StopIteration):
                change()
    elif isinstance(value, list):
        for item in list(value):
            vandalise(item)
        for change in (lambda: value.append("x"), lambda: value.__setitem__(0, "x"),
                       value.reverse, value.clear):
            with contextlib.suppress(TypeError, IndexError):
                change()


def test_a_caller_cannot_reach_the_cache(default_rulebook: Rulebook) -> None:
    """Score 300 leads twice (the second time from kept parts), vandalising each verdict;
    then every verdict still equals a fresh engine's."""
    leads = list(generate(300, seed=7))
    with Engine(default_rulebook) as engine, Engine(default_rulebook) as fresh:
        for _ in range(2):
            for lead in leads:
                for locale in ("en", "zh"):
                    vandalise(engine.score(lead, as_of=AS_OF, locale=locale).__dict__)
        for lead in leads:
            for locale in ("en", "zh"):
                assert engine.score(lead, as_of=AS_OF, locale=locale).model_dump() == \
                    fresh.score(lead, as_of=AS_OF, locale=locale).model_dump()


def test_a_shared_part_says_why_it_refuses(engine: Engine) -> None:
    """The error tells the caller what to do instead; copies are plain and free to change."""
    lead = {"lead_id": "a", "budget": 50000, "payment_history": "prompt"}
    engine.score(lead, as_of=AS_OF)
    verdict = engine.score(lead, as_of=AS_OF)
    evidence = verdict.qualifiers["buying_power"]["evidence"]
    with pytest.raises(TypeError, match="read-only: change a copy"):
        evidence.append({"field": "x"})  # type: ignore[typeddict-item]
    for copied in (copy.deepcopy(verdict), pickle.loads(pickle.dumps(verdict)),
                   verdict.model_copy(deep=True)):
        part = copied.qualifiers["buying_power"]
        assert type(part) is dict and type(part["evidence"]) is list
        part["evidence"].append({"field": "x"})  # type: ignore[typeddict-item]
    assert verdict.qualifiers["buying_power"]["evidence"] == evidence
