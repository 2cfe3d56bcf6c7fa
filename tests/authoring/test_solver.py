"""The satisfiability search behind never-fires and shadowed-step: exact where it can be,
and never claiming "no lead can" when some lead can."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualify.authoring.lint import lint
from qualify.authoring.solver import NOT_TRUE, Region, Space, T, satisfiable, witness
from qualify.conditions import And, Expr
from qualify.leads import LeadReader
from qualify.rulebook import Rulebook, load_rulebook_text
from qualify.yamlsource import load_yaml_text
from tests.reference import evaluate, reference_verdict, schema_of

AS_OF = dt.date(2026, 1, 1)
FIELDS = """
  n: {type: number, min: 0, max: 100}
  i: {type: integer, min: 0, max: 3}
  e: {type: enum, values: [a, b, c]}
  b: {type: boolean}
  s: {type: string}
  l: {type: list}
  d: {type: date}
  r: {type: number, required: true}
"""
# values worth trying per field when searching by brute force (None: missing)
POOLS: dict[str, list[Any]] = {
    "n": [None, 0, 2.5, 5, 5.5, 7, 10, 50, 100],
    "i": [None, 0, 1, 2, 3],
    "e": [None, "a", "b", "c"],
    "b": [None, True, False],
    "s": [None, "x", "y", "zz"],
    "l": [None, [], ["p"], ["q", "r"]],
    "d": [None, "2025-09-01", "2025-10-03", "2025-12-31", "2026-02-01"],
    "r": [-3, 0, 4.5, 9],
}


def book(*conditions: str, steps: tuple[str, ...] = ()) -> Rulebook:
    """A small rule base: one trait per condition, then next steps, then a fallback."""
    return load_rulebook_text(book_text(*conditions, steps=steps))


def book_text(*conditions: str, steps: tuple[str, ...] = (), points: int = 5) -> str:
    def q(c: str) -> str:
        return "'" + c.replace("'", "''") + "'"
    traits = "".join(f"  - {{id: t{k}, kind: golden, points: {points}, when: {q(c)}, "
                     f"label: {{en: t, zh: t}}}}\n" for k, c in enumerate(conditions))
    step_yaml = "".join(f"  - {{id: s{k}, when: {q(c)}, label: {{en: s, zh: s}}, "
                        f"reason: {{en: r, zh: r}}}}\n" for k, c in enumerate(steps))
    return f"""
rulebook: t
version: 1
fields:{FIELDS}
qualifiers:
  q1: {{label: {{en: q, zh: q}}, when: b}}
  q2: {{label: {{en: q, zh: q}}, when: n > 5}}
traits:
{traits or '  []'}
grades:
  - {{id: A, min_score: 60, label: {{en: a, zh: a}}}}
  - {{id: B, min_score: 0, label: {{en: b, zh: b}}}}
next_steps:
{step_yaml}  - {{id: last, label: {{en: l, zh: l}}, reason: {{en: r, zh: r}}}}
"""


def fires(condition: str) -> bool | None:
    rb = book(condition)
    return satisfiable(Space(rb), [(rb.traits[0].expr, T)])


class TestNeverHolds:
    def test_contradictory_bounds(self) -> None:
        """budget > 10 and budget < 5: no number is both."""
        assert fires("n > 10 and n < 5") is False

    def test_declared_range(self) -> None:
        """A field's min and max bound it: n is 0..100."""
        assert fires("n < 0") is False
        assert fires("n > 100") is False
        assert fires("n >= 100") is True

    def test_integer_gap(self) -> None:
        """No integer lies strictly between 2 and 3; a number does."""
        assert fires("i > 2 and i < 3") is False
        assert fires("n > 2 and n < 3") is True
        assert fires("i > 2.5 and i < 3.5") is True

    def test_enum_exhausted(self) -> None:
        """Every value of the enum excluded: nothing is left."""
        assert fires('e != "a" and e not in ["b", "c"]') is False
        assert fires('e != "a" and e not in ["b"]') is True

    def test_strings_other_than_named(self) -> None:
        """A string can be a value no condition names."""
        assert fires('s != "x" and s != "y"') is True
        assert fires('s == "x" and s == "y"') is False

    def test_missing_is_unknown_not_false(self) -> None:
        """Kleene logic: a test on a missing field is unknown, so it never makes 'not' true."""
        assert fires("not known(n) and n > 1") is False
        assert fires("not known(n) and not (n > 1)") is False
        assert fires("not known(n)") is True

    def test_required_field_is_always_known(self) -> None:
        """A required field is never missing."""
        assert fires("not known(r)") is False

    def test_list_counts_are_never_negative(self) -> None:
        """count() of a list is 0 or more."""
        assert fires("count(l) < 0") is False
        assert fires("count(l) == 0") is True

    def test_derived_value_exists_with_its_field(self) -> None:
        """days_since(d) is known exactly when d is."""
        assert fires("not known(d) and days_since(d) > 3") is False
        assert fires("known(d) and days_since(d) < -3") is True

    def test_constants(self) -> None:
        """when: false never holds; when: true always does."""
        rb = book("b")
        space = Space(rb)
        last = rb.next_steps[-1].expr
        assert satisfiable(space, [(last, T)]) is True
        assert satisfiable(space, [(last, NOT_TRUE)]) is False


