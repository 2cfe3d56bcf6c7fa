"""The decision memo answers exactly what durable-rules answers, with fewer engine calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualify import Engine, kept, synthetic
from qualify import memo as memo_module
from qualify.adapter import Condition, Matcher
from qualify.compiler import guarded
from qualify.memo import Memo, components

AS_OF = dt.date(2026, 1, 1)
NUMBERS = [-3, 0, 2.5, 10, 10.0, 1000, 2**53, 2**60]
TEXTS = ["a", "b", "北京", "Zoë"]
# Values near the constants (equal, between, beyond), of the key's own type: leads.py types
# every value, and the engine compares a string with a number wrongly and not even
# consistently ("" == -3 fails on the first call and matches after), so no memo could agree.
VALUES = {
    "x": [*NUMBERS, -4, 1, 2, 2.4999, 3, 9.5, 10.5, 999, 2**53 + 1, 2**61, -(2**61), -0.0],
    "s": [*TEXTS, "c", "", "aa", "Zo"],
    "b": [True, False],
}
VALUES["y"] = VALUES["x"]
VALUES["m"] = [*VALUES["s"], 1, 2.5]  # presence tests only
NUM_OPS = ["==", "$neq", "$lt", "$lte", "$gt", "$gte"]


def _atom(op: str, key: str, value: Any) -> Condition:
    return {key: value} if op == "==" else {op: {key: value}}


@st.composite
def atoms(draw: st.DrawFn) -> Condition:
    key = draw(st.sampled_from(["x", "y", "s", "b", "m"]))
    if key == "m" or draw(st.integers(0, 5)) == 0:
        return {draw(st.sampled_from(["$ex", "$nex"])): {key: 1}}
    if key in ("x", "y"):
        return _atom(draw(st.sampled_from(NUM_OPS)), key, draw(st.sampled_from(NUMBERS)))
    if key == "b":
        return _atom(draw(st.sampled_from(["==", "$neq"])), key, draw(st.booleans()))
    # strings: equality (classed by the constants) or ordering (classed by the value)
    op = draw(st.sampled_from(["==", "$neq", "==", "$neq", "$lt", "$gte"]))
    return _atom(op, key, draw(st.sampled_from(TEXTS)))


def conditions() -> st.SearchStrategy[Condition]:
    return st.recursive(
        atoms(),
        lambda kids: st.builds(lambda op, items: {op: items}, st.sampled_from(["$and", "$or"]),
                               st.lists(kids, min_size=2, max_size=3)),
        max_leaves=4).map(guarded)


@st.composite
def facts(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.sets(st.sampled_from(sorted(VALUES)), max_size=5))
    return {k: draw(st.sampled_from(VALUES[k])) for k in sorted(keys)}


class Counting:
    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.calls = 0

    def __call__(self, fact: Mapping[str, Any]) -> set[str]:
        self.calls += 1
        return self.matcher.match(fact)


class TestAgreement:
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(conditions(), min_size=1, max_size=6), st.lists(facts(), min_size=1,
                                                                       max_size=40))
    def test_memo_answers_what_the_engine_answers(self, conds: list[Condition],
                                                  leads: list[dict[str, Any]]) -> None:
        rules = {f"r{i}": c for i, c in enumerate(conds)}
        m = Matcher(rules, "memo")
        try:
            memo = Memo(rules, m.match)
            # the second pass is answered per component, the third by whole class keys
            for fact in [*leads, *leads, *leads]:
                assert memo.match(fact) == m.match(fact), fact
        finally:
            m.close()

    def test_default_rules_same_verdicts_with_and_without_memo(self) -> None:
        """Decisions and explanations: days_since moves with as_of, words with locale."""
        leads = list(synthetic.generate(3000, seed=7, bad_rate=0))
        days = [AS_OF, AS_OF + dt.timedelta(days=45)]
        with Engine.from_path() as fast, Engine.from_path(memo=False) as plain:
            for i, lead in enumerate(leads):
                as_of, locale = days[i % 2], ("en", "zh")[i // 2 % 2]
                assert fast.score(lead, as_of=as_of, locale=locale) == \
                    plain.score(lead, as_of=as_of, locale=locale)

    def test_equal_numbers_of_other_types_are_explained_as_given(self) -> None:
        """Equal numbers of other types (10000, 10000.0; 0.0, -0.0) are shown as the lead
        reader gives them, memo or not."""
        with Engine.from_path() as fast, Engine.from_path(memo=False) as plain:
            for budget in (10000, 10000.0, 10000, 0.0, -0.0, 0):
                lead = {"lead_id": "L", "budget": budget, "annual_revenue": budget}
                assert fast.score(lead, as_of=AS_OF).model_dump_json() == \
                    plain.score(lead, as_of=AS_OF).model_dump_json(), budget

    def test_a_verdict_stays_as_it_was_given(self) -> None:
        """Verdicts share explained parts; scoring other leads never changes one."""
        leads = list(synthetic.generate(500, seed=3, bad_rate=0))
        with Engine.from_path() as engine:
            first = engine.score(leads[0], as_of=AS_OF)
            before = first.model_dump_json()
            for lead in leads:
                engine.score(lead, as_of=AS_OF)
            assert first.model_dump_json() == before


class TestMemo:
    def test_same_class_asks_the_engine_once(self) -> None:
        rules = {"big": {"$gte": {"x": 10}}, "red": {"s": "red"}}
        m = Matcher(rules, "once")
        engine = Counting(m)
        memo = Memo(rules, engine)
        try:
            assert memo.match({"x": 12, "s": "blue"}) == {"big"}
            assert memo.match({"x": 999.5, "s": "green"}) == {"big"}  # same classes
            assert engine.calls == 1
            assert memo.match({"x": 10, "s": "red"}) == {"big", "red"}  # 10 is on the bound
            assert memo.match({"x": 9, "s": "red"}) == {"red"}
            assert engine.calls == 3
            assert memo.match({"s": "red"}) == {"red"}  # x missing: a class of its own
            assert engine.calls == 4
            assert (memo.hits, memo.misses) == (1, 4)
        finally:
            m.close()

    def test_a_hit_in_every_component_needs_no_engine(self) -> None:
        rules = {"a": {"$gt": {"x": 0}}, "b": {"$lt": {"y": 0}}}
        m = Matcher(rules, "parts")
        engine = Counting(m)
        memo = Memo(rules, engine)
        try:
            memo.match({"x": 1, "y": 5})
            memo.match({"x": -1, "y": -5})
            assert memo.match({"x": 7, "y": -7}) == {"a", "b"}  # learnt from two leads
            assert engine.calls == 2
        finally:
            m.close()

    def test_bool_and_number_keep_their_own_classes(self) -> None:
        """The engine reads true as 1: a bool must never share a number's class."""
        rules = {"one": {"x": 1}, "t": {"x": True}}
        m = Matcher(rules, "bools")
        memo = Memo(rules, m.match)
        try:
            for v in (1, True, 1.0, False, 0, True, 1):
                assert memo.match({"x": v}) == m.match({"x": v}), v
        finally:
            m.close()

    def test_strings_under_an_ordering_are_classed_by_value(self) -> None:
        """Equality tests class the strings they do not name together; an ordering cannot."""
        rules = {"lt": {"$lt": {"s": "b"}}, "eq": {"t": "x"}}
        m = Matcher(rules, "order")
        engine = Counting(m)
        memo = Memo(rules, engine)
        try:
            for s, t in (("a", "y"), ("c", "z"), ("", "x"), ("zz", "w")):
                assert memo.match({"s": s, "t": t}) == m.match({"s": s, "t": t}), (s, t)
            assert engine.calls == 4
            assert memo.match({"s": "c", "t": "v"}) == set()  # both classes seen
            assert engine.calls == 4
        finally:
            m.close()

    def test_a_full_memo_keeps_answering(self) -> None:
        rules = {"big": {"$gte": {"x": 10}}}
        m = Matcher(rules, "full")
        engine = Counting(m)
        memo = Memo(rules, engine, size=1)
        try:
            assert memo.match({"x": 1}) == set()
            assert memo.match({"x": 11}) == {"big"}
            assert memo.match({"x": 12}) == {"big"}
            assert engine.calls == 3  # the second class was never stored
        finally:
            m.close()

    def test_whole_tuples_rest_while_they_do_not_pay(self,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        """Facts that never repeat as a whole: once the whole-tuple table fills without
        enough hits it rests, then tries again; facts that repeat keep it on. Answers are
        the engine's throughout."""
        monkeypatch.setattr(memo_module, "WHOLES", 4)
        monkeypatch.setattr(kept, "REST", 2)
        rules = {f"{k}{i}": {"$gt": {k: 10 * i}} for k in "xy" for i in range(4)}
        m = Matcher(rules, "rest")
        memo = Memo(rules, m.match)
        try:
            values = [-5, 5, 15, 25, 35]  # five classes of x, five of y: 25 whole tuples
            new = [{"x": x, "y": y} for x in values for y in values]
            rested = []
            for fact in new * 2:
                assert memo.match(fact) == m.match(fact), fact
                rested.append(memo._wholes.rest > 0)
            assert any(rested) and not all(rested)  # it rested, and tried again
            again = Memo(rules, m.match)
            for fact in [f for f in new for _ in range(3)] * 2:  # each whole tuple 3 times
                assert again.match(fact) == m.match(fact), fact
                assert again._wholes.rest == 0  # twice as many hits as new tuples: it pays
            same = {"x": 15, "y": -5}
            first = again.match(same)
            assert again.match(dict(same)) is first == {"x0", "x1"}
        finally:
            m.close()

    def test_engine_errors_are_not_remembered(self) -> None:
        calls = []

        def failing(fact: Mapping[str, Any]) -> set[str]:
            calls.append(fact)
            raise RuntimeError("engine down")

        memo = Memo({"a": {"$gt": {"x": 0}}}, failing)
        for _ in range(2):
            with pytest.raises(RuntimeError):
                memo.match({"x": 1})
        assert len(calls) == 2


def test_components_follow_shared_keys() -> None:
    rules = {"a": {"$and": [{"x": 1}, {"y": 2}]}, "b": {"y": 3}, "c": {"z": 1},
             "d": {"$ex": {"__lead": 1}}}
    found = {c.keys: c.names for c in components(rules)}
    assert found == {("x", "y"): {"a", "b"}, ("z",): {"c"}, (): {"d"}}
