"""``qualify rules check``: every error in a rule base, and warnings for rules that look wrong.

The loader reports errors and the warnings it can see item by item (a missing label or
locale, a golden trait with points <= 0). This module adds what needs the whole rule base:

    never-fires        a condition no lead can make true (``budget > 10 and budget < 5``)
    shadowed-step      a next step that earlier steps always take first (first match wins)
    unused-field       a declared field no condition or reason reads
    grade-unreachable  a grade no score the traits can add up to ever reaches
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualify.authoring.casefile import check_cases, is_test_file, read_test_file, tests_path_for
from qualify.authoring.render import code
from qualify.authoring.solver import NOT_TRUE, Goal, Region, Space, T, satisfiable
from qualify.conditions import And, Cmp, Const, Expr, In, Not
from qualify.engine import Engine, today
from qualify.errors import Problem, QualifyError, RulebaseError
from qualify.explain import decide
from qualify.rulebook import Rule, Rulebook, rulebook_from_yaml
from qualify.yamlsource import Positions, read_yaml_file


@dataclass(slots=True)
class CheckReport:
    """What ``check`` found in one file: errors and warnings, in file order."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    rulebook: Rulebook | None = None

    def errors(self, strict: bool = False) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error" or strict]

    def to_dict(self, strict: bool = False) -> dict[str, Any]:
        return {"file": self.file, "ok": not self.errors(strict),
                "problems": [p.to_dict() for p in self.problems]}

    def lines(self, strict: bool = False) -> Iterator[str]:
        for p in self.problems:
            yield str(p) if p.severity == "error" else f"{p} [warning]"
        if not self.errors(strict):
            n = len(self.rulebook.rules) if self.rulebook else 0
            warnings = len(self.problems)
            yield f"{self.file}: ok ({n} rules, {warnings} warning{'s' * (warnings != 1)})"


def check_file(path: str | Path) -> CheckReport:
    """Load, lint and compile a rule base; never raises for a user's mistake."""
    report = CheckReport(str(path))
    if is_test_file(Path(path)):
        report.problems.append(Problem(
            "not-a-rule-base", "this is a test file, not a rule base", str(path), 1, 1,
            f"run: qualify rules test {path}"))
        return report
    try:
        data, pos, raw = read_yaml_file(path)  # parsed once: YAML is most of a big file's load
        rulebook = rulebook_from_yaml(data, pos, raw)
    except RulebaseError as e:
        report.problems = e.problems
        return report
    report.rulebook = rulebook
    report.problems = [*rulebook.warnings, *lint(rulebook, data, pos)]
    try:
        with Engine(rulebook) as engine:  # the engine accepts what the loader accepted
            report.problems.extend(unknown_steps(engine, Path(path), pos))
    except RulebaseError as e:  # e.g. a condition too large for the engine, located
        report.problems.extend(e.problems)
    except QualifyError as e:
        report.problems.append(Problem("engine", str(e), str(path), 1, 1))
    report.problems.sort(key=lambda p: (p.line, p.column, p.code))
    return report


def unknown_steps(engine: Engine, path: Path, pos: Positions) -> Iterator[Problem]:
    """unknown-step: a next step above the one a test case's lead gets, passed over because
    its condition is unknown for that lead, through a negation of a missing value ('not x',
    '!=', 'not in': people read those as true when x is missing). Once per step; not for
    cases that expect a next step (their author has seen which step the lead gets)."""
    tests = tests_path_for(path)
    if not tests.is_file():
        return
    tf = read_test_file(tests)
    if tf.data is None:
        return  # `rules test` reports a broken test file
    check_cases(tf, engine.rulebook, today())
    steps = engine.rulebook.next_steps
    index = {s.id: i for i, s in enumerate(steps)}
    warned: set[str] = set()
    for case in tf.cases:
        if not case.runnable or case.expect.next_step is not None:
            continue
        try:
            d = engine.decide(dict(case.lead), case.as_of)
        except QualifyError:
            continue  # `rules test` reports it
        for step in steps[:index[d.step.id]]:
            if step.id in warned or decide(step.expr, d.stage2_fact) is not None:
                continue
            negated = [s for s in _negated_sources(step.expr) if s not in d.lead]
            if not negated:
                continue  # 'stage == "won"' unknown, so skipped: what anyone expects
            warned.add(step.id)
            missing = ", ".join(dict.fromkeys(negated))
            yield pos.problem(
                ("next_steps", index[step.id], "when"), "unknown-step",
                f"next step '{step.id}' is passed over for test case '{case.name}' "
                f"({tests.name}:{case.line}) because its condition is unknown there, not "
                f"false (missing {missing})",
                "a step applies only when its condition is true: write 'not known(x) or not "
                "x' to apply it when x is missing, or 'known(x) and not x' to skip it",
                severity="warning")


