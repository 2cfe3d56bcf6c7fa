"""The one module that talks to durable-rules. Nothing else imports it.

It follows the direct, stateless pattern of the durable-rules field notes (not ``Host``):
one ruleset per shard of at most ``MAX_PATHS`` match paths; each lead asserted alone into a
session, its fires drained, and retracted (sessions are pooled: creating one is the engine's
largest cost); a sentinel rule so every fact is handled and every session starts an
action. Every engine error becomes our ``EngineError``, with the engine's own text kept out
of the message.

Pitfalls handled here (each has a regression test in tests/test_adapter.py):
- string vs number comparisons go wrong silently: values arrive typed (leads.py, conditions.py);
- floats written with an exponent (1e-05) make the engine reject the fact or ruleset (204):
  ``encode`` writes every float in plain decimal;
- non-ASCII text must be written raw (not \\u escapes) in both rules and facts, or it never
  matches: ``encode`` keeps UTF-8;
- ``$or`` fires once per true branch: fired names are collected in a set;
- more than 64 conditions matching at once fails with error 303, and more than 512 distinct
  conditions under one node hang ``create_ruleset``: rules are sharded by path count;
- conditions made only of ``$nex`` match the engine's own state fact: the compiler guards
  them with ``{"$ex": {"__lead": 1}}``;
- ``delete_state`` on a session that never started an action frees garbage: the sentinel rule
  guarantees an action, and after an error a ping fact starts one before the delete;
- at most 1024 live sessions per ruleset: one session per call in flight, returned empty to
  a pool; a session is deleted after ``ROTATE`` facts (32-bit fact hashes, pitfall 9);
- ``Host`` timer threads run actions on other threads: ``Host`` is never used.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from json.encoder import encode_basestring as _string  # raw UTF-8, C speed
from typing import Any

import durable_rules_engine as _E

from qualify.errors import EngineClosedError, EngineError

log = logging.getLogger(__name__)

MAX_PATHS = 60  # per ruleset; the engine fails when more than 64 conditions match at once
MAX_ATOMS = 400  # distinct conditions per ruleset; over 512 under one node hangs the engine
MAX_KEYS = 240  # values in one fact; the engine rejects facts over about 250 (error 302)
SENTINEL = "__seen"
MARK = "__lead"

Condition = dict[str, Any]
_names = itertools.count()


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise EngineError("non-finite number")
    text = repr(value)
    if "e" in text or "E" in text:  # the engine's parser rejects exponents (error 204)
        text = format(Decimal(text), "f")
    return text


def encode_value(value: Any) -> str:
    """A value as the engine's JSON parser reads it correctly (no exponents, raw UTF-8)."""
    t = type(value)
    if t is str:
        return _string(value)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return _float(value)
    if t is list:
        return "[" + ",".join(encode_value(v) for v in value) + "]"
    if t is dict:
        return encode(value)
    raise EngineError(f"cannot send a {t.__name__} to the engine")


_keys: dict[str, str] = {}


def _key(name: str) -> str:
    """'"name":', cached: fact keys come from the rule base, a small fixed set."""
    text = _keys.get(name)
    if text is None:
        text = _string(name) + ":"
        if len(_keys) < 100_000:
            _keys[name] = text
    return text


def encode(obj: Mapping[str, Any]) -> str:
    """A JSON object with every value written by ``encode_value``."""
    return "{" + ",".join(_key(k) + encode_value(v) for k, v in obj.items()) + "}"


def paths(cond: Condition) -> int:
    """How many match paths (DNF terms) a condition expands to in the engine."""
    ((op, body),) = cond.items()
    if op == "$or":
        return sum(paths(c) for c in body)
    if op == "$and":
        return math.prod(paths(c) for c in body)
    return 1


def atoms(cond: Condition) -> set[str]:
    """The distinct leaf conditions in a condition."""
    ((op, body),) = cond.items()
    if op in ("$or", "$and"):
        out: set[str] = set()
        for c in body:
            out |= atoms(c)
        return out
    return {encode(cond)}


class _Session:
    """A session (sid) lent to one call at a time; ``uses`` counts the facts it has seen."""

    __slots__ = ("sid", "uses")

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.uses = 0


