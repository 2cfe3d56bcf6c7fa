"""The durable-rules engine agrees with the plain reference evaluator on random rule bases."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualify import (
    Engine,
    LeadError,
    RulebaseError,
    load_rulebook,
    load_rulebook_text,
    synthetic,
)
from qualify.rulebook import Rulebook
from tests import reference
from tests.conftest import AS_OF, ROOT
from tests.reference import AllOf, AnyOf, Call, Chain, ListOf, Lit, Name, Node, Not


def _is_rulebook(path: Path) -> bool:
    return re.search(r"^rulebook:", path.read_text(encoding="utf-8"), re.MULTILINE) is not None

NUMS = [-5, 0, 2.5, 10, 100, 0.00001]
INTS = [0, 1, 3, 10]
ENUM1 = ["a", "b", "c"]
TEXTS = ["foo", "bar", "北京", "Zoë", "f"]
ITEMS = ["p", "q", "r", "P"]
DATES = ["2025-09-01", "2025-12-01", "2025-12-31", "2026-01-01"]
OPS = ["==", "!=", "<", "<=", ">", ">="]

FIELDS_YAML = """
fields:
  n1: {type: number}
  n2: {type: integer}
  e1: {type: enum, values: [a, b, c]}
  b1: {type: boolean}
  b2: {type: boolean}
  s1: {type: string}
  l1: {type: list}
  d1: {type: date}
