"""Loading a rule base: strict YAML, every error at once with its location and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualify import Engine, RulebaseError, load_rulebook, load_rulebook_text
from qualify.errors import Problem
from qualify.yamlsource import MAX_BYTES, load_yaml_text

GOOD = """\
rulebook: t
version: 1
fields:
  budget: {type: number, min: 0}
  job_title: {type: string}
  role: {type: enum, values: [owner, staff]}
qualifiers:
  need:
    label: {en: Need, zh: 需求}
    when: budget >= 100
traits:
  - id: rich
    kind: golden
    points: 10
    when: budget >= 1000
    label: {en: Rich, zh: 有钱}
grades:
  - {id: A, min_score: 60}
  - {id: B, min_score: 0}
next_steps:
  - id: call
    label: {en: Call, zh: 打电话}
    reason: {en: "Budget {budget}", zh: "预算 {budget}"}
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(RulebaseError) as e:
        load_rulebook_text(text, "rules.yaml")
    return e.value.problems


def codes(text: str) -> list[str]:
    return [p.code for p in problems(text)]


class TestYaml:
    def test_syntax_error_has_line_and_column(self) -> None:
        """A YAML syntax mistake is reported where it is."""
        [p] = problems("rulebook: t\nfields:\n  budget: {type: number\n")
        assert p.code == "yaml-syntax" and p.line == 4 and p.file == "rules.yaml"

    def test_anchors_and_aliases_are_refused(self) -> None:
        """Anchors and aliases (alias bombs) are refused, located."""
        [p] = problems("a: &x [1, 2]\nb: *x\n")
        assert (p.code, p.line, p.column) == ("yaml-anchor", 1, 4)

    def test_alias_bomb_is_refused_fast(self) -> None:
        """A billion-laughs document fails at the first anchor, without expanding."""
        bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n'
        assert codes(bomb) == ["yaml-anchor"]

    def test_duplicate_keys_are_an_error(self) -> None:
        """A duplicate key is an error naming the first definition."""
        [p] = problems(GOOD.replace("  job_title:", "  budget: {type: number}\n  job_title:"))
        assert p.code == "duplicate-key" and p.line == 5 and "line 4" in (p.hint or "")

    def test_yes_no_and_dates_stay_text(self) -> None:
        """YAML 1.1's yes/no/on and dates are not converted behind the author's back."""
        data, _ = load_yaml_text("a: yes\nb: no\nc: 2024-01-01\nd: true\ne: 1.5\nf: 0x10\n")
        assert data == {"a": "yes", "b": "no", "c": "2024-01-01", "d": True, "e": 1.5,
                        "f": "0x10"}

    def test_python_tags_are_refused(self) -> None:
        """Tags such as !!python/object are refused."""
        assert codes("a: !!python/object:os.system ls\n") == ["yaml-tag"]

    def test_large_files_are_refused(self, tmp_path: Path) -> None:
        """Files over 1 MB are refused before parsing."""
        big = tmp_path / "big.yaml"
        big.write_text("a: " + "x" * (MAX_BYTES + 1), encoding="utf-8")
        with pytest.raises(RulebaseError) as e:
            load_rulebook(big)
        assert e.value.problems[0].code == "file-too-large"

    def test_not_utf8_and_missing_files(self, tmp_path: Path) -> None:
        """A file that is not UTF-8, or not there, is a clear error."""
        bad = tmp_path / "latin1.yaml"
        bad.write_bytes("rulebook: caf\xe9\n".encode("latin-1"))
        with pytest.raises(RulebaseError) as e:
            load_rulebook(bad)
        assert e.value.problems[0].code == "file-encoding"
        with pytest.raises(RulebaseError) as e:
            load_rulebook(tmp_path / "nope.yaml")
        assert e.value.problems[0].code == "file-unreadable"