class TestVerdictFacts:
    def test_status_follows_the_qualifiers(self) -> None:
        """needs_discovery means some qualifier is unknown: with both known, it cannot be."""
        rb = book(steps=('status == "needs_discovery" and qualifier.q1 != "unknown" '
                         'and qualifier.q2 != "unknown"',
                         'status == "qualified" and qualifier.q1 == "unmet"',
                         'status == "disqualified"'))
        space = Space(rb)
        assert [satisfiable(space, [(s.expr, T)]) for s in rb.next_steps[:3]] == \
            [False, False, True]

    def test_grade_follows_the_score(self) -> None:
        """Grade A starts at 60: a lower score is never A."""
        rb = book("b", steps=('grade == "A" and score < 60', 'grade == "A" and score == 60'))
        space = Space(rb)
        assert satisfiable(space, [(rb.next_steps[0].expr, T)]) is False
        assert satisfiable(space, [(rb.next_steps[1].expr, T)]) is False  # max is 55
        assert space.score_range == (50, 55)
        assert space.grades == ("B",)


class TestBudget:
    def test_gives_up_without_claiming(self) -> None:
        """Over its node budget the search answers None, which never becomes a warning."""
        rb = book("n > 10 and i > 1 and e == \"a\" and s == \"x\" and b and count(l) > 3")
        assert satisfiable(Space(rb), [(rb.traits[0].expr, NOT_TRUE)], budget=1) is None
        assert witness(Space(rb), [(rb.traits[0].expr, T)], budget=1) is None


# ----------------------------------------------------------------------------- properties

OPS = ["==", "!=", "<", "<=", ">", ">="]


@st.composite
def atoms(draw: st.DrawFn, plain: bool) -> str:
    kinds = ["n", "i", "e", "b", "s", "known"] + ([] if plain else ["count", "contains", "days"])
    kind = draw(st.sampled_from(kinds))
    op = draw(st.sampled_from(OPS))
    if kind == "n":
        return f"n {op} {draw(st.sampled_from([-1, 0, 5, 5.5, 10, 100, 101]))}"
    if kind == "i":
        return f"i {op} {draw(st.sampled_from([0, 1, 2, 2.5, 3]))}"
    if kind == "e":
        values = draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True))
        neg = draw(st.booleans())
        return f"e {'not in' if neg else 'in'} [{', '.join(repr(v) for v in values)}]" \
            .replace("'", '"')
    if kind == "b":
        return draw(st.sampled_from(["b", "not b", "b == false"]))
    if kind == "s":
        return f's {draw(st.sampled_from(["==", "!="]))} "{draw(st.sampled_from("xy"))}"'
    if kind == "known":
        return f"known({draw(st.sampled_from('nieb' if plain else 'niebsld'))})"
    if kind == "count":
        return f"count(l) {op} {draw(st.sampled_from([0, 1, 2]))}"
    if kind == "contains":
        return 'contains(l, "p")'
    return f"days_since(d) {op} {draw(st.sampled_from([0, 30, 90, 91]))}"


def conditions(plain: bool) -> st.SearchStrategy[str]:
    return st.recursive(
        atoms(plain),
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
            st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
            st.builds(lambda a: f"not ({a})", inner)),
        max_leaves=5)