"""


def _lit(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v)


@st.composite
def atoms(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 19))
    op = draw(st.sampled_from(OPS))
    if kind >= 14:
        return draw(turned_and_chained(op))
    if kind == 0:
        return f"n1 {op} {_lit(draw(st.sampled_from(NUMS)))}"
    if kind == 1:
        return f"{_lit(draw(st.sampled_from(NUMS)))} {op} n1"
    if kind == 2:
        return f"n2 {op} {draw(st.sampled_from(INTS))}"
    if kind == 3:
        return f'e1 {draw(st.sampled_from(["==", "!="]))} "{draw(st.sampled_from(ENUM1))}"'
    if kind == 4:
        vals = draw(st.lists(st.sampled_from(ENUM1), min_size=1, max_size=2))
        neg = draw(st.booleans())
        return f"e1 {'not in' if neg else 'in'} [{', '.join(_lit(v) for v in vals)}]"
    if kind == 5:
        return draw(st.sampled_from(["b1", "not b2", "b1 == false", "b2 != true"]))
    if kind == 6:
        return f's1 {draw(st.sampled_from(["==", "!="]))} "{draw(st.sampled_from(TEXTS))}"'
    if kind == 7:
        return f"known({draw(st.sampled_from(['n1', 'e1', 'b1', 's1', 'l1', 'd1']))})"
    if kind == 8:
        return f'contains(l1, "{draw(st.sampled_from(ITEMS))}")'
    if kind == 9:
        return f"count(l1) {op} {draw(st.sampled_from(INTS))}"
    if kind == 10:
        return f"days_since(d1) {op} {draw(st.sampled_from([0, 1, 31, 100]))}"
    if kind == 11:
        return f'd1 {op} "{draw(st.sampled_from(DATES))}"'
    if kind == 12:
        return f'matches(s1, "{draw(st.sampled_from(["^f", "o$", "京", "[A-Z]"]))}")'
    return draw(st.sampled_from(["true", "false", "s1 in [\"foo\", \"北京\"]"]))


# a literal on the left of each kind of value: (the literals, the value)
TURNED: list[tuple[list[Any], str]] = [
    (INTS, "n2"), ([0, 1, 31, 100], "days_since(d1)"), (DATES, "d1"), (INTS, "count(l1)")]


@st.composite
def turned_and_chained(draw: st.DrawFn, op: str) -> str:
    """Literal-left comparisons of every kind of value, chains, and 'in' beyond enums: the
    forms a parser turns round or splits, where its slips hide."""
    kind = draw(st.integers(0, len(TURNED) + 1))
    if kind < len(TURNED):
        pool, value = TURNED[kind]
        return f"{_lit(draw(st.sampled_from(pool)))} {op} {value}"
    if kind == len(TURNED):
        low, high = sorted(draw(st.lists(st.sampled_from(NUMS), min_size=2, max_size=2)))
        return f"{_lit(low)} {op} n1 {draw(st.sampled_from(OPS))} {_lit(high)}"
    choices: list[tuple[str, list[Any]]] = [("n1", NUMS), ("n2", INTS), ("d1", DATES),
                                            ("b1", [True, False])]
    field, pool = draw(st.sampled_from(choices))
    values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    word = draw(st.sampled_from(["in", "not in"]))
    return f"{field} {word} [{', '.join(_lit(v) for v in values)}]"


def conditions(extra: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    leaf = atoms() if extra is None else st.one_of(atoms(), extra)

    def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            children.map(lambda c: f"not ({c})"),
            st.lists(children, min_size=2, max_size=3).map(lambda cs: " and ".join(
                f"({c})" for c in cs)),
            st.lists(children, min_size=2, max_size=3).map(lambda cs: " or ".join(
                f"({c})" for c in cs)),
        )
    return st.recursive(leaf, combine, max_leaves=5)


VERDICT_ATOMS = st.sampled_from([
    'qualifier.q0 == "unknown"', 'qualifier.q0 != "met"', "trait.t0", "not trait.t1",
    'grade == "A"', 'grade in ["B", "C"]', 'status == "qualified"',
    'status != "disqualified"', "score >= 60", "score < 40",
    '"unknown" == qualifier.q0', "60 <= score", '"A" != grade', "40 < score <= 80",
    'qualifier.q0 not in ["unmet"]', "trait.t0 == false", "score in [50, 60]",
])


@st.composite
def rulebooks(draw: st.DrawFn) -> str:
    n_q = draw(st.integers(1, 3))
    n_t = draw(st.integers(2, 8))
    n_s = draw(st.integers(1, 4))
    lines = ["rulebook: random", "version: 1", "score: {base: 50, min: 0, max: 100}",
             FIELDS_YAML, "qualifiers:"]
    for i in range(n_q):
        when = _yaml(draw(conditions()))
        lines.append(f"  q{i}: {{label: {{en: q{i}, zh: q{i}}}, when: {when}}}")
    lines.append("traits:")
    for i in range(n_t):
        golden = draw(st.booleans())
        points = draw(st.integers(1, 40)) * (1 if golden else -1)
        lines.append(f"  - {{id: t{i}, kind: {'golden' if golden else 'bad'}, points: {points},"
                     f" when: {_yaml(draw(conditions()))}, label: {{en: t{i}, zh: t{i}}}}}")
    lines.append("grades: [{id: A, min_score: 80}, {id: B, min_score: 60}, "
                 "{id: C, min_score: 40}, {id: D, min_score: 0}]")
    lines.append("next_steps:")
    for i in range(n_s):
        lines.append(f"  - {{id: s{i}, when: {_yaml(draw(conditions(VERDICT_ATOMS)))}, "
                     f"label: {{en: s{i}, zh: s{i}}}, reason: {{en: r, zh: r}}}}")
    lines.append("  - {id: fallback, label: {en: f, zh: f}, reason: {en: r, zh: r}}")
    return "\n".join(lines) + "\n"


def _yaml(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _maybe(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> Any:
    return draw(st.one_of(st.none(), values))


@st.composite
def leads(draw: st.DrawFn) -> dict[str, Any]:
    lead = {
        "lead_id": "x",
        "n1": _maybe(draw, st.sampled_from([*NUMS, -6, 10.5, 99.99, "100", "2.5"])),
        "n2": _maybe(draw, st.sampled_from([*INTS, 2, 11, "3"])),
        "e1": _maybe(draw, st.sampled_from([*ENUM1, "A"])),
        "b1": _maybe(draw, st.sampled_from([True, False, "yes", "no"])),
        "b2": _maybe(draw, st.booleans()),
        "s1": _maybe(draw, st.sampled_from([*TEXTS, "Foo", "zz"])),
        "l1": _maybe(draw, st.lists(st.sampled_from(ITEMS), max_size=3)),
        "d1": _maybe(draw, st.sampled_from([*DATES, "2025-10-02", "2026-02-01"])),
    }
    return {k: v for k, v in lead.items() if v is not None}


def one_qualifier(when: str) -> Rulebook:
    """A rule base of the fields above with one qualifier, ``when``, and nothing else."""
    return load_rulebook_text(f"rulebook: r\nversion: 1\n{FIELDS_YAML}"
                              f"qualifiers: {{q: {{label: {{en: q}}, when: {_yaml(when)}}}}}\n"
                              "grades: [{id: A, min_score: 0}]\n"
                              "next_steps: [{id: s, label: {en: s}, reason: {en: r}}]\n")


def assert_same_verdict(engine: Engine, raw: dict[str, Any], context: str = "") -> None:
    """The engine's verdict on ``raw`` says what the reference computes from the rules' text."""
    expected = reference.reference_verdict(engine.rulebook, engine.reader.read(raw), AS_OF)
    v = engine.score(raw, as_of=AS_OF)
    assert expected.qualifiers == {k: q["state"] for k, q in v.qualifiers.items()}, context
    assert expected.fired == [t["id"] for t in v.traits], context
    assert sorted(expected.unknown) == sorted(u["id"] for u in v.unknown), context
    assert (expected.status, expected.score, expected.grade) == (v.status, v.score, v.grade)
    assert expected.next_step == v.next_step["id"], context


class TestEngineMatchesReference:
    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(text=rulebooks(), lead_list=st.lists(leads(), min_size=1, max_size=12))
    def test_fired_rules_unknowns_and_steps_agree(self, text: str,
                                                  lead_list: list[dict[str, Any]]) -> None:
        """On random rule bases and leads, durable-rules decides exactly as the reference."""
        rb = load_rulebook_text(text)
        with Engine(rb) as engine:
            for raw in lead_list:
                assert_same_verdict(engine, raw, text)

    def test_bad_leads_are_errors_not_crashes(self) -> None:
        """A lead that does not convert is a LeadError naming the field."""
        rb = one_qualifier("n1 > 0")
        with Engine(rb) as engine:
            for bad, field in [({"lead_id": "x", "n1": "lots"}, "n1"),
                               ({"lead_id": "x", "d1": "yesterday"}, "d1"),
                               ({"lead_id": "x", "l1": {"a": 1}}, "l1")]:
                try:
                    engine.score(bad, as_of=AS_OF)
                except LeadError as e:
                    assert e.field == field
                else:  # pragma: no cover
                    raise AssertionError(f"{bad} was accepted")

    def test_the_default_rule_base_on_generated_leads(self, engine: Engine) -> None:
        """On 300 generated CRM-like leads, the default rule base decides as the reference."""
        for raw in synthetic.generate(300, seed=16):
            assert_same_verdict(engine, raw, str(raw))


SHIPPED = sorted({*ROOT.glob("rules/*.yaml"), *ROOT.glob("examples/**/*.yaml")}
                 - {ROOT / "examples/broken_rules.yaml"})


class TestTheReferenceStandsAlone:
    def test_it_imports_nothing_of_the_parser(self) -> None:
        """From qualify, tests/reference.py imports only the Rulebook type (for hints): no
        parser, compiler or pattern module, so it reads conditions its own way."""
        tree = ast.parse(Path(reference.__file__).read_text(encoding="utf-8"))
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert {m for m in modules if m and m.split(".")[0] == "qualify"} == {"qualify.rulebook"}

    @pytest.mark.parametrize("path", [p for p in SHIPPED if _is_rulebook(p)],
                             ids=lambda p: str(p.relative_to(ROOT)))
    def test_it_reads_every_shipped_rule_base(self, path: Path) -> None:
        """Every condition of the rule bases in rules/ and examples/ parses and type-checks
        with the reference (on an empty lead every test is evaluated, none cut short)."""
        rb = load_rulebook(path)
        verdict = {"status": "qualified", "grade": rb.grades[0].id, "score": 50,
                   **{f"qualifier.{q.id}": "met" for q in rb.qualifiers},
                   **{f"trait.{t.id}": False for t in rb.traits}}
        for rule in rb.rules:
            reference.evaluate(rule.text, {}, AS_OF, reference.schema_of(rb), verdict)

    @pytest.mark.parametrize(("text", "tree"), [
        ("5 < n", Chain((Lit(5), Name("n")), ("<",))),
        ("1 < n <= -3", Chain((Lit(1), Name("n"), Lit(-3)), ("<", "<="))),
        ("a or b and not c", AnyOf((Name("a"), AllOf((Name("b"), Not(Name("c"))))))),
        ("not n > 5", Not(Chain((Name("n"), Lit(5)), (">",)))),
        ("(a or b) and c", AllOf((AnyOf((Name("a"), Name("b"))), Name("c")))),
        ('e not in ["a", 2.5e1]', Chain((Name("e"), ListOf((Lit("a"), Lit(25.0)))),
                                        ("not in",))),
        ('matches(s, "[.]\\d")', Call("matches", (Name("s"), Lit("[.]\\d")))),
        ("trait.t0 and true", AllOf((Name("trait.t0"), Lit(True)))),
    ])
    def test_its_reading_of_the_text(self, text: str, tree: Node) -> None:
        """Python's precedence: or < and < not < comparisons; chains keep every operand;
        a literal on the left stays on the left (the evaluator needs no flip table)."""
        assert tree == reference.parse(text)

    @pytest.mark.parametrize("text", ["n >", "n = 5", "(n > 5", "n > 5)", "n > 5 5",
                                      "not", "n > -x", "a and or b", 'e in ["a",, "b"]'])
    def test_it_refuses_what_is_not_the_language(self, text: str) -> None:
        """Text outside the grammar is a LanguageError, never a guess."""
        with pytest.raises(reference.LanguageError):
            reference.parse(text)


class TestOnceDisagreements:
    """Where the independent reference and qualify once parted ways (qualify bugs, fixed)."""

    def test_a_regex_escape_means_itself_whatever_the_warning_filters(self) -> None:
        """``matches(s, "^\\d+$")`` (the README names \\d) loads under this suite's
        ``filterwarnings = error`` and decides as the reference: an invalid Python escape is
        kept as written, not left to Python's warning settings."""
        with Engine(one_qualifier(r'matches(s1, "^\d+$")')) as engine:
            for value in ("42", "4a", None):
                assert_same_verdict(engine, {"lead_id": "x"} | ({"s1": value} if value else {}))

    def test_a_lone_surrogate_escape_is_refused_where_it_is_written(self) -> None:
        """``"\\ud800"`` makes half a character, which durable-rules refuses when the engine
        starts: the checker refuses it, located, so ``rules check`` says so first."""
        with pytest.raises(RulebaseError) as e:
            one_qualifier(r's1 != "\ud800"')
        problem = e.value.problems[0]
        assert problem.code == "bad-value" and "half of a character" in problem.message
        assert problem.line > 0 and problem.hint