class TestSchema:
    def test_the_good_rule_base_loads(self) -> None:
        rb = load_rulebook_text(GOOD)
        assert [r.id for r in rb.rules] == ["need", "rich", "call"]
        assert rb.warnings == ()

    def test_unknown_key_with_suggestion(self) -> None:
        """An unknown key is located and the closest valid key suggested."""
        [p] = problems(GOOD.replace("    when: budget >= 1000", "    whne: budget >= 1000"))
        assert p.code == "unknown-key" and p.line == 15 and p.column == 5
        assert p.hint == "did you mean 'when'?"
        assert str(p) == ("rules.yaml:15:5: unknown-key: unknown key 'whne' "
                          "(did you mean 'when'?)")

    def test_every_error_at_once(self) -> None:
        """Errors in several sections are all reported in one run, in file order."""
        text = (GOOD.replace("type: number, min: 0", "type: numbr, min: 0")
                .replace("points: 10", "points: ten")
                .replace("when: budget >= 100\n", "when: job_tilte == 'x'\n"))
        found = problems(text)
        assert [p.code for p in found] == ["bad-value", "unknown-field", "bad-value"]
        assert [p.line for p in found] == sorted(p.line for p in found)
        assert found[1].hint == "did you mean 'job_title'?"

    def test_type_mismatch_in_condition(self) -> None:
        """budget >= "high" is a type error located at the literal."""
        [p] = problems(GOOD.replace("when: budget >= 100\n", 'when: budget >= "high"\n'))
        assert p.code == "type-mismatch" and p.line == 10 and p.column == 21

    def test_unparseable_condition(self) -> None:
        assert codes(GOOD.replace("when: budget >= 100\n", "when: budget >=\n")) == ["syntax"]

    @pytest.mark.parametrize(("written", "column", "hint"), [
        ('role = "owner"', 17, 'to compare, write ==: role == "owner"'),
        ("budget <> 3", 19, "write != for 'is not equal to': budget != 3"),
        ("budget > 1 && budget < 4", 23, "write and instead of &&: budget > 1 and budget < 4"),
        ("budget > 1 || budget < 4", 23, "write or instead of ||: budget > 1 or budget < 4"),
    ])
    def test_habits_from_sql_and_c_get_the_fix(self, written: str, column: int,
                                                hint: str) -> None:
        """Issue 15, item 6: `free_copy = true` said only "invalid syntax"; the hint now
        shows the condition as it should be written, located at the mistake."""
        [p] = problems(GOOD.replace("when: budget >= 100\n", f"when: '{written}'\n"))
        assert (p.code, p.line, p.column, p.hint) == ("syntax", 10, column, hint)

    def test_enum_values_are_checked(self) -> None:
        [p] = problems(GOOD.replace("when: budget >= 100\n", 'when: role == "ownr"\n'))
        assert p.code == "unknown-value" and p.hint == "did you mean 'owner'?"

    def test_no_eval(self) -> None:
        """Conditions are parsed, never evaluated: calls and attributes are refused."""
        for bad in ['__import__("os").system("x")', "budget.__class__", "[x for x in y]",
                    "budget + 1 > 2", "lambda: 1"]:
            text = GOOD.replace("when: budget >= 100\n", f"when: '{bad}'\n")
            assert problems(text), bad

    def test_duplicate_ids(self) -> None:
        text = GOOD.replace("next_steps:\n  - id: call", "next_steps:\n  - id: rich")
        assert "duplicate-id" in codes(text)

    def test_verdict_names_only_in_next_steps(self) -> None:
        text = GOOD.replace("when: budget >= 1000", 'when: grade == "A"')
        assert codes(text) == ["verdict-not-allowed"]

    def test_unknown_placeholder_in_reason(self) -> None:
        text = GOOD.replace("Budget {budget}", "Budget {budgte}")
        [p] = problems(text)
        assert p.code == "bad-template" and p.hint == "did you mean 'budget'?"

    def test_reason_placeholders_take_no_format(self) -> None:
        """{budget:,.2f} or {budget!r} would fail on every verdict: refused at load."""
        for bad in ("{budget:,.2f}", "{budget!r}"):
            [p] = problems(GOOD.replace("Budget {budget}", f"Budget {bad}"))
            assert p.code == "bad-template" and p.line == 23

    def test_deep_nesting_is_an_error(self) -> None:
        """Deeply nested YAML or conditions are located errors, not a crash."""
        assert codes("fields: " + "[" * 20000 + "]" * 20000 + "\n") == ["too-complex"]
        deep = "not " * 3000 + "budget > 0"
        assert codes(GOOD.replace("when: budget >= 100\n", f"when: {deep}\n")) == [
            "too-complex"]

    def test_last_next_step_is_a_fallback(self) -> None:
        text = GOOD.replace("    label: {en: Call, zh: 打电话}",
                            "    when: budget > 1\n    label: {en: Call, zh: 打电话}")
        assert codes(text) == ["no-fallback-step"]

    def test_grades_cover_every_score(self) -> None:
        assert "bad-value" in codes(GOOD.replace("{id: B, min_score: 0}", "{id: B, min_score: 10}"))

    def test_not_a_mapping(self) -> None:
        assert codes("- a\n- b\n") == ["bad-document"]

    def test_too_complex_for_the_engine(self) -> None:
        """A condition expanding past the engine's 64-match limit is a located error."""
        big = " and ".join(f"(budget == {i} or budget == {i + 100})" for i in range(6))
        text = GOOD.replace("when: budget >= 1000", f"when: {big}")
        with pytest.raises(RulebaseError) as e:
            Engine(load_rulebook_text(text, "rules.yaml"))
        [p] = e.value.problems
        assert p.code == "too-complex" and p.line == 12

    def test_too_many_values_for_one_fact(self) -> None:
        """Fields plus derived values over the engine's limit per fact: a load error."""
        fields = "".join(f"  f{i}: {{type: number}}\n" for i in range(150))
        traits = "".join(
            f"  - {{id: t{i}, kind: golden, points: 1, label: {{en: t}}, "
            f"when: 'f{i} > 0 or contains(tags, \"x{i}\")'}}\n" for i in range(150))
        text = (f"rulebook: wide\nversion: 1\nfields:\n{fields}  tags: {{type: list}}\n"
                "qualifiers: {q: {label: {en: q}, when: f0 > 0}}\n"
                f"traits:\n{traits}grades: [{{id: A, min_score: 0}}]\n"
                "next_steps: [{id: s, label: {en: s}, reason: {en: r}}]\n")
        with pytest.raises(RulebaseError) as e:
            Engine(load_rulebook_text(text))
        assert [p.code for p in e.value.problems] == ["too-many-values"]

    def test_warnings_do_not_block(self) -> None:
        """A golden trait with negative points and a missing zh label load, with warnings."""
        rb = load_rulebook_text(GOOD.replace("points: 10", "points: -10")
                                .replace("{en: Rich, zh: 有钱}", "{en: Rich}"))
        assert sorted(w.code for w in rb.warnings) == ["label-locale-missing", "points-sign"]


