"""Leads as CRMs send them: converted by the schema, or refused with the field named."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qualify import Engine, LeadError, default_rules_path, load_rulebook, load_rulebook_text
from qualify.leads import LeadReader
from tests.conftest import AS_OF


def read(engine: Engine, **fields: Any) -> dict[str, Any]:
    return engine.reader.read({"lead_id": "x", **fields})


def error(engine: Engine, raw: Any) -> LeadError:
    with pytest.raises(LeadError) as e:
        engine.score(raw, as_of=AS_OF)
    return e.value


class TestConversion:
    @pytest.mark.parametrize(("raw", "typed"), [
        ("25000", 25000), ("25,000.50", 25000.5), (" 1e3 ", 1000), (25000.0, 25000),
        ("-0", 0), (1e-05, 1e-05), ("0.00001", 1e-05),
    ])
    def test_numbers(self, engine: Engine, raw: Any, typed: Any) -> None:
        """CRMs send numbers as text; they become numbers."""
        assert read(engine, budget=raw)["budget"] == typed

    @pytest.mark.parametrize(("raw", "typed"), [
        ("Yes", True), ("no", False), ("TRUE", True), (0, False), (1, True), ("1", True),
    ])
    def test_booleans(self, engine: Engine, raw: Any, typed: bool) -> None:
        assert read(engine, trusts_us=raw)["trusts_us"] is typed

    def test_enums_ignore_case(self, engine: Engine) -> None:
        assert read(engine, contact_role=" Owner ")["contact_role"] == "owner"

    @pytest.mark.parametrize(("raw", "typed"), [
        ("2025-06-19", dt.date(2025, 6, 19)), ("2025-06-19T16:07:08.597Z", dt.date(2025, 6, 19)),
        (1462216307945, dt.date(2016, 5, 2)), ("1462216307945", dt.date(2016, 5, 2)),
        (dt.datetime(2025, 1, 2, 3, 4), dt.date(2025, 1, 2)),
    ])
    def test_dates(self, engine: Engine, raw: Any, typed: dt.date) -> None:
        """ISO dates, ISO timestamps and HubSpot's epoch milliseconds."""
        assert read(engine, last_contact_date=raw)["last_contact_date"] == typed

    def test_lists(self, engine: Engine) -> None:
        """Lists, and multi-select text "a;b" as CRMs export it."""
        assert read(engine, pain_points="a; b;;")["pain_points"] == ("a", "b")
        assert read(engine, pain_points=["x", 3, None])["pain_points"] == ("x", "3")

    def test_blank_means_unknown(self, engine: Engine) -> None:
        """None and blank text mean the value is not known."""
        lead = read(engine, budget="", contact_role=None, sentiment="   ")
        assert lead == {"lead_id": "x"}

    def test_unknown_fields_are_ignored(self, engine: Engine) -> None:
        """CRMs send properties no rule reads; they are ignored, nested junk included."""
        lead = read(engine, hs_object_id="1", nested={"a": [{"b": float("nan")}]})
        assert lead == {"lead_id": "x"}

    def test_numeric_lead_id(self, engine: Engine) -> None:
        assert engine.reader.read({"lead_id": 42})["lead_id"] == "42"


def test_an_enum_code_that_reads_as_a_number_or_yes_no() -> None:
    """Codes "1" and "true" may come unquoted from JSON (1, true): they are those codes, not
    a contradiction ("expected one of 1, true, got a number")."""
    text = (Path(default_rules_path()).read_text(encoding="utf-8")
            .replace("  sentiment:", "  tier: {type: enum, values: ['1', 'true', gold]}\n"
                     "  sentiment:", 1))
    with Engine(load_rulebook_text(text)) as e:
        assert e.reader.read({"lead_id": "x", "tier": 1})["tier"] == "1"
        assert e.reader.read({"lead_id": "x", "tier": True})["tier"] == "true"
        with pytest.raises(LeadError, match=r"expected one of 1, true, gold \(as text\), got "
                                            "true/false"):
            e.reader.read({"lead_id": "x", "tier": False})


