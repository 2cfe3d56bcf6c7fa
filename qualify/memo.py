"""Decision memo: reuse the engine's answer for facts that no condition can tell apart.

Every engine condition compares one fact key with a constant (``compiler.py``). Two values
of a key that fall on the same side of every constant the rules compare it with (budget
12,000 and 48,500 against ``budget >= 10000``) make every condition on that key come out the
same, so the engine's answer for one is its answer for the other. The memo

- splits the rules into *components*: rules linked by the keys they read (buying power
  reads budget and revenue, a trait reads only sentiment: two components);
- maps each fact to a *class key* per component: for each of its keys, which side of each
  constant the value lies on (or the value itself, where no cheaper class is sound);
- asks the engine only when some component's class key is new, with the whole fact as
  before, and stores each new component's share of the answer.

So every decision is still the engine's, and the memo is exact, not approximate: a class
key is only coarser than the value where the engine's comparisons cannot see the difference
(ints and floats against numeric constants: the engine compares them as numbers, 10000 ==
10000.0; strings against equality tests). Anything else (booleans, mixed types, numbers
beyond 2**53, strings under an ordering) is keyed by its exact value. Facts hold scalars
only (``FactBuilder`` turns lists and dates into numbers), so every value can be a key.
The property test in tests/test_memo.py checks memo and engine agree on random rules and
leads, and the reference agreement test runs with the memo on.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from qualify.adapter import MARK, Condition, keys_of
from qualify.kept import Kept

Match = Callable[[Mapping[str, Any]], AbstractSet[str]]

_ABSENT: Hashable = ()  # the class of a missing key (no value class is an empty tuple)
_EQUALITY = frozenset({"==", "$neq"})
_EXACT_LIMIT = 2**53  # beyond this, numbers may not compare in the engine as in Python
WHOLES = 8192  # whole class-key tuples kept (then they start over): about 2 KB each


def _atoms(cond: Condition, out: dict[str, list[tuple[str, Any]]]) -> None:
    """Collect (operator, constant) per key; presence tests add the key with no constant."""
    ((op, body),) = cond.items()
    if op in ("$and", "$or"):
        for c in body:
            _atoms(c, out)
    elif op in ("$ex", "$nex"):
        for k in body:
            out.setdefault(k, [])
    elif op.startswith("$"):
        for k, v in body.items():
            out.setdefault(k, []).append((op, v))
    else:
        out.setdefault(op, []).append(("==", body))


def _class_expr(i: int, tests: list[tuple[str, Any]], env: dict[str, Any]) -> str:
    """Python source for the class of value ``v`` of one key (``env`` gets its constants).

    Numbers against numeric constants: ``bisect_left + bisect_right`` over the sorted
    constants, an int that is even between constants and odd on one. Strings against
    equality tests: the string if some rule names it, else None. Otherwise the exact value
    (with its type, so True and 1 stay apart).
    """
    constants = [c for _, c in tests]
    exact = "(v if type(v) is bool else (type(v), v))"
    if constants and all(type(c) in (int, float) for c in constants):
        env[f"B{i}"] = sorted(set(constants))
        return (f"(_bl(B{i}, v) + _br(B{i}, v) if (type(v) is int or type(v) is float) "
                f"and -{_EXACT_LIMIT} <= v <= {_EXACT_LIMIT} else {exact})")
    if all(type(c) is str for c in constants) and {op for op, _ in tests} <= _EQUALITY:
        env[f"W{i}"] = frozenset(constants)
        return f"((v if v in W{i} else None) if type(v) is str else {exact})"
    return exact


class _Component:
    __slots__ = ("keys", "names", "table")

    def __init__(self, keys: tuple[str, ...], names: frozenset[str]) -> None:
        self.keys = keys
        self.names = names
        self.table: dict[Hashable, frozenset[str]] = {}


def components(rules: Mapping[str, Condition]) -> list[_Component]:
    """Rules linked by the keys they read (union-find); rules reading no key form one."""
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    rule_keys = {name: sorted(keys_of(c) - {MARK}) for name, c in rules.items()}
    for ks in rule_keys.values():
        for k in ks:
            parent[root(k)] = root(ks[0])
    groups: dict[str, tuple[list[str], set[str]]] = {}
    for name, ks in rule_keys.items():
        groups.setdefault(root(ks[0]) if ks else "", ([], set()))[1].add(name)
    for k in sorted(parent):
        groups[root(k)][0].append(k)
    return [_Component(tuple(ks), frozenset(names)) for ks, names in groups.values()]


class Memo:
    """``match`` with the memo in front: same answers, fewer engine calls.

    The class keys are computed by one generated function (about 0.3 µs a key, where a
    call per key cost 1 µs). A fact whose class keys were all met together before is
    answered by one lookup of the whole tuple, while such repeats pay (``Kept``: on
    generated leads, 3 % of stage 1's whole tuples came again, and keeping them cost 4.4 µs
    a lead in a batch worker). Safe to share between threads: dict reads and writes are
    atomic. ``size`` bounds the entries per component (a full one stops learning);
    ``WHOLES`` the whole tuples kept.
    """

    def __init__(self, rules: Mapping[str, Condition], match: Match,
                 size: int = 20_000) -> None:
        self._match = match
        self.size = size
        self._answers: dict[frozenset[str], frozenset[str]] = {}  # one object per answer
        self._wholes: Kept[frozenset[str]] = Kept(WHOLES)  # answers by all class keys
        self._whole_answers: dict[frozenset[str], frozenset[str]] = {}  # one object each
        self.hits = self.misses = 0
        tests: dict[str, list[tuple[str, Any]]] = {}
        for cond in rules.values():
            _atoms(cond, tests)
        self.components = components(rules)
        env: dict[str, Any] = {"_bl": bisect.bisect_left, "_br": bisect.bisect_right,
                               "_A": _ABSENT}
        lines = ["def classes(fact):", "    get = fact.get"]
        n = 0
        for j, comp in enumerate(self.components):
            parts = []
            for k in comp.keys:
                lines += [f"    v = get({k!r}, _A)",
                          f"    c{n} = _A if v is _A else {_class_expr(n, tests[k], env)}"]
                parts.append(f"c{n}, ")
                n += 1
            lines.append(f"    k{j} = ({''.join(parts)})")
        lines.append(f"    return ({''.join(f'k{j}, ' for j in range(len(self.components)))})")
        exec("\n".join(lines), env)  # the source is built above from the rules alone
        self._classes: Callable[[Mapping[str, Any]], tuple[Hashable, ...]] = env["classes"]

    def match(self, fact: Mapping[str, Any]) -> AbstractSet[str]:
        """The names of the conditions ``fact`` meets. While whole tuples are kept, facts
        alike in every component get the same set object (callers may key their own memos
        by it; equal sets are equal keys anyway)."""
        keys = self._classes(fact)
        whole = self._wholes.get(keys)
        if whole is not None:
            self.hits += 1
            return whole
        hits = [comp.table.get(key) for comp, key in zip(self.components, keys, strict=True)]
        if None not in hits:
            self.hits += 1
            fired = frozenset().union(*hits)  # type: ignore[arg-type]
            if self._wholes.keeping:
                if len(self._whole_answers) >= WHOLES:
                    self._whole_answers.clear()
                fired = self._wholes.keep(keys, self._whole_answers.setdefault(fired, fired))
            return fired
        missed = [(comp, key) for comp, key, hit in zip(self.components, keys, hits,
                                                         strict=True) if hit is None]
        fired = frozenset().union(*(h for h in hits if h is not None))
        self.misses += 1
        answer = self._match(fact)
        for comp, key in missed:
            mine = frozenset(answer & comp.names)
            if len(comp.table) < self.size:  # a component has few answers: share them
                comp.table[key] = self._answers.setdefault(mine, mine)
            fired |= mine
        return fired
