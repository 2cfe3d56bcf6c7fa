"""``qualify rules check``: every error at once and located; warnings for rules that load but
look wrong; exit codes, --strict and --format json."""

from __future__ import annotations

import json

from qualify.authoring.lint import check_file
from qualify.rulebook import default_rules_path
from tests.authoring.conftest import DEFAULT_TEXT, Run, Write, variant

ANALYSES = {"never-fires", "shadowed-step", "grade-unreachable"}


def codes(path: object) -> list[str]:
    return [p.code for p in check_file(str(path)).problems]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


class TestDefaultRuleBase:
    def test_clean(self, run: Run) -> None:
        """The bundled rule base loads with no errors and no dead or shadowed rule."""
        result = run("check")
        assert result.exit_code == 0
        assert "rules/default.yaml: ok (" in result.stdout
        assert not ANALYSES & set(codes(default_rules_path()))

    def test_text_lines_are_located(self, run: Run) -> None:
        """Every problem line reads file:line:col: code: message."""
        result = run("check", default_rules_path())
        for line in result.stdout.splitlines()[:-1]:
            where, code, _ = line.split(": ", 2)
            file, row, col = where.rsplit(":", 2)
            assert file.endswith("default.yaml") and row.isdigit() and col.isdigit()
            assert code.replace("-", "").isalpha()


class TestNeverFires:
    def test_contradiction(self, write: Write) -> None:
        """budget > 10 and budget < 5: the trait is flagged at its condition, both parts named."""
        text = variant(("when: expected_deal_size >= 50000",
                        "when: budget > 10 and budget < 5 and known(sentiment)"))
        report = check_file(write("r.yaml", text))
        (p,) = [p for p in report.problems if p.code == "never-fires"]
        assert p.severity == "warning"
        assert (p.line, p.column) == (line_of(text, "budget > 10 and"), 11)
        assert p.message == ("trait 'big_order' can never fire: no lead makes 'budget > 10' "
                             "and 'budget < 5' both true")
        assert p.hint == "its parts contradict each other: check the numbers and the and/or"

    def test_outside_the_declared_range(self, write: Write) -> None:
        """A field's min/max count: purchase_timeline_days is 0..3650."""
        text = variant(("when: purchase_timeline_days <= 30", "when: purchase_timeline_days < 0"))
        (p,) = [p for p in check_file(write("r.yaml", text)).problems
                if p.code == "never-fires"]
        assert "urgent_need" in p.message
        assert p.hint == "purchase_timeline_days ranges from 0 to 3650"

    def test_qualifier_never_met(self, write: Write) -> None:
        """A qualifier that can never be met means no lead is ever qualified."""
        text = variant(("when: is_decision_maker or contact_role in [\"owner\", \"executive\"]",
                        "when: contact_role == \"owner\" and contact_role == \"staff\""))
        messages = [p.message for p in check_file(write("r.yaml", text)).problems
                    if p.code == "never-fires"]
        assert any("qualifier 'authority' can never be met, so no lead is ever qualified" in m
                   for m in messages)

    def test_switched_off(self, write: Write) -> None:
        """when: false is said plainly."""
        text = variant(("when: distance_km > 500", "when: false"))
        (p,) = [p for p in check_file(write("r.yaml", text)).problems
                if p.code == "never-fires"]
        assert "far_away" in p.message and "switched off" in p.message

    def test_no_false_alarm(self, write: Write) -> None:
        """Satisfiable conditions, including ones true only on missing data, are not flagged."""
        text = variant(
            ("when: distance_km > 500", "when: distance_km > 10 or distance_km < 5"),
            ("when: expected_deal_size < 5000", "when: not known(expected_deal_size)"),
            ("when: repeat_potential == \"none\"",
             "when: repeat_potential != \"none\" and not (repeat_potential in [\"high\"])"))
        assert "never-fires" not in codes(write("r.yaml", text))


STEP = """  - id: {id}
    when: {when}
    label: {{en: Step, zh: 步骤}}
    reason: {{en: Why., zh: 原因。}}
"""


def with_step(sid: str, when: str, before: str = "  - id: plan_contact") -> str:
    return variant((before, STEP.format(id=sid, when=when) + before))


