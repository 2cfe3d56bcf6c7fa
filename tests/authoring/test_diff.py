"""``qualify rules diff``: the structural diff of two rule bases and, with leads, the impact."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from qualify import Engine, QualifyError, Rulebook, load_rulebook_text
from qualify.authoring import diff
from qualify.synthetic import generate
from tests.authoring.conftest import DEFAULT_TEXT, Run, Write, variant

AS_OF = dt.date(2026, 1, 1)
BIG_ORDER = """    points: 15          # deal size is what a salesperson's time is worth
    factor: value
    when: expected_deal_size >= 50000"""
FAR_AWAY = """  - id: far_away
    kind: bad
    points: -5
    factor: relationship
    when: distance_km > 500
    label: {en: Far from us, zh: 客户离你地点太远}
"""
REFERRAL_READY = """  - id: referral_ready
    kind: golden
    points: 5
    factor: value
    when: referral_potential == "medium"
    label: {en: Could refer others, zh: 可能转介绍}
"""


def v2_text() -> str:
    """Version 2: big_order worth more and easier, far_away replaced, grade A lower, close
    moved above build_trust."""
    text = variant(("version: 1", "version: 2"),
                   (BIG_ORDER, BIG_ORDER.replace("15 ", "20 ").replace("50000", "40000")),
                   (FAR_AWAY, REFERRAL_READY),
                   ("{id: A, min_score: 80,", "{id: A, min_score: 75,"))
    start, end = text.index("  - id: close\n"), text.index("  - id: plan_contact")
    close, text = text[start:end], text[:start] + text[end:]
    at = text.index("  - id: build_trust")
    return text[:at] + close + text[at:]


@pytest.fixture(scope="module")
def v1() -> Rulebook:
    return load_rulebook_text(DEFAULT_TEXT, "v1.yaml")


@pytest.fixture(scope="module")
def v2() -> Rulebook:
    return load_rulebook_text(v2_text(), "v2.yaml")


@pytest.fixture(scope="module")
def leads() -> list[dict[str, Any]]:
    return list(generate(300, seed=11, bad_rate=0.02))


class TestCompare:
    def test_identical(self, v1: Rulebook) -> None:
        """A rule base compared with itself has no changes."""
        assert diff.compare(v1, v1) == []

    def test_changes(self, v1: Rulebook, v2: Rulebook) -> None:
        """Added, removed, changed and moved rules, each said once."""
        lines = [c.text() for c in diff.compare(v1, v2)]
        assert lines == [
            "changed  rulebook: version 1 -> 2",
            "changed  trait big_order: points +15 -> +20; "
            "when 'expected_deal_size >= 50000' -> 'expected_deal_size >= 40000'",
            "removed  trait far_away: bad, -5 points; when 'distance_km > 500'",
            "added    trait referral_ready: golden, +5 points; "
            "when 'referral_potential == \"medium\"'",
            "moved    next step close: position 10 -> 7 (first match wins)",
            "changed  grade A: min_score 80 -> 75",
        ]

    def test_conditions_in_words(self, v1: Rulebook, v2: Rulebook) -> None:
        """A condition added, removed or changed is also said in words, in either language,
        each side with its own labels; a change that leaves the condition alone says none."""
        said = {c.id: c.words_text() for c in diff.compare(v1, v2)}
        assert said == {
            "": None, "big_order": "Expected deal size at least USD 50,000 -> Expected deal "
            "size at least USD 40,000", "far_away": "Distance over 500 km",
            "referral_ready": "Referral potential is medium", "close": None, "A": None}
        zh = {c.id: c.words_text() for c in diff.compare(v1, v2, "zh")}
        assert zh["big_order"] == "预计订单金额至少 5 万美元 -> 预计订单金额至少 4 万美元"
        assert zh["referral_ready"] == "转介绍价值为中"
        relabelled = variant(("label: {en: Expected deal size", "label: {en: Deal size"),
                             ("when: expected_deal_size >= 50000",
                              "when: expected_deal_size >= 60000"))
        changes = diff.compare(v1, load_rulebook_text(relabelled))
        assert [c.words_text() for c in changes if c.id == "big_order"] == [
            "Expected deal size at least USD 50,000 -> Deal size at least USD 60,000"]
        points_only = variant(("    points: 15          #", "    points: 10          #"))
        assert [c.words for c in diff.compare(v1, load_rulebook_text(points_only))] == [None]

    def test_words_that_change_meaning_are_changes(self, v1: Rulebook) -> None:
        """A currency, a unit, a field's label or a value's label changes what a condition
        says without touching its code: each is listed, and each rule that reads it is
        re-said in its new words."""
        text = variant(("currency: USD", "currency: CNY"),
                       ("unit: {en: km, zh: 公里}", "unit: {en: miles, zh: 英里}"),
                       ("label: {en: Budget,", "label: {en: Spend limit,"))
        changes = diff.compare(v1, load_rulebook_text(text))
        lines = [c.text() for c in changes]
        assert lines[:3] == ["changed  rulebook: currency USD -> CNY",
                             "changed  field budget: label (en) 'Budget' -> 'Spend limit'",
                             "changed  field distance_km: unit km/公里 -> miles/英里"]
        said = {c.id: c.words for c in changes[3:]}
        assert said["far_away"] == ("Distance over 500 km", "Distance over 500 miles")
        assert said["big_order"] == ("Expected deal size at least USD 50,000",
                                     "Expected deal size at least CNY 50,000")
        assert all(c.details == ("same condition, new words (a label, unit or currency)",)
                   for c in changes[3:])
        assert {"buying_power", "fits_plan", "big_order", "nearby", "small_deal",
                "far_away"} == set(said)

    def test_a_value_label_change_is_listed(self, v1: Rulebook) -> None:
        """An enum value's words (the label sales read) changing is a field change."""
        field = v1.fields["payment_history"]
        old = field.value_labels["defaulted"]["en"]
        text = variant((f"defaulted: {{en: {old},", "defaulted: {en: went bust on us,"))
        lines = [c.text() for c in diff.compare(v1, load_rulebook_text(text))]
        assert (f"changed  field payment_history: value defaulted (en) '{old}' -> "
                "'went bust on us'") in lines

    def test_points_moved(self, v1: Rulebook, v2: Rulebook) -> None:
        """Points moved: changed, added and removed traits."""
        assert diff.points_moved(diff.compare(v1, v2)) == [
            "big_order +15 -> +20 (+5)", "far_away -5 (removed)", "referral_ready +5 (added)"]

    def test_reformatting_is_not_a_change(self, v1: Rulebook) -> None:
        """Whitespace and line breaks in a condition do not count as a change."""
        text = variant(("when: expected_deal_size >= 50000",
                        "when: >-\n      expected_deal_size   >=\n      50000"))
        assert diff.compare(v1, load_rulebook_text(text)) == []

    def test_inserted_step_is_not_a_move(self, v1: Rulebook) -> None:
        """A step added above others shifts them, which is not reported as moving them."""
        text = variant(("  - id: build_trust", """  - id: ring_back
    when: stage == "contacted"
    label: {en: Ring back, zh: 回电}
    reason: {en: Ring back., zh: 回电。}
  - id: build_trust"""))
        changes = diff.compare(v1, load_rulebook_text(text))
        assert [(c.change, c.id) for c in changes] == [("added", "ring_back")]

    def test_fields_score_and_labels(self, v1: Rulebook) -> None:
        """Field definitions, the score scale and labels are compared too."""
        text = variant(("score: {base: 50,", "score: {base: 55,"),
                       ("budget: {type: number, min: 0,", "budget: {type: number, min: 100,"),
                       ("label: {en: Urgent need,", "label: {en: Very urgent need,"))
        lines = [c.text() for c in diff.compare(v1, load_rulebook_text(text))]
        assert "changed  score: base 50 -> 55" in lines
        assert "changed  field budget: min 0 -> 100" in lines
        assert "changed  trait urgent_need: label (en) 'Urgent need' -> 'Very urgent need'" \
            in lines


