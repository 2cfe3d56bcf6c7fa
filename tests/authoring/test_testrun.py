"""``qualify rules test``: cases beside the rules, PASS/FAIL with expected vs actual, located
mistakes in test files, coverage, --fail-on-empty and --format json."""

from __future__ import annotations

import json
from pathlib import Path

from qualify.authoring import testrun
from qualify.rulebook import default_rules_path
from tests.authoring.conftest import DEFAULT_TESTS, DEFAULT_TEXT, Run, Write

GOOD_CASE = """
  - name: urgent lead
    lead: {purchase_timeline_days: 10}
    expect: {traits: [urgent_need], score: 65}
"""


def suite(write: Write, cases: str, head: str = 'as_of: "2026-01-01"\n') -> Path:
    """r.yaml (the default rules) and r.test.yaml with these cases; returns the rules path."""
    rules = write("r.yaml", DEFAULT_TEXT)
    write("r.test.yaml", f"{head}cases:{cases}")
    return rules


def line_of(path: Path, needle: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


class TestDefaultSuite:
    def test_every_case_passes(self, run: Run) -> None:
        """The shipped cases pass, each on a PASS line with its file and line."""
        result = run("test")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        passes = [x for x in lines if ": PASS: " in x]
        assert len(passes) >= 15
        assert all(x.startswith("rules/default.test.yaml:") for x in passes)
        assert "FAIL" not in result.stdout

    def test_fires_every_rule(self) -> None:
        """Coverage of the default rule base is complete: every rule fired in some case."""
        (s,) = testrun.run([default_rules_path()])
        assert s.coverage is not None
        assert [r.id for r in s.coverage.not_fired] == []
        assert s.coverage.percent == 100.0

    def test_test_file_path_works_too(self, run: Run) -> None:
        """Naming the test file, or the folder, runs the same suite."""
        by_rules = run("test", "--format", "json", default_rules_path())
        by_tests = run("test", "--format", "json", DEFAULT_TESTS)
        by_folder = run("test", "--format", "json", DEFAULT_TESTS.parent)
        summaries = [json.loads(r.stdout)["summary"] for r in (by_rules, by_tests, by_folder)]
        assert summaries[0] == summaries[1] == summaries[2]


class TestFailures:
    def test_expected_versus_actual(self, write: Write, run: Run) -> None:
        """A failing case lists each unmet expectation: expected, got, and its line."""
        rules = suite(write, """
  - name: wrong on purpose
    lead: {purchase_timeline_days: 10, expected_deal_size: 1000}
    expect:
      status: qualified
      grade: A
      score: {min: 80}
      next_step: close
      traits: [urgent_need, big_order]
      not_traits: [small_deal]
      qualifiers: {need: unmet}
""" + GOOD_CASE)
        result = run("test", rules)
        assert result.exit_code == 1
        tests = rules.with_name("r.test.yaml")
        out = result.stdout.splitlines()
        assert f"{tests}:3: FAIL: wrong on purpose" in out
        assert f"{tests}:14: PASS: urgent lead" in out
        assert "    status: expected qualified, got needs_discovery (line 6)" in out
        assert "    grade: expected A, got C (line 7)" in out
        assert "    score: expected >= 80, got 55 (line 8)" in out
        assert "    next_step: expected close, got find_decision_maker (line 9)" in out
        assert "    traits: expected big_order fired, got [urgent_need, small_deal] (line 10)" \
            in out
        assert "    not_traits: expected small_deal not fired, got [urgent_need, small_deal] " \
               "(line 11)" in out
        assert "    qualifier need: expected unmet, got met (line 12)" in out
        assert "PASS: 1/2" in out and "FAIL: 1/2" in out

    def test_json_has_file_and_line(self, write: Write, run: Run) -> None:
        """--format json: per case its file, line and outcome; per failure its line."""
        rules = suite(write, """
  - name: wrong grade
    lead: {purchase_timeline_days: 10}
    expect: {grade: A}
""" + GOOD_CASE)
        doc = json.loads(run("test", "--format", "json", rules).stdout)
        assert doc["ok"] is False
        assert doc["summary"] == {"pass": 1, "fail": 1, "error": 0, "total": 2}
        case = doc["suites"][0]["cases"][0]
        assert (case["name"], case["line"], case["outcome"]) == ("wrong grade", 3, "fail")
        assert case["failures"] == [{"what": "grade", "expected": "A", "actual": "B",
                                     "file": str(rules.with_name("r.test.yaml")),
                                     "line": 5, "column": 21}]
        assert case["actual"]["traits"] == ["urgent_need"]

    def test_explain_shows_the_verdict(self, write: Write, run: Run) -> None:
        """--explain prints the verdict's explanation under a failure."""
        rules = suite(write, """
  - name: wrong grade
    lead: {purchase_timeline_days: 10}
    expect: {grade: A}
""")
        out = run("test", "--explain", rules).stdout
        assert "    | +15 Urgent need" in out


class TestMistakesInTestFiles:
    def test_broken_yaml(self, write: Write, run: Run) -> None:
        """A YAML syntax error in the test file is located; nothing runs; exit 1."""
        rules = write("r.yaml", DEFAULT_TEXT)
        write("r.test.yaml", "cases:\n  - name: x\n    lead: {budget: 1\n")
        result = run("test", rules)
        assert result.exit_code == 1
        assert f"{rules.with_name('r.test.yaml')}:" in result.stdout
        assert "yaml-syntax" in result.stdout

    def test_not_a_mapping(self, write: Write, run: Run) -> None:
        """A test file that is a list, not a mapping, says what it should be."""
        rules = write("r.yaml", DEFAULT_TEXT)
        write("r.test.yaml", "- name: x\n")
        result = run("test", rules)
        assert result.exit_code == 1 and "bad-document" in result.stdout

    def test_unknown_field_in_a_lead(self, write: Write, run: Run) -> None:
        """A lead naming an unknown field is an error at that key, with a suggestion."""
        rules = suite(write, """
  - name: typo
    lead: {budgt: 5}
    expect: {status: needs_discovery}
""" + GOOD_CASE)
        result = run("test", rules)
        tests = rules.with_name("r.test.yaml")
        assert result.exit_code == 1
        assert f"{tests}:3: ERROR: typo" in result.stdout
        assert (f"    {tests}:4:12: unknown-field: 'budgt' is not a field of the rule base "
                "(did you mean 'budget'?)") in result.stdout
        assert f"{tests}:7: PASS: urgent lead" in result.stdout  # the others still run

    def test_bad_values_all_reported(self, write: Write, run: Run) -> None:
        """Every bad value of a lead, each at its own place."""
        rules = suite(write, """
  - name: bad values
    lead: {purchase_timeline_days: soon, sentiment: happy, distance_km: -3}
    expect: {status: needs_discovery}
""")
        out = run("test", rules).stdout
        assert "bad-value: purchase_timeline_days: expected a number, got 'soon'" in out
        assert "bad-value: sentiment: 'happy' is not one of positive, neutral, negative" in out
        assert "bad-value: distance_km: -3 is below the minimum 0" in out

    def test_unknown_rule_ids(self, write: Write, run: Run) -> None:
        """Unknown trait, step, qualifier, grade and state names: located, with suggestions."""
        rules = suite(write, """
  - name: unknown ids
    lead: {budget: 5}
    expect:
      status: qualfied
      grade: Z
      next_step: closee
      traits: [urgent, need]
      not_traits: [close]
      qualifiers: {nead: met, need: yes}
""")
        tests = rules.with_name("r.test.yaml")
        out = run("test", rules).stdout
        expected = [
            ":6:15: unknown-value: unknown status 'qualfied' (did you mean 'qualified'?)",
            ":7:14: unknown-value: unknown grade 'Z' (one of: A, B, C, D)",
            ":8:18: unknown-id: unknown next step id 'closee' (did you mean 'close'?)",
            ":9:16: unknown-id: unknown trait id 'urgent' (did you mean 'urgent_need'?)",
            ":9:24: unknown-id: 'need' is a qualifier, not a trait (use qualifiers: {need: met})",
            ":10:20: unknown-id: 'close' is a next step, not a trait (use next_step: close)",
            ":11:20: unknown-id: unknown qualifier id 'nead' (did you mean 'need'?)",
            ":11:37: unknown-value: unknown qualifier state 'yes' (one of: met, unmet, unknown)",
        ]
        for tail in expected:
            assert f"    {tests}{tail}" in out

    def test_shape_mistakes(self, write: Write, run: Run) -> None:
        """Unknown keys, wrong types, missing keys, duplicate names, empty expectations."""
        rules = suite(write, """
  - name: one
    lead: {budget: 5}
    expect: {statuss: qualified}
  - name: one
    lead: [budget]
    expect: {score: high}
  - name: nothing
    lead: {}
    expect: {}
  - lead: {}
  - just text
""")
        out = run("test", rules).stdout
        assert "unknown-key: unknown key 'statuss' (did you mean 'status'?)" in out
        assert "duplicate-name: duplicate case name 'one' (first used at line 3)" in out
        assert "bad-value: lead: input should be a valid dictionary (got ['budget'])" in out
        assert "bad-value: expect.score: input should be a valid integer (got 'high') " \
               "(write score: 85, or score: {min: 80, max: 100})" in out
        assert "no-expectations: the case expects nothing, so it can never fail" in out
        assert "missing-key: missing key 'name'" in out
        assert "missing-key: missing key 'expect'" in out
        assert "bad-value: a case is a mapping" in out
        assert "ERROR: 5/5" in out

    def test_score_range_backwards(self, write: Write, run: Run) -> None:
        """score: {min: 90, max: 10} can never pass: an error, not a failure."""
        rules = suite(write, """
  - name: backwards
    lead: {budget: 5}
    expect: {score: {min: 90, max: 10}}
""")
        assert "bad-value: score min 90 is above max 10" in run("test", rules).stdout

    def test_bad_as_of_and_missing_rules(self, write: Write, run: Run) -> None:
        """A bad date and a rules: path that does not exist are located errors."""
        write("r.yaml", DEFAULT_TEXT)
        tests = write("r.test.yaml", f'rules: nope.yaml\nas_of: "2026-13-01"\ncases:{GOOD_CASE}')
        out = run("test", tests).stdout
        assert f"{tests}:1:8: file-not-found: rule base 'nope.yaml' not found" in out

        tests = write("r.test.yaml", f'as_of: "2026-13-01"\ncases:{GOOD_CASE}')
        out = run("test", tests).stdout
        assert f"{tests}:1:8: bad-value: '2026-13-01' is not a date" in out

    def test_broken_rule_base(self, write: Write, run: Run) -> None:
        """When the rule base does not load, its own errors are shown, located."""
        rules = write("r.yaml", DEFAULT_TEXT.replace("kind: golden", "kind: gold", 1))
        write("r.test.yaml", f"cases:{GOOD_CASE}")
        result = run("test", rules)
        assert result.exit_code == 1
        assert f"{rules}:" in result.stdout and "bad-value" in result.stdout


    def test_rule_base_too_big_for_the_engine(self, write: Write, run: Run) -> None:
        """A condition the engine refuses is a located error, not a crash."""
        rules = write("r.yaml", DEFAULT_TEXT.replace(
            'when: sentiment == "positive"',
            'when: stage in ["new", "contacted", "meeting", "proposal", "won", "lost"] and '
            'influence in ["high", "medium", "low", "none"] and '
            'sentiment in ["positive", "neutral", "negative"]', 1))
        write("r.test.yaml", f"cases:{GOOD_CASE}")
        result = run("test", rules)
        assert result.exit_code == 1
        assert f"{rules}:" in result.stdout and "too-complex" in result.stdout


class TestEmptyAndCoverage:
    def test_no_test_file(self, write: Write, run: Run) -> None:
        """No test file: said plainly; exit 0, or 1 with --fail-on-empty."""
        rules = write("r.yaml", DEFAULT_TEXT)
        result = run("test", rules)
        assert result.exit_code == 0
        assert f"{rules}: no tests ({rules.with_name('r.test.yaml')} not found)" in result.stdout
        failed = run("test", "--fail-on-empty", rules)
        assert failed.exit_code == 1 and "--fail-on-empty" in failed.stderr

    def test_empty_cases(self, write: Write, run: Run) -> None:
        """cases: [] is empty too."""
        rules = suite(write, " []\n")
        assert run("test", rules).exit_code == 0
        assert run("test", "--fail-on-empty", rules).exit_code == 1

    def test_rules_no_case_fired(self, write: Write, run: Run) -> None:
        """Coverage names each rule no case fired, with its line in the rule base."""
        rules = suite(write, GOOD_CASE)
        out = run("test", rules).stdout
        assert "coverage of " in out and " rules fired (" in out
        assert f"  {rules}:{line_of(rules, '- id: far_away')}: trait far_away" in out
        assert "trait urgent_need" not in out
        doc = json.loads(run("test", "--format", "json", rules).stdout)
        cov = doc["suites"][0]["coverage"]
        assert {"id": "far_away", "section": "trait", "file": str(rules),
                "line": line_of(rules, "- id: far_away")} in cov["not_fired"]
        assert cov["fired"] == cov["rules"] - len(cov["not_fired"])

    def test_as_of_option_overrides(self, write: Write, run: Run) -> None:
        """--as-of replaces the file's date: a contact 91 days before it is stale."""
        rules = suite(write, """
  - name: stale by the option's date
    lead: {last_contact_date: "2026-03-01"}
    expect: {traits: [stale_contact]}
""")
        assert run("test", rules).exit_code == 1
        assert run("test", "--as-of", "2026-05-31", rules).exit_code == 0