def _negated_sources(expr: Expr) -> Iterator[str]:
    """The fields ``expr`` reads under a negation: 'not ...', '!=' or 'not in'."""
    for node in expr.walk():
        if isinstance(node, Not):
            yield from node.item.sources()
        elif (isinstance(node, Cmp) and node.op == "!=") or (isinstance(node, In)
                                                             and node.negated):
            yield from node.sources()


def lint(rulebook: Rulebook, data: Any, pos: Positions) -> list[Problem]:
    """The whole-rule-base warnings (see the module docstring); ``data`` is the parsed YAML."""
    return [*_Linter(rulebook, data, pos).run()]


class _Linter:
    def __init__(self, rulebook: Rulebook, data: Any, pos: Positions) -> None:
        self.rb = rulebook
        self.pos = pos
        grades = data.get("grades") if isinstance(data, dict) else None
        self.grade_index = {str(g.get("id")): i for i, g in enumerate(grades or [])
                            if isinstance(g, dict)}  # loaded grades are sorted by score
        self.space = Space(rulebook)
        self.index = {("trait", r.id): i for i, r in enumerate(rulebook.traits)}
        self.index |= {("next_step", r.id): i for i, r in enumerate(rulebook.next_steps)}

    def path(self, rule: Rule) -> tuple[Any, ...]:
        if rule.section == "qualifier":
            return ("qualifiers", rule.id, "when")
        section = "traits" if rule.section == "trait" else "next_steps"
        return (section, self.index[(rule.section, rule.id)], "when")

    def warn(self, path: tuple[Any, ...], code_: str, msg: str, hint: str | None,
             key: bool = False) -> Problem:
        return self.pos.problem(path, code_, msg, hint, key=key, severity="warning")

    def run(self) -> Iterator[Problem]:
        yield from self.never_fires()
        yield from self.shadowed_steps()
        yield from self.unused_fields()
        yield from self.unreachable_grades()

    # -- never-fires
    def never_fires(self) -> Iterator[Problem]:
        what = {"qualifier": "qualifier '{}' can never be met, so no lead is ever qualified",
                "trait": "trait '{}' can never fire", "next_step": "next step '{}' never applies"}
        for rule in self.rb.rules:
            if satisfiable(self.space, [(rule.expr, T)]) is not False:
                continue
            msg = what[rule.section].format(rule.id)
            if isinstance(rule.expr, Const):
                yield self.warn(self.path(rule), "never-fires", f"{msg}: it is switched off "
                                "(when: false)", "remove the rule, or give it a condition")
                continue
            core = self.core(rule.expr)
            texts = " and ".join(f"'{code(e)}'" for e in core)
            both = " all" if len(core) > 2 else " both" if len(core) == 2 else ""
            yield self.warn(self.path(rule), "never-fires",
                            f"{msg}: no lead makes {texts}{both} true", self.ranges(core))

    def core(self, expr: Expr) -> list[Expr]:
        """A smallest set of the top-level "and" parts that cannot all hold together."""
        if not isinstance(expr, And):
            return [expr]
        items = list(expr.items)
        for item in list(items):
            rest = [i for i in items if i is not item]
            if rest and satisfiable(self.space, [(e, T) for e in rest]) is False:
                items = rest
        return items

    def ranges(self, exprs: list[Expr]) -> str:
        """The hint: the declared ranges, when they are what rules the condition out."""
        unbounded = Space(self.rb, bounded=False)
        if satisfiable(unbounded, [(e, T) for e in exprs]) is not True:
            return "its parts contradict each other: check the numbers and the and/or"
        said = []
        for e in exprs:
            for ref in e.refs():
                spec = self.rb.fields.get(ref.source or "")
                if ref.kind != "field" or not spec or spec.type not in ("number", "integer"):
                    continue
                if spec.min is not None and spec.max is not None:
                    said.append(f"{spec.name} ranges from {spec.min:g} to {spec.max:g}")
                elif spec.min is not None:
                    said.append(f"{spec.name} is at least {spec.min:g}")
                elif spec.max is not None:
                    said.append(f"{spec.name} is at most {spec.max:g}")
        return "; ".join(dict.fromkeys(said)) or "check the numbers and the and/or"

    # -- shadowed-step
    def shadowed_steps(self) -> Iterator[Problem]:
        steps = self.rb.next_steps
        regions = [Region(self.space, s.expr) for s in steps]
        for k, step in enumerate(steps):
            if k == 0 or satisfiable(self.space, [(step.expr, T)]) is not True:
                continue
            # quick tests on boxes first: a searches per pair of steps made 5,000 rules take
            # minutes. One earlier step whose region holds this one's shadows it outright;
            # steps that never apply together with this one cannot take its leads.
            mine = regions[k]
            cover = next(([s] for s, r in zip(steps[:k], regions, strict=False)
                          if mine.surely_within(r)), None)
            if cover is None:
                earlier = [s for s, r in zip(steps[:k], regions, strict=False)
                           if not mine.surely_apart(r)]
                if not earlier or satisfiable(self.space, self.goals(step, earlier)) is not False:
                    continue
                cover = self.cover(step, earlier)
            names = ", ".join(f"'{s.id}' (line {s.line})" for s in cover)
            if len(cover) == 1:
                msg = (f"next step '{step.id}' is never chosen: {names} comes first and "
                       "applies whenever it does")
                hint = f"move it above '{cover[0].id}', or narrow that step's condition"
            else:
                msg = (f"next step '{step.id}' is never chosen: every lead it applies to is "
                       f"taken first by {names}")
                hint = "move it higher, or narrow those steps' conditions"
            yield self.warn(self.path(step), "shadowed-step", msg,
                            f"{hint}; the first step that applies wins")

    def goals(self, step: Rule, earlier: list[Rule]) -> list[Goal]:
        return [(step.expr, T), *((s.expr, NOT_TRUE) for s in earlier)]

    def cover(self, step: Rule, earlier: list[Rule]) -> list[Rule]:
        """A smallest set of earlier steps that together take every lead ``step`` would:
        QuickXplain's, unless one step alone does (searched one by one only then)."""
        cover = self.minimal(step, [], earlier)
        if len(cover) > 1:
            for s in earlier:
                if satisfiable(self.space, self.goals(step, [s])) is False:
                    return [s]
        shadows = satisfiable(self.space, self.goals(step, cover)) is False
        return cover if shadows else earlier

    def minimal(self, step: Rule, base: list[Rule], rest: list[Rule],
                grown: bool = False) -> list[Rule]:
        """QuickXplain: the fewest of ``rest`` that, with ``base``, still shadow ``step``."""
        if grown and satisfiable(self.space, self.goals(step, base)) is False:
            return []
        if len(rest) <= 1:
            return rest
        half = len(rest) // 2
        first, second = rest[:half], rest[half:]
        keep2 = self.minimal(step, base + first, second, bool(first))
        keep1 = self.minimal(step, base + keep2, first, bool(keep2))
        return sorted(keep1 + keep2, key=self.rb.next_steps.index)

    # -- unused-field
    def unused_fields(self) -> Iterator[Problem]:
        used = {"lead_id"}
        for rule in self.rb.rules:
            used.update(rule.sources)
            for text in rule.reason.values():
                try:
                    used.update(f for _, f, _, _ in string.Formatter().parse(text) if f)
                except ValueError:  # reported by the loader
                    continue
        for name in self.rb.fields:
            if name not in used:
                yield self.warn(("fields", name), "unused-field",
                                f"field '{name}' is declared but no rule reads it",
                                "use it in a condition or a reason, or remove it", key=True)

    # -- grade-unreachable
    def unreachable_grades(self) -> Iterator[Problem]:
        reachable = set(self.space.grades)
        lo, hi = self.space.score_range
        for i, grade in enumerate(self.rb.grades):
            if grade.id in reachable:
                continue
            at = self.grade_index.get(grade.id, i)
            yield self.warn(("grades", at, "min_score"), "grade-unreachable",
                            f"grade '{grade.id}' is never given: scores only range "
                            f"{lo}..{hi} (base {self.rb.score_base} plus the traits' points)",
                            "lower its min_score, or give traits more points")
