"""``qualify rules test``: run a rule base's test cases; PASS/FAIL per case, and coverage.

A *suite* is a rule base and its test file (``default.yaml`` + ``default.test.yaml``).
Each runnable case is scored by the real engine; every expectation is compared and each
mismatch reported with what was expected, what came out and where the expectation is
written. Coverage lists the rules (qualifiers met, traits fired, next steps chosen) that
no case reached: a rule nothing tests is a rule nothing protects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qualify.authoring.casefile import (
    Case,
    CaseFile,
    check_cases,
    is_test_file,
    read_test_file,
    tests_path_for,
)
from qualify.authoring.outcome import Outcome
from qualify.engine import Decision, Engine, today
from qualify.errors import Problem, QualifyError, RulebaseError
from qualify.rulebook import Rule, load_rulebook

Result = Literal["pass", "fail", "error"]
RULE_WORD = {"qualifier": "qualifier", "trait": "trait", "next_step": "next step"}


@dataclass(frozen=True, slots=True)
class Failure:
    """One expectation not met."""

    what: str
    expected: Any
    actual: Any
    line: int
    column: int

    def text(self) -> str:
        return f"{self.what}: expected {_show(self.expected)}, got {_show(self.actual)}"

    def to_dict(self, file: str) -> dict[str, Any]:
        return {"what": self.what, "expected": self.expected, "actual": self.actual,
                "file": file, "line": self.line, "column": self.column}


@dataclass(slots=True)
class CaseResult:
    case: Case
    outcome: Result
    failures: list[Failure] = field(default_factory=list)
    actual: dict[str, Any] | None = None
    explanation: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {"name": c.name, "file": c.file, "line": c.line, "column": c.column,
                "outcome": self.outcome,
                "failures": [f.to_dict(c.file) for f in self.failures],
                "actual": self.actual, "problems": [p.to_dict() for p in self.problems]}


@dataclass(slots=True)
class Coverage:
    """Which rules some case reached."""

    rules: tuple[Rule, ...]
    file: str
    fired: set[tuple[str, str]] = field(default_factory=set)  # (section, id)

    @property
    def not_fired(self) -> list[Rule]:
        return [r for r in self.rules if (r.section, r.id) not in self.fired]

    @property
    def percent(self) -> float:
        return 100.0 * (len(self.rules) - len(self.not_fired)) / max(len(self.rules), 1)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": len(self.rules), "fired": len(self.rules) - len(self.not_fired),
                "percent": round(self.percent, 1),
                "not_fired": [{"id": r.id, "section": r.section, "file": self.file,
                               "line": r.line} for r in self.not_fired]}


@dataclass(slots=True)
class SuiteResult:
    """A rule base and its test file, run."""

    rules: str
    tests: str
    found: bool
    problems: list[Problem] = field(default_factory=list)  # file-level: YAML, rule base
    results: list[CaseResult] = field(default_factory=list)
    coverage: Coverage | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.outcome == "pass" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": self.rules, "tests": self.tests, "found": self.found, "ok": self.ok,
                "problems": [p.to_dict() for p in self.problems],
                "cases": [r.to_dict() for r in self.results],
                "coverage": self.coverage.to_dict() if self.coverage else None}


def suites_for(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(rule base, test file) pairs for paths naming rule bases, test files or folders."""
    pairs: dict[tuple[Path, Path], None] = {}
    for path in paths:
        if path.is_dir():
            for tests in sorted(path.glob("*.test.yaml")):
                pairs[(read_test_file(tests).rules, tests)] = None
        elif is_test_file(path):
            pairs[(read_test_file(path).rules, path)] = None
        else:
            pairs[(path, tests_path_for(path))] = None
    return list(pairs)


def run_suite(rules: Path, tests: Path, *, explain: bool = False,
              as_of: dt.date | None = None) -> SuiteResult:
    """Run one suite; never raises for a mistake in the rule base or the test file."""
    tf: CaseFile = read_test_file(tests)
    if isinstance(tf.data, dict) and tf.data.get("rules"):
        rules = tf.rules  # the test file names its rule base
    suite = SuiteResult(str(rules), str(tests), tf.found, list(tf.problems))
    try:
        rulebook = load_rulebook(rules)
        engine = Engine(rulebook)  # may refuse a condition too large for it, located
    except RulebaseError as e:
        suite.problems.extend(e.problems)
        return suite
    try:
        if not tf.found:
            return suite
        check_cases(tf, rulebook, today(), as_of)
        suite.problems = list(tf.problems)
        suite.coverage = Coverage(rulebook.rules, str(rules))
        for case in tf.cases:
            suite.results.append(_run_case(engine, case, suite.coverage, explain))
    finally:
        engine.close()
    return suite


def gate(engine: Engine, tests: Path, raw: bytes) -> list[Problem]:
    """Why ``engine``'s rule base must not go live: the mistakes of its test file (the bytes
    ``raw``, read from ``tests``) and its failing cases, each located there. None: all pass.
    """
    tf = read_test_file(tests, raw)
    if tf.data is not None:
        check_cases(tf, engine.rulebook, today())
    problems = list(tf.problems)
    coverage = Coverage(engine.rulebook.rules, str(tests))
    hint = f"fix the rule base, or the case if the rule base is right: qualify rules test {tests}"
    for case in tf.cases:
        result = _run_case(engine, case, coverage, explain=False)
        problems.extend(result.problems)
        problems.extend(Problem("test-failed", f"case '{case.name}': {f.text()}", case.file,
                                f.line, f.column, hint) for f in result.failures)
    return problems