class TestImpact:
    def measure(self, v1: Rulebook, v2: Rulebook, leads: list[dict[str, Any]],
                top: int = 10) -> diff.Impact:
        a, b = Engine(v1), Engine(v2)
        try:
            return diff.impact(a, b, enumerate(leads, 1), source="leads", as_of=AS_OF, top=top)
        finally:
            a.close()
            b.close()

    def test_same_rules_move_nothing(self, v1: Rulebook, leads: list[dict[str, Any]]) -> None:
        """Against itself: no lead changes, and bad leads are counted, not fatal."""
        result = self.measure(v1, v1, leads)
        assert result.total == len(leads)
        assert result.scored + result.error_count["old"] == len(leads)
        assert result.error_count["old"] > 0
        assert (result.changed(result.status), result.changed(result.grade),
                result.changed(result.step), result.up, result.down) == (0, 0, 0, 0, 0)
        assert result.movers == []

    def test_counts_agree_with_single_scoring(self, v1: Rulebook, v2: Rulebook,
                                              leads: list[dict[str, Any]]) -> None:
        """The counts equal what scoring each lead with each engine separately gives."""
        result = self.measure(v1, v2, leads)
        a, b = Engine(v1), Engine(v2)
        grade_changed = step_changed = up = 0
        try:
            for lead in leads:
                try:
                    x, y = a.score(lead, as_of=AS_OF), b.score(lead, as_of=AS_OF)
                except QualifyError:  # bad leads are counted apart
                    continue
                grade_changed += x.grade != y.grade
                step_changed += x.next_step["id"] != y.next_step["id"]
                up += y.score > x.score
        finally:
            a.close()
            b.close()
        assert (result.changed(result.grade), result.changed(result.step), result.up) == \
            (grade_changed, step_changed, up)
        assert result.down == 0  # v2 only adds points
        assert grade_changed > 0 and step_changed > 0

    def test_top_movers_and_reasons(self, v1: Rulebook, v2: Rulebook,
                                    leads: list[dict[str, Any]]) -> None:
        """Movers come biggest first, each with reasons naming the rules that moved it."""
        result = self.measure(v1, v2, leads, top=5)
        assert len(result.movers) == 5
        deltas = [abs(m.delta) for m in result.movers]
        assert deltas == sorted(deltas, reverse=True)
        for m in result.movers:
            assert m.reasons
            assert any(r.startswith(("+ referral_ready", "big_order", "+ big_order",
                                     "- far_away")) for r in m.reasons)

    def test_status_change_reason(self, v1: Rulebook) -> None:
        """A qualifier that changes state is named as the reason for the status change."""
        v3 = load_rulebook_text(variant(("budget >= 10000 or", "budget >= 20000 or")))
        lead = {"lead_id": "x", "needs_product": True, "budget": 15000,
                "is_decision_maker": True}
        result = self.measure(v1, v3, [lead])
        (m,) = result.movers
        assert (m.old.status, m.new.status) == ("qualified", "needs_discovery")
        assert "qualifier buying_power met -> unknown" in m.reasons