def holds(rb: Rulebook, expr: Expr, raw: dict[str, Any]) -> bool | None:
    """The condition's value on a lead, by the reference evaluator (tests/reference.py),
    which reads the text of the rule whose condition ``expr`` is."""
    lead = LeadReader(rb).read({"lead_id": "x", "r": 1, **raw})
    text = next(r.text for r in rb.rules if r.expr is expr)
    return evaluate(text, lead, AS_OF, schema_of(rb))


def all_leads(rb: Rulebook, expr: Expr) -> list[dict[str, Any]]:
    names = list(expr.sources())
    out = []
    for values in itertools.product(*(POOLS[n] for n in names)):
        out.append({n: v for n, v in zip(names, values, strict=True) if v is not None})
    return out


class TestProperties:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(conditions(plain=False))
    def test_never_says_impossible_when_a_lead_fires_it(self, condition: str) -> None:
        """Soundness: if the search says no lead makes it true, brute force finds none."""
        rb = book(condition)
        expr = rb.traits[0].expr
        verdict = satisfiable(Space(rb), [(expr, T)])
        if verdict is False:
            assert not any(holds(rb, expr, lead) for lead in all_leads(rb, expr))
        negated = satisfiable(Space(rb), [(expr, NOT_TRUE)])
        if negated is False:
            assert all(holds(rb, expr, lead) for lead in all_leads(rb, expr))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(conditions(plain=True))
    def test_a_found_lead_really_fires_it(self, condition: str) -> None:
        """Exactness on plain fields: a witness found is a lead that makes it true."""
        rb = book(condition)
        expr = rb.traits[0].expr
        found = witness(Space(rb), [(expr, T)])
        if found is not None:
            assert holds(rb, expr, found) is True
        else:
            assert satisfiable(Space(rb), [(expr, T)]) is False

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(conditions(plain=False), conditions(plain=False))
    def test_the_quick_region_tests_are_never_wrong(self, first: str, second: str) -> None:
        """Region's solver-free tests, which spare check a search per pair of steps: "surely
        within" and "surely apart" hold on every lead brute force tries."""
        rb = book(first, second)
        a, b = (t.expr for t in rb.traits)
        space = Space(rb)
        ra, rb_ = Region(space, a), Region(space, b)
        leads = all_leads(rb, And((a, b)))
        if ra.surely_within(rb_):
            assert all(holds(rb, b, lead) for lead in leads if holds(rb, a, lead))
        if ra.surely_apart(rb_):
            assert not any(holds(rb, a, lead) and holds(rb, b, lead) for lead in leads)


VERDICT_ATOMS = ['qualifier.q1 == "unknown"', 'qualifier.q2 != "met"', 'status == "qualified"',
                 'status == "needs_discovery"', 'grade == "A"', "trait.t0", "score > 52",
                 "b", "not b", "n > 5", "known(n)", 'e == "a"', "i <= 2"]
SMALL = {"n": [None, 0, 5, 7, 100], "i": [None, 0, 2, 3], "e": [None, "a", "c"],
         "b": [None, True, False]}


@st.composite
def step_conditions(draw: st.DrawFn) -> str:
    atoms = draw(st.lists(st.sampled_from(VERDICT_ATOMS), min_size=1, max_size=3))
    return draw(st.sampled_from([" and ", " or "])).join(atoms)


class TestFlaggedRules:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(step_conditions(), min_size=2, max_size=5))
    def test_flagged_steps_are_never_chosen(self, steps: list[str]) -> None:
        """No lead ever gets a next step that check calls shadowed or never applying."""
        text = book_text("i > 1", steps=tuple(steps), points=15)
        rb = load_rulebook_text(text)
        data, pos = load_yaml_text(text)
        flagged = {p.message.split("'")[1] for p in lint(rb, data, pos)
                   if p.code in ("shadowed-step", "never-fires")}
        names = list(SMALL)
        for values in itertools.product(*SMALL.values()):
            raw = {k: v for k, v in zip(names, values, strict=True) if v is not None}
            lead = LeadReader(rb).read({"lead_id": "x", "r": 1, **raw})
            assert reference_verdict(rb, lead, AS_OF).next_step not in flagged