class TestShadowedSteps:
    def test_one_earlier_step_covers_it(self, write: Write) -> None:
        """A won customer with a positive attitude is always taken by customer_service."""
        text = with_step("upsell", 'stage == "won" and sentiment == "positive"')
        (p,) = [p for p in check_file(write("r.yaml", text)).problems
                if p.code == "shadowed-step"]
        assert p.message.startswith("next step 'upsell' is never chosen: 'customer_service' "
                                    "(line ")
        assert p.line == line_of(text, 'stage == "won" and sentiment')
        assert "move it above 'customer_service'" in (p.hint or "")

    def test_several_earlier_steps_cover_it(self, write: Write) -> None:
        """needs_discovery means some qualifier is unknown: the three 'unknown' steps take it."""
        text = with_step("discover", 'status == "needs_discovery"')
        (p,) = [p for p in check_file(write("r.yaml", text)).problems
                if p.code == "shadowed-step"]
        for sid in ("discover_needs", "find_decision_maker", "qualify_budget"):
            assert f"'{sid}'" in p.message
        assert "'nurture'" not in p.message

    def test_partly_covered_is_fine(self, write: Write) -> None:
        """A step earlier ones take only sometimes is not flagged."""
        text = with_step("urgent_close", "trait.urgent_need and grade == \"B\"")
        assert "shadowed-step" not in codes(write("r.yaml", text))

    def test_fallback_shadowed(self, write: Write) -> None:
        """A catch-all step before the fallback makes the fallback dead."""
        text = with_step("always", "known(lead_id)")
        problems = check_file(write("r.yaml", text)).problems
        assert [p.message.split(":")[0] for p in problems if p.code == "shadowed-step"] == \
            ["next step 'plan_contact' is never chosen"]


class TestOtherWarnings:
    def test_unused_field(self, write: Write) -> None:
        """A declared field no condition or reason reads is flagged at its name."""
        text = variant(("  # pipeline\n", "  # pipeline\n  spare: {type: string, "
                                          "label: {en: Spare, zh: 备用}}\n"))
        problems = check_file(write("r.yaml", text)).problems
        (p,) = [p for p in problems if p.code == "unused-field" and "spare" in p.message]
        assert (p.line, p.column) == (line_of(text, "  spare:"), 3)

    def test_field_read_by_a_reason_is_used(self, write: Write) -> None:
        """{referral_potential} in a reason counts as a use."""
        problems = check_file(write("r.yaml", DEFAULT_TEXT)).problems
        assert not any("'referral_potential'" in p.message for p in problems)

    def test_points_sign(self, write: Write) -> None:
        """A golden trait with points <= 0 and a bad one with points >= 0 (from the loader)."""
        text = variant(("points: 15          # the strongest", "points: 0  # the strongest"),
                       ("points: -15\n", "points: 5\n"))
        messages = [p.message for p in check_file(write("r.yaml", text)).problems
                    if p.code == "points-sign"]
        assert messages == ["golden trait 'urgent_need' has 0 points",
                            "bad trait 'negative_attitude' has 5 points"]

    def test_label_missing_a_locale(self, write: Write) -> None:
        """A label without its zh text is a warning, not an error."""
        text = variant(("label: {en: Urgent need, zh: 对你的产品与服务有迫切需求}",
                        "label: {en: Urgent need}"))
        report = check_file(write("r.yaml", text))
        assert "label-locale-missing" in [p.code for p in report.problems]
        assert not report.errors()

    def test_grade_unreachable(self, write: Write) -> None:
        """A grade above what base + every golden point can reach is never given."""
        text = variant(("score: {base: 50, min: 0, max: 100}",
                        "score: {base: 0, min: 0, max: 100}"))
        (p,) = [p for p in check_file(write("r.yaml", text)).problems
                if p.code == "grade-unreachable"]
        assert p.message.startswith("grade 'A' is never given: scores only range 0..75")
        assert p.line == line_of(text, "- {id: A, min_score")


class TestErrors:
    def test_every_error_at_once(self, write: Write, run: Run) -> None:
        """Several mistakes: each on its own located line, exit 1, on stderr."""
        text = variant(("when: purchase_timeline_days <= 30", "when: purchase_timeline_dayz <= 30"),
                       ("points: -15\n", "points: lots\n"),
                       ("{referral_potential} referral", "{referal_potential} referral"))
        path = write("r.yaml", text)
        result = run("check", path)
        assert result.exit_code == 1
        lines = [x for x in result.stderr.splitlines() if not x.endswith("[warning]")]
        assert len(lines) == 3
        assert all(x.startswith(f"{path}:") for x in lines)
        assert "unknown-field: unknown field 'purchase_timeline_dayz' (did you mean " \
               "'purchase_timeline_days'?)" in result.stderr
        assert "bad-template: unknown placeholder '{referal_potential}'" in result.stderr

    def test_broken_yaml(self, write: Write, run: Run) -> None:
        """A YAML syntax error is one located line, not a stack trace."""
        path = write("r.yaml", DEFAULT_TEXT.replace("traits:\n", "traits:\n  - [\n", 1))
        result = run("check", path)
        assert result.exit_code == 1
        assert f"{path}:" in result.stderr and "yaml-syntax" in result.stderr

    def test_missing_file(self, tmp_path: object, run: Run) -> None:
        """A path that does not exist is a located error."""
        result = run("check", f"{tmp_path}/nope.yaml")
        assert result.exit_code == 1
        assert "file-unreadable" in result.stderr

    def test_too_big_for_the_engine(self, write: Write, run: Run) -> None:
        """A condition the engine cannot hold is a located error from check, not a crash."""
        text = variant(("when: sentiment == \"positive\"", "when: stage in [\"new\", "
                        "\"contacted\", \"meeting\", \"proposal\", \"negotiation\", \"won\", "
                        "\"lost\"] and influence in [\"high\", \"medium\", \"low\", \"none\"] "
                        "and sentiment in [\"positive\", \"neutral\", \"negative\"]"))
        path = write("r.yaml", text)
        result = run("check", path)
        assert result.exit_code == 1
        assert f"{path}:{line_of(text, '- id: positive_attitude')}:" in result.stderr
        assert "too-complex: 'positive_attitude'" in result.stderr

    def test_test_file_given_by_mistake(self, run: Run) -> None:
        """Checking a test file says so, and what to run instead."""
        result = run("check", default_rules_path().with_name("default.test.yaml"))
        assert result.exit_code == 1
        assert "not-a-rule-base" in result.stderr and "qualify rules test" in result.stderr


