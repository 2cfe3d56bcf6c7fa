"""Regression tests: one per durable-rules pitfall in the field notes, through our adapter."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest

from qualify import Engine, EngineClosedError, EngineError, load_rulebook_text
from qualify.adapter import MAX_PATHS, Matcher, _Ruleset, encode, encode_value, shard
from qualify.compiler import compile_expr, guarded
from qualify.conditions import FieldInfo, parse_condition

ROOT = Path(__file__).resolve().parent.parent


def _cond(text: str, fields: dict[str, FieldInfo], positive: bool = True) -> dict:
    expr = parse_condition(text, fields)
    cond = compile_expr(expr, positive)  # type: ignore[arg-type]
    assert cond is not None
    return guarded(cond)


class TestOneAdapter:
    def test_only_the_adapter_imports_durable_rules(self) -> None:
        """No module but qualify/adapter.py imports durable or durable_rules_engine."""
        offenders = []
        for path in [*ROOT.glob("qualify/**/*.py"), *ROOT.glob("service/**/*.py")]:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in ("durable", "durable_rules_engine") for n in names):
                    offenders.append(str(path.relative_to(ROOT)))
        assert offenders == ["qualify/adapter.py"]

    def test_host_is_never_used(self) -> None:
        """The Host API (timer threads, pitfall 7) is not imported anywhere."""
        source = (ROOT / "qualify" / "adapter.py").read_text(encoding="utf-8")
        assert "Host" not in source.replace("``Host``", "").replace("not ``Host``", "")


class TestTypes:
    def test_string_never_meets_a_number(self) -> None:
        """"1" == 18 matches in durable-rules; typed values make it impossible to write."""
        fields = {"age": FieldInfo("number")}
        assert parse_condition('age == "18"', fields).code == "type-mismatch"  # type: ignore[union-attr]
        rb = load_rulebook_text(_RB.format(when="age > 18"))
        with Engine(rb) as engine:
            assert engine.score({"lead_id": "x", "age": "100"}).qualifiers["q"]["state"] == "met"
            assert engine.score({"lead_id": "x", "age": "9"}).qualifiers["q"]["state"] == "unmet"

    def test_floats_are_written_without_exponents(self) -> None:
        """1e-05 and 1e+16 make durable-rules reject a fact (error 204): we write decimals."""
        assert encode_value(1e-05) == "0.00001"
        assert encode_value(1.5e16) == "15000000000000000"
        assert "e" not in encode({"x": 2.5e-10, "y": -3e-07})
        rb = load_rulebook_text(_RB.format(when="age > 0.00001"))
        with Engine(rb) as engine:
            assert engine.score({"lead_id": "x", "age": 1e-05}).qualifiers["q"]["state"] == "unmet"
            assert engine.score({"lead_id": "x", "age": 2e-05}).qualifiers["q"]["state"] == "met"

    def test_non_ascii_text_matches(self) -> None:
        """Escaped (\\u) text never equals raw UTF-8 in the engine: both sides are raw."""
        assert encode_value("北京") == '"北京"'
        rb = load_rulebook_text(_RB.format(when='city == "北京" or city == "Zoë 🔥"'))
        with Engine(rb) as engine:
            for city in ("北京", "Zoë 🔥"):
                assert _state(engine, {"city": city}) == "met"
            assert _state(engine, {"city": "上海"}) == "unmet"

    def test_control_characters_and_quotes_survive(self) -> None:
        """Quotes, backslashes and control characters are escaped the same on both sides."""
        rb = load_rulebook_text(_RB.format(when=r'city == "a\"b\\c"'))
        with Engine(rb) as engine:
            assert _state(engine, {"city": 'a"b\\c'}) == "met"
            v = engine.score({"lead_id": "x", "city": "a\x00\n\tb"})
            assert v.qualifiers["q"]["state"] == "unmet"


class TestMatching:
    def test_or_fires_once(self) -> None:
        """$or fires once per true branch (pitfall 2); fired names are a set."""
        m = Matcher({"r": {"$or": [{"a": 1}, {"b": 1}, {"c": 1}]}}, "or")
        try:
            assert m.match({"a": 1, "b": 1, "c": 1}) == {"r"}
        finally:
            m.close()

    def test_absence_rules_do_not_match_the_state_fact(self) -> None:
        """A rule of only $nex would also match the engine's state fact (pitfall 1)."""
        fields = {"x": FieldInfo("number")}
        cond = _cond("known(x)", fields, positive=False)
        m = Matcher({"nx": cond}, "nex")
        try:
            assert m.match({"x": 1}) == set()
            assert m.match({}) == {"nx"}
        finally:
            m.close()

    def test_more_than_64_matching_rules_are_sharded(self) -> None:
        """65 rules matching at once fail with error 303 in one ruleset (pitfall 5)."""
        rules = {f"t{i}": {"$gt": {"s": i}} for i in range(150)}
        groups = list(shard(rules))
        assert len(groups) == 3 and all(len(g) < MAX_PATHS for g in groups)
        m = Matcher(rules, "many")
        try:
            assert len(m.match({"s": 999})) == 150
        finally:
            m.close()

    def test_an_engine_error_is_ours_and_the_ruleset_survives(self) -> None:
        """Error 303 becomes EngineError without engine text; the next call works (pitfall 3)."""
        r = _Ruleset({f"t{i}": {"$gt": {"s": i}} for i in range(70)}, "raw303")
        try:
            fired: set[str] = set()
            with pytest.raises(EngineError) as e:
                r.match('"s":999,"__lead":1}', fired)
            assert "303" not in str(e.value)
            fired.clear()
            r.match('"s":10,"__lead":1}', fired)
            assert len(fired) == 11  # t0..t9 and the sentinel
        finally:
            r.close()

    def test_facts_no_rule_matches_are_handled(self) -> None:
        """Unmatched facts (MessageNotHandled, then a bad free on delete) are safe: 20k of them."""
        m = Matcher({"r": {"zzz": 1}}, "unmatched")
        try:
            for _ in range(20_000):
                assert m.match({"zzz": 2}) == set()
        finally:
            m.close()

    def test_sessions_are_deleted(self) -> None:
        """At most 1024 live sessions per ruleset (pitfall 6): 3,000 leads in a row are fine."""
        m = Matcher({"r": {"$gt": {"x": 0}}}, "sessions")
        try:
            for i in range(3000):
                assert m.match({"x": i % 2}) == ({"r"} if i % 2 else set())
        finally:
            m.close()

    def test_sessions_rotate_and_stay_empty(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pooled sessions hold no fact between calls, and are replaced after ROTATE facts."""
        monkeypatch.setattr(_Ruleset, "ROTATE", 7)
        m = Matcher({"a": {"$gt": {"x": 0}}, "b": {"$lt": {"x": 0}},
                     "n": guarded({"$nex": {"y": 1}})}, "rotate")
        try:
            for i in range(100):
                x = (i % 3) - 1
                expected = {"a"} if x > 0 else {"b"} if x < 0 else set()
                assert m.match({"x": x, "y": 1}) == expected
            assert next(m.shards[0]._sids) >= 100 // 7
        finally:
            m.close()

    def test_threads_agree(self) -> None:
        """Several threads share one engine and get the answers one thread gets."""
        rules = {f"t{i}": {"$gt": {"s": i}} for i in range(40)}
        m = Matcher(rules, "threads")
        errors: list[str] = []

        def work(offset: int) -> None:
            for i in range(400):
                s = (i + offset) % 50
                if len(m.match({"s": s})) != min(s, 40):
                    errors.append(f"{s}")
        try:
            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
        finally:
            m.close()

    def test_identical_facts_never_collide(self) -> None:
        """Facts are identified by 32-bit hashes (pitfall 9): one lead per session, so 50,000
        identical leads in a row raise no MessageObservedException."""
        m = Matcher({"r": {"$gt": {"x": 0}}}, "same")
        try:
            assert all(m.match({"x": 1, "lead_id": "same"}) == {"r"} for _ in range(50_000))
        finally:
            m.close()

    def test_engines_can_be_replaced_without_growing(self) -> None:
        """No delete API for rulesets (pitfall 11): each engine frees its own on close, so
        200 load/close cycles (a reload pattern) keep memory flat."""
        def rss() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        rb = load_rulebook_text(_RB.format(when="age > 18 and city in [\"a\", \"b\"]"))
        for _ in range(20):  # warm up allocator pools
            Engine(rb).close()
        before = rss()
        for _ in range(200):
            with Engine(rb) as engine:
                engine.score({"lead_id": "x", "age": 30})
        assert rss() - before < 8_000_000

    def test_closed_matcher_refuses(self) -> None:
        """After close (rulesets cannot be replaced in place, pitfall 11) calls fail cleanly."""
        m = Matcher({"r": {"x": 1}}, "closed")
        m.close()
        with pytest.raises(EngineClosedError):
            m.match({"x": 1})

    def test_bad_rule_names_are_refused(self) -> None:
        with pytest.raises(EngineError):
            Matcher({'a"b': {"x": 1}}, "names")


def _state(engine: Engine, fields: dict) -> str:
    return str(engine.score({"lead_id": "x", **fields}).qualifiers["q"]["state"])


_RB = """rulebook: t
version: 1
fields:
  age: {{type: number}}
  city: {{type: string}}
qualifiers:
  q: {{label: {{en: q}}, when: '{when}'}}
grades: [{{id: A, min_score: 0}}]
next_steps: [{{id: s, label: {{en: s}}, reason: {{en: r}}}}]
"""