class TestCommand:
    def test_text(self, write: Write, run: Run, leads: list[dict[str, Any]]) -> None:
        """Changes, points moved, impact counts and movers with reasons, on stdout."""
        old, new = write("v1.yaml", DEFAULT_TEXT), write("v2.yaml", v2_text())
        path = write("leads.jsonl", "".join(json.dumps(x) + "\n" for x in leads) + "{oops\n")
        result = run("diff", old, new, "--leads", path, "--as-of", "2026-01-01", "--top", "3")
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert f"{old} (default v1) -> {new} (default v2)" in out
        assert "points moved: big_order +15 -> +20 (+5)" in out
        assert f"impact on {len(leads) + 1} leads, " in out
        assert f"({path}, as of 2026-01-01):" in out
        assert "  grade changed " in out and "  next step changed " in out
        assert f"{path}:{len(leads) + 1}: invalid JSON" in out
        assert "top movers:" in out
        assert ("  changed  trait big_order: points +15 -> +20; when 'expected_deal_size >= "
                "50000' -> 'expected_deal_size >= 40000'\n           in words: Expected deal "
                "size at least USD 50,000 -> Expected deal size at least USD 40,000\n") in out

    def test_json_and_csv(self, write: Write, run: Run, leads: list[dict[str, Any]]) -> None:
        """--format json from a CSV lead list: the same counts as from JSON Lines."""
        old, new = write("v1.yaml", DEFAULT_TEXT), write("v2.yaml", v2_text())
        rows = [{k: ";".join(v) if isinstance(v, list) else v for k, v in x.items()}
                for x in leads]
        columns = sorted({k for r in rows for k in r})
        csv_path = Path(write("leads.csv", ""))
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, columns)
            w.writeheader()
            w.writerows(rows)
        jsonl = write("leads.jsonl", "".join(json.dumps(x) + "\n" for x in leads))
        docs = [json.loads(run("diff", old, new, "--leads", p, "--as-of", "2026-01-01",
                               "--format", "json").stdout) for p in (csv_path, jsonl)]
        for key in ("status_changed", "grade_changed", "next_step_changed", "score_up"):
            assert docs[0]["impact"][key] == docs[1]["impact"][key]
        assert docs[0]["changes"][0] == {"change": "changed", "section": "rulebook", "id": "",
                                         "details": ["version 1 -> 2"], "points": None,
                                         "words": None}
        big = next(c for c in docs[0]["changes"] if c["id"] == "big_order")
        assert big["words"] == {"old": "Expected deal size at least USD 50,000",
                                "new": "Expected deal size at least USD 40,000"}
        assert docs[0]["impact"]["top_movers"][0]["line"] >= 2  # CSV rows start after the header

    def test_broken_rule_base(self, write: Write, run: Run) -> None:
        """A rule base that does not load: its located errors, exit 2 (nothing was done)."""
        old = write("v1.yaml", DEFAULT_TEXT)
        new = write("v2.yaml", DEFAULT_TEXT.replace("kind: golden", "kind: gold", 1))
        result = run("diff", old, new)
        assert result.exit_code == 2
        assert f"{new}:" in result.stderr and "bad-value" in result.stderr

    def test_rule_base_too_big_for_the_engine(self, write: Write, run: Run) -> None:
        """With --leads, a rule base the engine refuses: located errors, exit 2."""
        old = write("v1.yaml", DEFAULT_TEXT)
        new = write("v2.yaml", DEFAULT_TEXT.replace(
            'when: sentiment == "positive"',
            'when: stage in ["new", "contacted", "meeting", "proposal", "won", "lost"] and '
            'influence in ["high", "medium", "low", "none"] and '
            'sentiment in ["positive", "neutral", "negative"]', 1))
        leads = write("leads.jsonl", '{"lead_id": "a"}\n')
        result = run("diff", old, new, "--leads", leads)
        assert result.exit_code == 2 and "too-complex" in result.stderr

    EXPORT = ("Prospect ID,Budget,Timeline\n"
              "p-1,60000,20\n"
              "p-2,100,400\n"
              "p-3,lots,10\n")
    MAPPING = ("name: export\nfields:\n  lead_id: {from: Prospect ID}\n"
               "  budget: {from: Budget}\n  purchase_timeline_days: {from: Timeline}\n")

    def test_an_export_needs_its_mapping(self, write: Write, run: Run) -> None:
        """Issue 15, item 3: a CRM export failed on every row ("lead_id is required") and
        still exited 0. Without --map: exit 1 naming the fix; with it: scored."""
        old, new = write("v1.yaml", DEFAULT_TEXT), write("v2.yaml", v2_text())
        export = write("Leads.csv", self.EXPORT)
        bare = run("diff", old, new, "--leads", export, "--as-of", "2026-01-01")
        assert bare.exit_code == 1
        assert "not one of the 3 leads" in bare.stderr and "--map" in bare.stderr

        mapping = write("export.yaml", self.MAPPING)
        mapped = run("diff", old, new, "--leads", export, "--map", mapping,
                     "--as-of", "2026-01-01", "--format", "json")
        assert mapped.exit_code == 0, mapped.output
        impact = json.loads(mapped.stdout)["impact"]
        assert (impact["total"], impact["scored"]) == (3, 2)
        for side in ("old", "new"):
            [error] = impact["errors"][side]["first"]
            assert error["line"] == 4 and "budget" in error["message"]

    def test_a_bad_mapping_is_located(self, write: Write, run: Run) -> None:
        """A mapping naming a field the rule base lacks: its location, exit 2; --map
        without --leads is a usage error."""
        old = write("v1.yaml", DEFAULT_TEXT)
        export = write("Leads.csv", self.EXPORT)
        mapping = write("export.yaml", self.MAPPING.replace("  budget:", "  budgte:"))
        result = run("diff", old, old, "--leads", export, "--map", mapping)
        assert result.exit_code == 2
        assert f"{mapping}:4:" in result.stderr and "budget" in result.stderr
        assert run("diff", old, old, "--map", mapping).exit_code == 2
