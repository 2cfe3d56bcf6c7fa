"""Mapping profiles in batch: keys to copy, and the input columns a profile reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qualify import Profile, load_profile_text
from qualify.mapping import _MISSING as MISSING
from qualify.mapping import lookup


class TestProfile:
    def test_keys_and_sources(self) -> None:
        """``keys`` are kept in order; ``sources`` lists every column and path read."""
        p = load_profile_text("name: x\nkeys: [Id, Converted]\nfields:\n"
                              "  lead_id: {from: Id}\n"
                              "  budget: {from: [properties.budget, Budget]}\n"
                              "  stage: {value: new}\n")
        assert p.keys == ("Id", "Converted")
        assert p.sources() == {"Id", "Converted", "properties.budget", "properties",
                               "Budget"}

    def test_none_is_a_value_not_a_placeholder(self) -> None:
        """"none" is a value of the default rule base's enums, so it is not read as missing;
        "N/A" and "null" are."""
        p = load_profile_text("name: x\nfields:\n  lead_id: {from: id}\n"
                              "  repeat_potential: {from: r}\n  influence: {from: i}\n"
                              "  budget: {from: b}\n")
        assert p.apply({"id": "1", "r": "None", "i": "N/A", "b": "null"}) == {
            "lead_id": "1", "repeat_potential": "None"}

    def test_apply_is_unchanged(self) -> None:
        """The webhook use of a profile (``apply`` on a nested payload) still works."""
        p = load_profile_text("name: x\nfields:\n  lead_id: {from: data.id}\n"
                              "  needs_product: {from: data.need, values: {Yes: true}}\n")
        assert p.apply({"data": {"id": "7", "need": "yes"}}) == {"lead_id": "7",
                                                                 "needs_product": True}


def reference_apply(profile: Profile, record: Mapping[str, Any]) -> dict[str, Any]:
    """``Profile.apply`` as first written (before it was made faster), for comparison."""
    def is_missing(value: Any, missing: frozenset[str]) -> bool:
        return value is None or (isinstance(value, str) and value.strip().casefold() in missing)

    import re

    lead: dict[str, Any] = {}
    if profile.model.passthrough:
        lead.update(record)
    shared = {m.casefold() for m in profile.model.missing}
    for target, fm in profile.model.fields.items():
        sources = [fm.source] if isinstance(fm.source, str) else list(fm.source or [])
        const, split = fm.value, fm.split
        values = {str(k).strip().casefold(): v for k, v in fm.values.items()}
        missing = frozenset(shared | {m.casefold() for m in fm.missing})
        value: Any = const if not sources else MISSING
        for src in sources:
            value = lookup(record, src)
            if value is not MISSING and not is_missing(value, missing):
                break
        if value is MISSING or is_missing(value, missing):
            lead.pop(target, None)
            continue
        key = str(value).strip().casefold()
        if values and isinstance(value, str | int | float | bool) and key in values:
            value = values[key]
        elif isinstance(value, str):
            value = next((v for p, v in fm.patterns.items()
                          if re.search(p, value, re.IGNORECASE)), value)
        if split and isinstance(value, str):
            value = [p.strip() for p in value.split(split) if p.strip()
                     and p.strip().casefold() not in missing]
        lead[target] = value
    return lead


PROFILE = load_profile_text("""\
name: p
missing: ["", Select, N/A]
passthrough: true
fields:
  lead_id: {from: [id, data.id]}
  budget: {from: [Budget, data.budget], missing: [unknown]}
  contact_role:
    from: Role
    values: {Boss: owner, "1": staff, "true": executive}
    patterns: {"^b": director, "x|y": manager}
  pain_points: {from: Pains, split: ";"}
  stage: {value: new}
  sentiment: {value: " select "}
""")
cells = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                  st.sampled_from(["", " ", "Select", " n/a ", "unknown", "Boss", " boss ",
                                   "a; ;select;b", "1", "True"]), st.text(max_size=6))
records = st.dictionaries(st.sampled_from(["id", "Budget", "Role", "Pains", "data", "x"]),
                          st.one_of(cells, st.dictionaries(st.sampled_from(["id", "budget"]),
                                                           cells, max_size=2)), max_size=6)


class TestApplyUnchanged:
    @settings(max_examples=300, deadline=None)
    @given(record=records)
    def test_same_as_the_reference(self, record: dict[str, Any]) -> None:
        """The faster ``apply`` gives exactly what the first one gave, for any record."""
        assert reference_apply(PROFILE, record) == PROFILE.apply(record)


class TestUnmapped:
    PROFILE = """\
name: u
fields:
  lead_id: {from: id}
  payment_history: {from: terms, unmapped: unknown}
  budget: {from: money, unmapped: unknown}
  stage: {from: s}
"""

    def test_unknown_reads_an_unreadable_value_as_missing_and_says_so(
            self, default_rulebook: Any, engine: Any) -> None:
        """'Olark Chat' is no enum value: with unmapped: unknown the field is left out,
        reported in ``unread``, and the lead is scored; readable values pass."""
        p = load_profile_text(self.PROFILE, default_rulebook)
        unread: list[tuple[str, Any]] = []
        lead = p.apply({"id": "1", "terms": "Olark Chat", "money": "lots"}, unread)
        assert lead == {"lead_id": "1"}
        assert unread == [("payment_history", "Olark Chat"), ("budget", "lots")]
        assert p.apply({"id": "1", "terms": "Prompt", "money": "25,000"}) == {
            "lead_id": "1", "payment_history": "Prompt", "budget": "25,000"}
        engine.score(lead)

    def test_error_is_the_default(self, default_rulebook: Any, engine: Any) -> None:
        """Without unmapped, the value passes through and the rule base refuses it."""
        import pytest

        from qualify import LeadError

        p = load_profile_text(self.PROFILE, default_rulebook)
        lead = p.apply({"id": "1", "s": "Olark Chat"})
        with pytest.raises(LeadError) as e:
            engine.score(lead)
        assert e.value.field == "stage"

    def test_a_bad_unmapped_or_pattern_is_located(self) -> None:
        """unmapped takes error or unknown; a pattern must compile; both errors located."""
        import pytest

        from qualify import RulebaseError

        text = ("name: u\nfields:\n  lead_id: {from: id}\n"
                "  stage: {from: s, unmapped: maybe}\n"
                "  contact_role: {from: t, patterns: {'(ceo': executive}}\n")
        with pytest.raises(RulebaseError) as e:
            load_profile_text(text, file="m.yaml")
        lines = sorted(p.line for p in e.value.problems)
        assert lines == [4, 5]
        assert any("not a regular expression" in p.message for p in e.value.problems)


class TestWriteBack:
    def test_unknown_verdict_items_are_refused_with_a_suggestion(self) -> None:
        """write_back maps verdict items; a typo is located with 'did you mean'."""
        import pytest

        from qualify import RulebaseError

        text = "name: w\nfields:\n  lead_id: {from: id}\nwrite_back:\n  grdae: qualify_grade\n"
        with pytest.raises(RulebaseError) as e:
            load_profile_text(text, file="m.yaml")
        (problem,) = e.value.problems
        assert "'grdae' is not a verdict item" in problem.message
        assert "grade" in problem.message
        assert (problem.file, problem.line) == ("m.yaml", 5)  # the item's own line
