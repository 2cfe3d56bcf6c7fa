"""The language pinned as text, reviewed as diffs (as ansible-rulebook keeps rules -> ASTs):
every condition of ``cases.yaml`` and of the default rule base as the parser reads it
(``trees.txt``), and both rule bases as the compiler hands them to durable-rules
(``rulesets.json``).

An intended change: ``QUALIFY_REGEN_GOLDEN=1 pytest tests/language`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qualify import load_rulebook
from qualify.compiler import compile_rulebook
from qualify.conditions import And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import Rulebook, default_rules_path
from tests.language.test_cases import RULEBOOK

HERE = Path(__file__).parent
REGEN = os.environ.get("QUALIFY_REGEN_GOLDEN") == "1"


def tree(expr: Expr) -> str:
    """A condition tree as an S-expression: ``(and (> n 5) (not b))``."""
    if isinstance(expr, Const):
        return "true" if expr.value else "false"
    if isinstance(expr, Cmp):
        return f"({expr.op} {_ref(expr.ref)} {json.dumps(expr.value)})"
    if isinstance(expr, In):
        values = " ".join(json.dumps(v) for v in expr.values)
        return f"({'not-in' if expr.negated else 'in'} {_ref(expr.ref)} [{values}])"
    if isinstance(expr, Known):
        return f"(known {_ref(expr.ref)})"
    if isinstance(expr, Not):
        return f"(not {tree(expr.item)})"
    if isinstance(expr, And | Or):
        word = "and" if isinstance(expr, And) else "or"
        return f"({word} {' '.join(tree(i) for i in expr.items)})"
    raise AssertionError(type(expr).__name__)


def _ref(ref: Ref) -> str:
    return f"{ref.kind}:{ref.key}"


def _check(path: Path, actual: str) -> None:
    if REGEN:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path.name} missing: run with QUALIFY_REGEN_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    if expected != actual:  # the first differing line, not a wall of text
        for want, got in zip(expected.splitlines(), actual.splitlines(), strict=False):
            assert got == want, f"{path.name} changed (regenerate and review the diff)"
    assert expected == actual


def _trees(rb: Rulebook) -> list[str]:
    return [f"{r.section} {r.id}: {r.text}\n  {tree(r.expr)}" for r in rb.rules]


def test_the_parser_reads_each_condition_as_pinned() -> None:
    """Literal-left comparisons are turned round, chains become 'and', dates ordinals."""
    lines = [*_trees(RULEBOOK), *_trees(load_rulebook(default_rules_path()))]
    _check(HERE / "trees.txt", "\n".join(lines) + "\n")


def test_the_compiler_hands_durable_rules_these_conditions() -> None:
    """Stage 1 (a + and a - condition per qualifier and trait) and stage 2 (next steps)."""
    def rulesets(rb: Rulebook) -> dict[str, Any]:
        c = compile_rulebook(rb)
        return {"stage1": c.stage1, "stage2": c.stage2}

    doc = {"language": rulesets(RULEBOOK),
           "default": rulesets(load_rulebook(default_rules_path()))}
    _check(HERE / "rulesets.json",
           json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