def _run_case(engine: Engine, case: Case, coverage: Coverage, explain: bool) -> CaseResult:
    if not case.runnable:
        return CaseResult(case, "error", problems=list(case.problems))
    try:
        d = engine.decide(dict(case.lead), case.as_of)
    except QualifyError as e:
        p = Problem("bad-lead", str(e), case.file, case.line, case.column)
        return CaseResult(case, "error", problems=[p])
    actual = Outcome.of(engine.rulebook, d).to_dict()
    coverage.fired.update(("qualifier", q) for q, s in actual["qualifiers"].items()
                          if s == "met")
    coverage.fired.update(("trait", t) for t in actual["traits"])
    coverage.fired.add(("next_step", d.step.id))
    failures = sorted(_compare(case, actual), key=lambda f: (f.line, f.column))
    result = CaseResult(case, "fail" if failures else "pass", failures, actual)
    if explain and failures:
        result.explanation = _explain(engine, d, case.as_of)
    return result


def _explain(engine: Engine, d: Decision, as_of: dt.date) -> list[str]:
    return list(engine.explain(d, as_of, engine.rulebook.locale).explanation)


def _compare(case: Case, actual: dict[str, Any]) -> Iterator[Failure]:
    e = case.expect

    def at(key: str) -> tuple[int, int]:
        return e.where.get(key, (case.line, case.column))

    for key in ("status", "grade", "next_step"):
        want = getattr(e, key)
        if want is not None and want != actual[key]:
            yield Failure(key, want, actual[key], *at(key))
    if e.score is not None:
        lo, hi = e.score
        got = actual["score"]
        if (lo is not None and got < lo) or (hi is not None and got > hi):
            want = (str(lo) if lo == hi else f"{lo}..{hi}" if lo is not None and hi is not None
                    else f">= {lo}" if lo is not None else f"<= {hi}")
            yield Failure("score", want, got, *at("score"))
    fired = actual["traits"]
    missing = [t for t in e.traits if t not in fired]
    if missing:
        yield Failure("traits", {"fired": missing}, fired, *at("traits"))
    unwanted = [t for t in e.not_traits if t in fired]
    if unwanted:
        yield Failure("not_traits", {"not fired": unwanted}, fired, *at("not_traits"))
    for qid, state in e.qualifiers.items():
        if actual["qualifiers"].get(qid) != state:
            yield Failure(f"qualifier {qid}", state, actual["qualifiers"].get(qid),
                          *at("qualifiers"))


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{', '.join(v)} {k}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def run(paths: Sequence[Path], *, explain: bool = False,
        as_of: dt.date | None = None) -> list[SuiteResult]:
    return [run_suite(r, t, explain=explain, as_of=as_of) for r, t in suites_for(paths)]


# ----------------------------------------------------------------------------- reporting

RULER = "-" * 80


def text_report(suites: Iterable[SuiteResult]) -> Iterator[str]:
    """OPA-style lines: a PASS/FAIL/ERROR line per case, a summary, the coverage."""
    suites = list(suites)
    for suite in suites:
        yield from (str(p) for p in suite.problems)
        if not suite.found:
            yield f"{suite.rules}: no tests ({suite.tests} not found)"
        for r in suite.results:
            c = r.case
            yield f"{c.file}:{c.line}: {r.outcome.upper()}: {c.name}"
            for f in r.failures:
                yield f"    {f.text()} (line {f.line})"
            for p in r.problems:
                yield f"    {p}"
            for line in r.explanation:
                yield f"    | {line}"
    results = [r for s in suites for r in s.results]
    yield RULER
    total = len(results)
    counts = {o: sum(r.outcome == o for r in results) for o in ("pass", "fail", "error")}
    yield f"PASS: {counts['pass']}/{total}"
    for o in ("fail", "error"):
        if counts[o]:
            yield f"{o.upper()}: {counts[o]}/{total}"
    for suite in suites:
        cov = suite.coverage
        if cov is None:
            continue
        n = len(cov.rules)
        fired = n - len(cov.not_fired)
        line = f"coverage of {suite.rules}: {fired}/{n} rules fired ({cov.percent:.0f}%)"
        yield line + ("; no case fired:" if cov.not_fired else "")
        for rule in cov.not_fired:
            yield f"  {cov.file}:{rule.line}: {RULE_WORD[rule.section]} {rule.id}"


def summary(suites: Sequence[SuiteResult]) -> dict[str, int]:
    results = [r for s in suites for r in s.results]
    return {"pass": sum(r.outcome == "pass" for r in results),
            "fail": sum(r.outcome == "fail" for r in results),
            "error": sum(r.outcome == "error" for r in results), "total": len(results)}


def passed(suites: Sequence[SuiteResult], fail_on_empty: bool) -> bool:
    """The exit status: every suite clean, and (with ``fail_on_empty``) some case ran."""
    if fail_on_empty and summary(suites)["total"] == 0:
        return False
    return all(s.ok for s in suites)


def json_report(suites: Sequence[SuiteResult], fail_on_empty: bool) -> dict[str, Any]:
    return {"ok": passed(suites, fail_on_empty), "summary": summary(suites),
            "suites": [s.to_dict() for s in suites]}