class TestDefaultRulebook:
    def test_contract_ids(self, default_rulebook) -> None:  # type: ignore[no-untyped-def]
        """The default rule base's rule ids are a contract for integrations."""
        rb = default_rulebook
        assert [q.id for q in rb.qualifiers] == ["need", "buying_power", "authority"]
        assert [t.id for t in rb.traits if t.kind == "golden"] == [
            "urgent_need", "fits_plan", "positive_attitude", "big_order",
            "center_of_influence", "financially_sound", "nearby"]
        assert [t.id for t in rb.traits if t.kind == "bad"] == [
            "negative_attitude", "value_hard_to_show", "small_deal", "no_follow_up",
            "no_referral_value", "business_declining", "far_away", "stale_contact"]
        assert [s.id for s in rb.next_steps] == [
            "ask_referral", "customer_service", "nurture", "discover_needs",
            "find_decision_maker", "qualify_budget", "build_trust", "present_value",
            "resolve_objections", "close", "plan_contact"]
        assert rb.warnings == ()

    def test_contract_fields(self, default_rulebook) -> None:  # type: ignore[no-untyped-def]
        """The default lead schema's fields and types are a contract too."""
        types = {n: f.type for n, f in default_rulebook.fields.items()}
        assert types == {
            "lead_id": "string", "needs_product": "boolean", "pain_points": "list",
            "purchase_timeline_days": "integer", "budget": "number",
            "annual_revenue": "number", "payment_history": "enum",
            "financial_health": "enum", "business_trend": "enum",
            "in_purchase_plan": "boolean", "contact_role": "enum",
            "is_decision_maker": "boolean", "sentiment": "enum", "trusts_us": "boolean",
            "understands_offer": "boolean", "value_acknowledged": "boolean",
            "open_objections": "list", "competitors": "list",
            "expected_deal_size": "number", "repeat_potential": "enum",
            "referral_potential": "enum", "influence": "enum", "distance_km": "number",
            "stage": "enum", "last_contact_date": "date"}

    def test_every_label_has_both_locales(self, default_rulebook) -> None:  # type: ignore[no-untyped-def]
        for rule in default_rulebook.rules:
            assert rule.label["en"] and rule.label["zh"] and rule.label["en"] != rule.label["zh"]


class TestBrokenDefinitions:
    """A broken definition is reported once; conditions naming it say nothing more. Which
    names are broken is known structurally, not by finding the name in another message."""

    def test_a_condition_on_a_broken_field_adds_no_error(self) -> None:
        """A field whose type is wrong is one error; the qualifier reading it is not."""
        text = GOOD.replace("budget: {type: number, min: 0}", "budget: {type: money}")
        assert [p.message.split(":")[0] for p in problems(text)] == ["fields.budget.type"]

    def test_a_broken_trait_named_like_a_value_hides_no_other_error(self) -> None:
        """A broken trait named 'hot' must not hide "'hot' is not one of role's values", an
        error of another rule that merely quotes the same word."""
        text = GOOD.replace("  - id: rich\n    kind: golden\n    points: 10\n",
                            "  - id: hot\n    kind: golden\n    points: ten\n")
        text = text.replace("when: budget >= 100\n", 'when: role == "hot" or budget >= 100\n')
        found = problems(text)
        assert {p.code for p in found} >= {"bad-value", "unknown-value"}, found