class TestBadLeads:
    @pytest.mark.parametrize(("field", "value", "message"), [
        ("budget", "lots", "expected a number, got 'lots'"),
        ("budget", True, "expected a number, got true/false"),
        ("budget", float("nan"), "NaN"),
        ("budget", float("inf"), "NaN or Infinity"),
        ("budget", 10**30, "out of range"),
        ("budget", -5, "below the minimum 0"),
        ("purchase_timeline_days", 2.5, "whole number"),
        ("contact_role", "ownr", "did you mean 'owner'"),
        ("trusts_us", "maybe", "expected true or false"),
        ("last_contact_date", "yesterday", "YYYY-MM-DD"),
        ("pain_points", {"a": 1}, "expected a list"),
        ("pain_points", [{"a": 1}], "item 0 is an object"),
        ("company_size", None, None),
        ("sentiment", ["positive"], "got a list"),
        ("sentiment", 1, "(as text), got a number"),
        ("lead_id", "x" * 300, "longer than 256"),
        ("budget", "9" * 5000, "5,000 characters"),
        ("budget", 10**400, "out of range"),
        ("budget", "1e400", "out of range"),
        ("last_contact_date", "²", "YYYY-MM-DD"),
        ("last_contact_date", "9" * 40, "not a date"),
    ])
    def test_named_errors(self, engine: Engine, field: str, value: Any,
                          message: str | None) -> None:
        """Each bad value is a LeadError naming the field and saying what was expected."""
        raw = {"lead_id": "x", field: value}
        if message is None:  # an undeclared field: ignored, not an error
            engine.score(raw, as_of=AS_OF)
            return
        e = error(engine, raw)
        assert e.field == field and message in e.reason

    def test_not_an_object(self, engine: Engine) -> None:
        for raw in ([1, 2], "lead", None, 5):
            e = error(engine, raw)
            assert e.field is None and "JSON object" in str(e)

    def test_missing_lead_id(self, engine: Engine) -> None:
        assert error(engine, {"budget": 1}).field == "lead_id"

    def test_lone_surrogate(self, engine: Engine) -> None:
        """Text that is not valid Unicode is refused before it reaches the engine."""
        assert error(engine, {"lead_id": "x", "pain_points": ["\ud800"]}).field == "pain_points"
        assert error(engine, {"lead_id": "\udfff"}).field == "lead_id"

    def test_many_properties(self, engine: Engine) -> None:
        """Over 250 properties (the engine's limit) is fine: undeclared ones never reach it."""
        raw = {"lead_id": "x", "budget": 50000, **{f"p{i}": i for i in range(1000)}}
        assert engine.score(raw, as_of=AS_OF).qualifiers["buying_power"]["state"] == "met"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8)


class TestNeverCrashes:
    @settings(max_examples=300, deadline=None)
    @given(fields=st.dictionaries(st.sampled_from([
        "budget", "contact_role", "pain_points", "last_contact_date", "trusts_us",
        "purchase_timeline_days", "sentiment", "lead_id", "junk", "distance_km"]), JSON))
    def test_any_json_gives_a_verdict_or_a_lead_error(self, engine: Engine,
                                                      fields: dict[str, Any]) -> None:
        """Whatever JSON arrives: a verdict, or a LeadError; never another exception."""
        raw = {"lead_id": "x", **fields}
        try:
            v = engine.score(raw, as_of=AS_OF)
        except LeadError as e:
            assert e.field is None or e.field in raw
        else:
            assert 0 <= v.score <= 100
            json.dumps(v.model_dump(mode="json"), allow_nan=False)

    @settings(max_examples=200, deadline=None)
    @given(text=st.text())
    def test_any_unicode_text(self, engine: Engine, text: str) -> None:
        """Any Unicode in a text field: a verdict, or a LeadError for invalid Unicode."""
        try:
            engine.score({"lead_id": "x", "pain_points": [text], "company": text}, as_of=AS_OF)
        except LeadError as e:
            assert e.field == "pain_points" and "Unicode" in e.reason

    @settings(max_examples=200, deadline=None)
    @given(value=st.floats(allow_nan=True, allow_infinity=True))
    def test_any_float(self, engine: Engine, value: float) -> None:
        """Tiny, huge and non-finite floats: a verdict or a clear error, never an engine error."""
        try:
            v = engine.score({"lead_id": "x", "distance_km": value}, as_of=AS_OF)
        except LeadError as e:
            assert e.field == "distance_km"
            assert not math.isfinite(value) or abs(value) > 1e15 or value < 0
        else:
            near = any(t["id"] == "nearby" for t in v.traits)
            assert near == (value <= 50)


TEXTS = st.one_of(
    st.sampled_from(["25,000", "25000.0", "1e3", "-0", "Yes", "no", "TRUE", "2025-10-01",
                     "1735689600000", "a;b; c", "owner", "Owner", "", "  ", "x", "NaN",
                     "1e400", "²", "growing"]),
    st.text(max_size=12))


class TestConversionMemo:
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["budget", "purchase_timeline_days",
                                               "needs_product", "last_contact_date",
                                               "pain_points", "contact_role", "stage"]),
                              TEXTS), min_size=1, max_size=30))
    def test_kept_conversions_equal_fresh_ones(self, values: list[tuple[str, str]]) -> None:
        """Text read a second time comes from the memo: same value, same type, same error."""
        rulebook = load_rulebook(default_rules_path())
        kept = LeadReader(rulebook)
        for name, text in [*values, *values]:
            raw = {"lead_id": "x", name: text}
            outcomes = []
            for reader in (kept, LeadReader(rulebook)):
                try:
                    lead = reader.read(raw)
                    outcomes.append([(k, v, type(v)) for k, v in lead.items()])
                except LeadError as e:
                    outcomes.append([(e.field, str(e))])
            assert outcomes[0] == outcomes[1], (name, text)

    def test_a_full_memo_starts_over(self, engine: Engine,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(LeadReader, "MEMO_SIZE", 2)
        reader = LeadReader(engine.rulebook)
        budgets = [reader.read({"lead_id": "x", "budget": f"{n},000"})["budget"]
                   for n in (1, 2, 3, 1, 2, 3)]
        assert budgets == [1000, 2000, 3000] * 2
