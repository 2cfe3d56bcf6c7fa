"""Patterns from ops are matched in linear time: no pattern lets a lead stall a worker.

Issue 13, item 1: ``matches(email, "(a+)+$")`` passed ``rules check`` and a 28-character
e-mail then took 29 s to score (Python's ``re`` backtracks).
"""

from __future__ import annotations

import time

import pytest

from qualify import Engine, RulebaseError, load_rulebook_text
from qualify.mapping import load_profile_text
from qualify.patterns import PatternError, compile_pattern
from tests.test_rulebook import GOOD

EVIL = "(a+)+$"  # exponential for a backtracking engine on "aaaa...!"
HOSTILE = "a" * 9_000 + "!"  # Python's re would not finish this before the sun dies


def with_trait(when: str) -> str:
    """GOOD with an email field and one more golden trait."""
    return (GOOD.replace("  job_title: {type: string}\n",
                         "  job_title: {type: string}\n  email: {type: string}\n")
            .replace("grades:", "  - id: odd\n    kind: golden\n    points: 5\n"
                     f"    when: '{when}'\n    label: {{en: Odd, zh: 怪}}\ngrades:"))


class TestMatching:
    def test_a_catastrophic_pattern_scores_a_hostile_lead_at_once(self) -> None:
        """The pattern that hung a worker for 29 s on 29 characters: 9,001 here."""
        rulebook = load_rulebook_text(with_trait(f'matches(email, "{EVIL}")'), "r.yaml")
        with Engine(rulebook) as engine:
            started = time.monotonic()
            hostile = engine.score({"lead_id": "x", "email": HOSTILE})
            matching = engine.score({"lead_id": "y", "email": "aaaa"})
            elapsed = time.monotonic() - started
        assert elapsed < 5, f"matching took {elapsed:.1f} s"
        assert [t["id"] for t in hostile.traits] == []
        assert [t["id"] for t in matching.traits] == ["odd"]

    def test_a_catastrophic_mapping_pattern_maps_at_once(self) -> None:
        """Mapping patterns read CRM values: the same guarantee holds there."""
        text = ("name: p\nfields:\n  lead_id: {from: id}\n"
                f"  job_title: {{from: t, patterns: {{'{EVIL}': ceo}}}}\n")
        profile = load_profile_text(text)
        started = time.monotonic()
        assert profile.apply({"id": "1", "t": HOSTILE})["job_title"] == HOSTILE
        assert profile.apply({"id": "2", "t": "AAA"})["job_title"] == "ceo"  # any case
        assert time.monotonic() - started < 5

    def test_end_of_text_is_the_very_end(self) -> None:
        """RE2's $ does not match before a final newline (Python's does): documented."""
        assert compile_pattern("com$").search("a.com") is not None
        assert compile_pattern("com$").search("a.com\n") is None


class TestChecking:
    @pytest.mark.parametrize("pattern", [r"(a)\\1", "x(?=y)", "(?<!x)y", "x(?!y)"])
    def test_backtracking_constructs_are_refused_in_words(self, pattern: str) -> None:
        """Backreferences and lookaround need backtracking: refused, located, explained."""
        with pytest.raises(RulebaseError) as e:
            load_rulebook_text(with_trait(f'matches(email, "{pattern}")'), "r.yaml")
        (problem,) = e.value.problems
        assert problem.code == "bad-regex"
        assert problem.line == 21
        assert "lookaround are not supported" in problem.message
        assert "RE2" in problem.message

    def test_a_broken_pattern_names_the_mistake(self) -> None:
        """A plain syntax error keeps RE2's own words, without the backtracking note."""
        with pytest.raises(PatternError) as e:
            compile_pattern("(ceo")
        assert "missing )" in str(e.value)
        assert "RE2" not in str(e.value)

    def test_a_mapping_lookaround_is_refused_at_load(self) -> None:
        """A profile pattern with lookaround is a located error, not a runtime surprise."""
        text = ("name: p\nfields:\n  lead_id: {from: id}\n"
                "  job_title: {from: t, patterns: {'^(?!intern)': ceo}}\n")
        with pytest.raises(RulebaseError) as e:
            load_profile_text(text, file="m.yaml")
        (problem,) = e.value.problems
        assert problem.line == 4
        assert "lookaround" in problem.message
