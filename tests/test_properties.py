"""Properties of verdicts on the default rule base, over generated CRM-like leads."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qualify import Engine, synthetic
from tests.conftest import AS_OF

# facts that make a golden trait true: adding one never lowers the score
GOLDEN_FACTS: dict[str, dict[str, Any]] = {
    "urgent_need": {"purchase_timeline_days": 7},
    "positive_attitude": {"sentiment": "positive"},
    "big_order": {"expected_deal_size": 100000},
    "center_of_influence": {"influence": "high"},
    "nearby": {"distance_km": 5},
}


LEAD_WITH_BUDGET = {"lead_id": "L1", "budget": 50000, "expected_deal_size": 100000}


@st.composite
def leads(draw: st.DrawFn) -> dict[str, Any]:
    seed = draw(st.integers(0, 10**9))
    return next(synthetic.generate(1, seed=seed))


class TestVerdictProperties:
    @settings(max_examples=300, deadline=None)
    @given(lead=leads())
    def test_points_add_up(self, engine: Engine, lead: dict[str, Any]) -> None:
        """Score = base + points of fired traits, clamped; grade and status follow."""
        v = engine.score(lead, as_of=AS_OF)
        rb = engine.rulebook
        raw = rb.score_base + sum(t["points"] for t in v.traits)
        assert v.score == max(rb.score_min, min(rb.score_max, raw))
        assert v.grade == rb.grade_for(v.score).id
        states = {q["state"] for q in v.qualifiers.values()}
        expected = ("disqualified" if "unmet" in states else
                    "needs_discovery" if "unknown" in states else "qualified")
        assert v.status == expected
        assert all(any(line.startswith(f"{t['points']:+d} {t['label']}")
                       for line in v.explanation) for t in v.traits)

    @settings(max_examples=200, deadline=None)
    @given(lead=leads(), trait=st.sampled_from(sorted(GOLDEN_FACTS)))
    def test_a_golden_fact_never_lowers_the_score(self, engine: Engine, lead: dict[str, Any],
                                                  trait: str) -> None:
        """Adding a fact that makes a golden trait fire never lowers the score."""
        before = engine.score(lead, as_of=AS_OF)
        changed = {**lead, **GOLDEN_FACTS[trait]}
        after = engine.score(changed, as_of=AS_OF)
        assert trait in {t["id"] for t in after.traits}
        # the fact can only switch off bad traits on the same field: never lower the score
        assert after.score >= before.score

    @settings(max_examples=100, deadline=None)
    @given(lead=leads())
    def test_deterministic(self, engine: Engine, lead: dict[str, Any]) -> None:
        """Same input, same verdict, whatever was scored in between."""
        a = engine.score(lead, as_of=AS_OF).model_dump()
        for other in synthetic.generate(3, seed=len(lead)):
            engine.score(other, as_of=AS_OF)
        assert a == engine.score(lead, as_of=AS_OF).model_dump()

    @settings(max_examples=100, deadline=None)
    @given(lead=leads())
    def test_every_unknown_names_what_is_missing(self, engine: Engine,
                                                 lead: dict[str, Any]) -> None:
        """An undecided rule names fields the lead lacks; a decided one has evidence."""
        v = engine.score(lead, as_of=AS_OF)
        typed = engine.reader.read(lead)
        for u in v.unknown:
            assert u["missing"] and not set(u["missing"]) & set(typed)
        for q in v.qualifiers.values():
            assert bool(q["evidence"]) == (q["state"] != "unknown")
        for t in v.traits:
            assert t["evidence"] and all(e["field"] for e in t["evidence"])

    def test_both_locales(self, engine: Engine) -> None:
        """Labels and explanation follow the locale; the decision does not."""
        lead = next(synthetic.generate(1, seed=7))
        en = engine.score(lead, as_of=AS_OF, locale="en")
        zh = engine.score(lead, as_of=AS_OF, locale="zh")
        assert (en.status, en.score, en.next_step["id"]) == (zh.status, zh.score,
                                                             zh.next_step["id"])
        assert en.explanation != zh.explanation
        assert zh.qualifiers["need"]["label"] == "对我们的产品有需求"

    def test_as_of_drives_date_rules(self, engine: Engine) -> None:
        """The stale-contact decay depends on as_of, which the verdict records."""
        lead = {"lead_id": "x", "last_contact_date": "2025-10-01"}
        early = engine.score(lead, as_of=dt.date(2025, 10, 15))
        late = engine.score(lead, as_of=dt.date(2026, 3, 1))
        assert "stale_contact" not in {t["id"] for t in early.traits}
        assert "stale_contact" in {t["id"] for t in late.traits}
        assert late.as_of == dt.date(2026, 3, 1)

    def test_threads_share_one_engine(self, engine: Engine) -> None:
        """Eight threads scoring the same leads get the single-thread verdicts."""
        lead_list = list(synthetic.generate(200, seed=3))
        expected = [engine.score(x, as_of=AS_OF).model_dump() for x in lead_list]
        failures: list[int] = []

        def work() -> None:
            for i, x in enumerate(lead_list):
                if engine.score(x, as_of=AS_OF).model_dump() != expected[i]:
                    failures.append(i)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []

    def test_verdict_validates_against_its_own_model(self, engine: Engine) -> None:
        """What the engine builds (without validation) is a valid Verdict."""
        from qualify import Verdict

        for lead in synthetic.generate(50, seed=11):
            v = engine.score(lead, as_of=AS_OF)
            assert Verdict.model_validate(v.model_dump()) == v

    @settings(max_examples=300, deadline=None)
    @given(lead=leads(), locale=st.sampled_from(["en", "zh"]),
           amounts=st.lists(st.integers(0, 10**15 - 1)
                            | st.floats(0, 1e15, exclude_max=True), min_size=2, max_size=2))
    def test_json_is_pydantics_to_the_byte(self, engine: Engine, lead: dict[str, Any],
                                           locale: str, amounts: list[Any]) -> None:
        """verdict_json (orjson) writes what pydantic writes: evidence shows lead values as
        given, so numbers of every size the schema allows go in."""
        from qualify.verdict import verdict_json

        lead = {**lead, "budget": amounts[0], "expected_deal_size": amounts[1]}
        v = engine.score(lead, as_of=AS_OF, locale=locale)
        assert verdict_json(v) == v.model_dump_json().encode()

    def test_json_of_an_integer_beyond_64_bits(self, engine: Engine) -> None:
        """orjson refuses such integers; pydantic writes them (a verdict built by hand)."""
        from qualify import Verdict
        from qualify.verdict import verdict_json

        data = engine.score(LEAD_WITH_BUDGET, as_of=AS_OF).model_dump()
        data["traits"][0]["evidence"][0]["value"] = 2**70
        v = Verdict.model_validate(data)
        assert verdict_json(v) == v.model_dump_json().encode()
        assert b"1180591620717411303424" in verdict_json(v)