class TestOptions:
    def test_strict_makes_warnings_fail(self, write: Write, run: Run) -> None:
        """--strict: exit 1 on a warning alone."""
        path = write("r.yaml", variant(("when: distance_km > 500", "when: distance_km < 0")))
        assert run("check", path).exit_code == 0
        assert run("check", "--strict", path).exit_code == 1

    def test_json(self, write: Write, run: Run) -> None:
        """--format json: file, ok and problems with line, column, code, hint, severity."""
        path = write("r.yaml", variant(("when: distance_km > 500", "when: distance_km < 0")))
        doc = json.loads(run("check", "--format", "json", path).stdout)
        assert doc["file"] == str(path) and doc["ok"] is True
        never = [p for p in doc["problems"] if p["code"] == "never-fires"]
        assert never[0]["severity"] == "warning" and never[0]["line"] > 0
        assert set(never[0]) == {"code", "message", "file", "line", "column", "hint",
                                 "severity"}

    def test_json_several_files(self, write: Write, run: Run) -> None:
        """Several paths: a JSON list, one report per file; exit 1 if any has errors."""
        good = write("good.yaml", DEFAULT_TEXT)
        bad = write("bad.yaml", "rulebook: x\n")
        result = run("check", "--format", "json", good, bad)
        docs = json.loads(result.stdout)
        assert [d["ok"] for d in docs] == [True, False]
        assert result.exit_code == 1


class TestUnknownSteps:
    """Issue 15, item 5: 'not do_not_call' on a lead without do_not_call is unknown, so the
    step was passed over, and nothing said why."""

    CASES = ("rules: r.yaml\nas_of: '2026-01-01'\ncases:\n"
             "  - name: no calling preference recorded\n    lead: {stage: new}\n"
             "    expect: {status: needs_discovery}\n")

    def book(self, when: str) -> str:
        text = with_step("call_now", when, before="  - id: nurture")
        return text.replace("  stage:\n", "  do_not_call: {type: boolean, label: {en: Do not "
                            "call, zh: 勿电话联系}}\n  stage:\n", 1)

    def test_a_negated_missing_value_is_warned_at_the_step(self, write: Write) -> None:
        """The step's 'when' is located; the message names the case and the missing field."""
        text = self.book("not do_not_call")
        path = write("r.yaml", text)
        write("r.test.yaml", self.CASES)
        (p,) = [p for p in check_file(path).problems if p.code == "unknown-step"]
        assert p.severity == "warning"
        assert p.line == line_of(text, "when: not do_not_call")
        assert p.message == ("next step 'call_now' is passed over for test case 'no calling "
                             "preference recorded' (r.test.yaml:4) because its condition is "
                             "unknown there, not false (missing do_not_call)")
        assert "not known(x) or not x" in (p.hint or "")

    def test_the_fixes_and_plain_tests_are_quiet(self, write: Write) -> None:
        """Either fix decides the step; 'stage == "won"' unknown is what anyone expects; a
        case that pins its next step has been looked at."""
        write("r.test.yaml", self.CASES)
        for when in ("not known(do_not_call) or not do_not_call",
                     "known(do_not_call) and not do_not_call", "do_not_call"):
            assert "unknown-step" not in codes(write("r.yaml", self.book(when)))
        write("r.test.yaml", self.CASES.replace("status: needs_discovery",
                                                "next_step: discover_needs"))
        assert "unknown-step" not in codes(write("r.yaml", self.book("not do_not_call")))