class _Ruleset:
    """One durable-rules ruleset, used statelessly: each fact is asserted into a session
    that holds nothing else, its fires collected, and the fact retracted.

    Creating a session costs the engine a large memset (about 40 % of a lead's matching), so
    sessions are pooled: a call borrows an idle one (or starts one), and gives it back empty.
    A session that saw ``ROTATE`` facts is deleted (facts are told apart by 32-bit hashes,
    pitfall 9); one that saw an engine error is pinged and deleted (pitfall 3).
    """

    ROTATE = 10_000

    def __init__(self, rules: Mapping[str, Condition], tag: str) -> None:
        defs: dict[str, Any] = {name: {"all": [{"m": cond}]} for name, cond in rules.items()}
        defs[SENTINEL] = {"all": [{"m": {"$ex": {MARK: 1}}}]}
        self.name = f"qualify_{tag}_{next(_names)}"
        try:
            self.handle = _E.create_ruleset(self.name, encode(defs))
        except Exception as e:  # the engine's error codes are not for users
            log.error("durable-rules rejected ruleset %s: %s", self.name, e)
            raise EngineError("the rule engine rejected the compiled rules") from None
        self._sids = itertools.count()
        self._idle: deque[_Session] = deque()  # append/pop are atomic: no lock needed

    def _drain(self, state: int, fired: set[str] | None) -> None:
        result = _E.start_action_for_state(self.handle, state)
        message = result[1] if result else None
        while message:  # '{"<rule>":{"m":{...}}}'
            if fired is not None:
                fired.add(message[2:message.index('"', 2)])
            message = _E.complete_and_start_action(self.handle, state)

    def match(self, body: str, fired: set[str]) -> None:
        """Assert one fact (``body`` is its JSON after the opening brace) and collect fires."""
        try:
            session = self._idle.pop()
        except IndexError:
            session = _Session(f"s{next(self._sids)}")
        text = f'{{"sid":"{session.sid}",{body}'
        try:
            _, state = _E.assert_fact(self.handle, text)
            self._drain(state, fired)
            _, state = _E.retract_fact(self.handle, text)
            self._drain(state, None)
        except Exception as e:
            self._discard(session)
            log.debug("durable-rules failed on a fact in %s: %s", self.name, e)
            raise EngineError("the rule engine could not evaluate this lead") from None
        except BaseException:  # interrupted mid-call: the session may hold the fact
            self._discard(session)
            raise
        session.uses += 1
        if session.uses >= self.ROTATE:
            self._delete(session.sid)
        else:
            self._idle.append(session)

    def _discard(self, session: _Session) -> None:
        # Start an action in the session so delete_state frees initialised memory.
        try:
            _, state = _E.assert_fact(self.handle, f'{{"sid":"{session.sid}","{MARK}":1,'
                                                   f'"__ping":{next(self._sids)}}}')
            self._drain(state, None)
        except Exception as e:  # pragma: no cover - the ping fact always matches
            log.error("durable-rules ping failed in %s: %s", self.name, e)
        self._delete(session.sid)

    def _delete(self, sid: str) -> None:
        try:
            _E.delete_state(self.handle, sid)
        except Exception as e:  # pragma: no cover - only if the engine is broken
            log.error("durable-rules could not delete state %s: %s", sid, e)

    def close(self) -> None:
        """Delete idle sessions, then the ruleset. Only when no call is in flight."""
        while self._idle:
            self._delete(self._idle.pop().sid)
        _E.delete_ruleset(self.handle)


class Matcher:
    """A set of named conditions, sharded over rulesets, matched against flat facts.

    ``match`` is safe to call from several threads. ``close`` waits for calls in flight,
    then frees the engine's memory; later calls raise ``EngineClosedError``.
    """

    def __init__(self, rules: Mapping[str, Condition], tag: str) -> None:
        for name in rules:
            if not name or '"' in name or "\\" in name or name.startswith("__"):
                raise EngineError(f"bad rule name {name!r}")
        self.shards: list[_Ruleset] = []
        self._lock = threading.Condition()
        self._inflight = 0
        self._closed = False
        # Facts carry short keys ("k3") for the keys some rule reads, and nothing else: the
        # engine parses every fact and writes it back into every fired rule's message.
        keys = sorted({k for cond in rules.values() for k in keys_of(cond)} - {MARK})
        self._alias = {k: f'"k{i}":' for i, k in enumerate(keys)}
        short = {k: f"k{i}" for i, k in enumerate(keys)}
        try:
            for group in shard({n: _rename(c, short) for n, c in rules.items()}):
                self.shards.append(_Ruleset(group, tag))
        except BaseException:
            self.close()
            raise

    def match(self, fact: Mapping[str, Any]) -> set[str]:
        """The names of the conditions that match ``fact`` (a flat dict of typed scalars)."""
        alias = self._alias
        parts = [f'"{MARK}":1']
        for k, v in fact.items():
            a = alias.get(k)
            if a is not None:
                parts.append(a + encode_value(v))
        body = ",".join(parts) + "}"
        fired: set[str] = set()
        with self._lock:
            if self._closed:
                raise EngineClosedError("the engine was closed")
            self._inflight += 1
        try:
            for s in self.shards:
                s.match(body, fired)
        finally:
            with self._lock:
                self._inflight -= 1
                if self._inflight == 0:
                    self._lock.notify_all()
        fired.discard(SENTINEL)
        return fired

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.wait_for(lambda: self._inflight == 0)
            shards, self.shards = self.shards, []
        for s in shards:
            s.close()


def keys_of(cond: Condition) -> set[str]:
    """The fact keys a condition reads."""
    ((op, body),) = cond.items()
    if op in ("$and", "$or"):
        return set().union(*(keys_of(c) for c in body))
    if op.startswith("$"):
        return set(body)
    return {op}


def _rename(cond: Condition, short: Mapping[str, str]) -> Condition:
    """The condition reading ``short[key]`` for every key (MARK stays as it is)."""
    ((op, body),) = cond.items()
    if op in ("$and", "$or"):
        return {op: [_rename(c, short) for c in body]}
    if op.startswith("$"):
        return {op: {short.get(k, k): v for k, v in body.items()}}
    return {short.get(op, op): body}


def shard(rules: Mapping[str, Condition]) -> Iterable[dict[str, Condition]]:
    """Pack rules into groups within the engine's limits (the sentinel takes one path)."""
    group: dict[str, Condition] = {}
    n_paths, n_atoms = 1, set[str]()
    for name, cond in rules.items():
        p, a = paths(cond), atoms(cond)
        if p + 1 > MAX_PATHS or len(a) > MAX_ATOMS:
            raise EngineError(f"rule {name} expands to {p} engine paths (at most "
                              f"{MAX_PATHS - 1})")
        if group and (n_paths + p > MAX_PATHS or len(n_atoms | a) > MAX_ATOMS):
            yield group
            group, n_paths, n_atoms = {}, 1, set()
        group[name] = cond
        n_paths += p
        n_atoms |= a
    if group or not rules:
        yield group
