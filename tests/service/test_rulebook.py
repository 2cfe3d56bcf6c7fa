"""GET /v1/rulebook and POST /v1/rulebook/reload: info, hot reload, failures, workers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from qualify import EngineClosedError, RulebaseError, Rulebook
from service.main import create_app
from service.scoring import Scorer
from service.settings import Settings
from tests.service.helpers import (
    ADMIN_KEY,
    API_KEY,
    LEAD,
    TestClient,
    bearer,
    position,
    secured,
    settings,
)

RELOAD = "/v1/rulebook/reload"
ADMIN = bearer(ADMIN_KEY)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _app(rules_dir: Path, **overrides: Any) -> Any:
    return create_app(secured(rules=rules_dir / "rules.yaml", **overrides))


class TestInfo:
    def test_describes_the_loaded_rule_base(self, secure_client: TestClient,
                                            default_rulebook: Rulebook) -> None:
        """Name, version, sha256, load time, fields, rules as written, grades, sources:
        all of them as the loaded rule base has them."""
        rb = default_rulebook
        r = secure_client.get("/v1/rulebook", headers=bearer())
        assert r.status_code == 200
        info = r.json()
        assert (info["name"], info["version"], info["sha256"]) == (rb.name, rb.version,
                                                                   rb.sha256)
        assert r.headers["x-qualify-rulebook"] == rb.sha256
        assert info["loaded_at"].endswith("+00:00")
        role = rb.fields["contact_role"]
        assert info["fields"]["contact_role"] == {
            "type": "enum", "label": role.label, "values": list(role.values),
            "min": None, "max": None, "required": False}
        assert info["fields"]["lead_id"]["required"] is True
        assert [q["id"] for q in info["qualifiers"]] == [q.id for q in rb.qualifiers]
        trait = rb.traits[0]
        assert info["traits"][0] == {"id": trait.id, "kind": trait.kind,
                                     "points": trait.points, "factor": trait.factor,
                                     "when": trait.text, "label": trait.label}
        assert [g["id"] for g in info["grades"]] == [g.id for g in rb.grades]
        assert [s["id"] for s in info["next_steps"]] == [s.id for s in rb.next_steps]
        assert info["sources"] == ["dynamics", "generic", "hubspot", "pipedrive", "salesforce",
                                   "zoho"]
        assert info["warnings"] == [{**w.to_dict(), "text": str(w)} for w in rb.warnings]

    def test_needs_an_api_key(self, secure_client: TestClient) -> None:
        """Like scoring, the rule base info needs an API key."""
        assert secure_client.get("/v1/rulebook").status_code == 401

    def test_shows_warnings(self, rules_dir: Path) -> None:
        """Warnings of the rule base (it loads) are listed with their locations."""
        _edit(rules_dir / "rules.yaml", "    points: 15          # the strongest",
              "    points: -15          # the strongest")
        line, column = position((rules_dir / "rules.yaml").read_text(encoding="utf-8"),
                                "-15          # the strongest")
        with TestClient(_app(rules_dir)) as c:
            warnings = c.get("/v1/rulebook", headers=bearer()).json()["warnings"]
        assert [w["code"] for w in warnings] == ["points-sign"]
        assert warnings[0]["text"].startswith(f"{rules_dir / 'rules.yaml'}:{line}:{column}:")


class TestReload:
    def test_unchanged_files_are_not_rebuilt(self, rules_dir: Path) -> None:
        """Reloading unchanged files keeps the same engine (no memory cost)."""
        with TestClient(_app(rules_dir)) as c:
            engine = c.app.state.service.registry.current.engine  # type: ignore[attr-defined]
            r = c.post(RELOAD, headers=ADMIN)
            assert r.status_code == 200
            assert r.json()["status"] == "unchanged"
            assert engine is c.app.state.service.registry.current.engine  # type: ignore

    def test_force_rebuilds(self, rules_dir: Path) -> None:
        """force=true builds a new engine even when nothing changed."""
        with TestClient(_app(rules_dir)) as c:
            engine = c.app.state.service.registry.current.engine  # type: ignore[attr-defined]
            r = c.post(f"{RELOAD}?force=true", headers=ADMIN)
            assert r.json()["status"] == "reloaded"
            assert engine is not c.app.state.service.registry.current.engine  # type: ignore

    def test_changed_rule_base_is_swapped_in(self, rules_dir: Path) -> None:
        """After an edit and a reload, verdicts name the new rule base."""
        with TestClient(_app(rules_dir)) as c:
            before = c.post("/v1/score", json=LEAD, headers=bearer()).json()["rulebook"]
            _edit(rules_dir / "rules.yaml", "version: 1", "version: 2")
            r = c.post(RELOAD, headers=ADMIN)
            assert r.status_code == 200
            body = r.json()
            assert (body["status"], body["rulebook"]["version"]) == ("reloaded", "2")
            assert before == body["previous"]
            after = c.post("/v1/score", json=LEAD, headers=bearer()).json()["rulebook"]
            assert body["rulebook"] == after
            assert before["sha256"] != after["sha256"]
            info = c.get("/v1/rulebook", headers=bearer()).json()
            assert after["sha256"] == info["sha256"]

    def test_broken_rule_base_keeps_the_old_one(self, rules_dir: Path) -> None:
        """A rule base with problems: 422 listing each with its location; old one serves."""
        with TestClient(_app(rules_dir)) as c:
            before = c.post("/v1/score", json=LEAD, headers=bearer()).json()["rulebook"]
            _edit(rules_dir / "rules.yaml", "when: needs_product or", "when: needs_prodct or")
            line, column = position((rules_dir / "rules.yaml").read_text(encoding="utf-8"),
                                    "needs_prodct")
            r = c.post(RELOAD, headers=ADMIN)
            assert r.status_code == 422
            body = r.json()
            assert body["error"] == "invalid_rulebook"
            assert before == body["serving"]
            [problem] = body["problems"]
            assert {"file": str(rules_dir / "rules.yaml"), "line": line, "column": column,
                    "code": "unknown-field", "hint": "did you mean 'needs_product'?",
                    "severity": "error"} == {k: problem[k] for k in
                                             ("file", "line", "column", "code", "hint",
                                              "severity")}
            assert problem["text"].endswith(f":{line}:{column}: unknown-field: unknown field "
                                            "'needs_prodct' (did you mean 'needs_product'?)")
            assert before == c.post("/v1/score", json=LEAD,
                                    headers=bearer()).json()["rulebook"]
            assert c.get("/readyz").status_code == 200

    def test_broken_mapping_keeps_the_old_one(self, rules_dir: Path) -> None:
        """A profile naming an unknown field fails the reload with its location."""
        with TestClient(_app(rules_dir)) as c:
            _edit(rules_dir / "mappings" / "generic.yaml", "  lead_id:", "  lead_idd:")
            r = c.post(RELOAD, headers=ADMIN)
            assert r.status_code == 422
            [problem] = r.json()["problems"]
            assert problem["file"].endswith("generic.yaml")
            assert problem["code"] == "unknown-field"

    def test_missing_file_keeps_the_old_one(self, rules_dir: Path) -> None:
        """A rule base file that disappeared: 422 file-unreadable."""
        with TestClient(_app(rules_dir)) as c:
            (rules_dir / "rules.yaml").unlink()
            r = c.post(RELOAD, headers=ADMIN)
            assert r.status_code == 422
            assert r.json()["problems"][0]["code"] == "file-unreadable"

    def test_old_engine_is_closed_after_the_grace_period(self, rules_dir: Path) -> None:
        """The replaced engine is closed once the grace period is over."""
        with TestClient(_app(rules_dir, reload_grace=0.05)) as c:
            old = c.app.state.service.registry.current.engine  # type: ignore[attr-defined]
            c.post(f"{RELOAD}?force=true", headers=ADMIN)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    old.score(LEAD)
                except EngineClosedError:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the old engine was not closed")
            assert c.post("/v1/score", json=LEAD, headers=bearer()).status_code == 200

    def test_swap_is_atomic_under_load(self, rules_dir: Path) -> None:
        """Scoring from 4 threads during 12 reloads: no failure, and every verdict's
        sha256 matches its version (no request saw half a rule base)."""
        path = rules_dir / "rules.yaml"
        texts = [path.read_text(encoding="utf-8")]
        texts.append(texts[0].replace("version: 1", "version: 2", 1)
                     .replace("points: 15  ", "points: 20  ", 1))
        statuses: Counter[int] = Counter()
        pairs: set[tuple[str, str]] = set()
        stop = threading.Event()
        with TestClient(_app(rules_dir, reload_grace=0.0)) as c:
            def load() -> None:
                while not stop.is_set():
                    r = c.post("/v1/score", json=LEAD, headers=bearer())
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        rb = r.json()["rulebook"]
                        pairs.add((rb["version"], rb["sha256"]))
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            try:
                for i in range(12):
                    path.write_text(texts[(i + 1) % 2], encoding="utf-8")
                    assert c.post(RELOAD, headers=ADMIN).status_code == 200
                    time.sleep(0.02)
            finally:
                stop.set()
                for t in threads:
                    t.join()
        assert {200} == set(statuses)
        assert statuses[200] > 12
        assert 2 == len(pairs) == len({sha for _, sha in pairs})


class TestTestsBeside:
    """Issue 13, item 6: a reload runs rules/<name>.test.yaml and refuses a failing base."""

    CASE = ("rules: rules.yaml\nas_of: '2026-01-01'\ncases:\n"
            "  - name: an urgent lead\n    lead: {purchase_timeline_days: 10}\n"
            "    expect: {traits: [urgent_need]}\n")

    def test_a_rule_base_failing_its_tests_is_refused(self, rules_dir: Path) -> None:
        """The half-written file with no traits scored every lead 50/C: its tests fail."""
        (rules_dir / "rules.test.yaml").write_text(self.CASE, encoding="utf-8")
        with TestClient(_app(rules_dir)) as c:
            before = c.post("/v1/score", json=LEAD, headers=bearer()).json()["rulebook"]
            _edit(rules_dir / "rules.yaml", "when: purchase_timeline_days <= 30",
                  "when: purchase_timeline_days <= 3")
            r = c.post(RELOAD, headers=ADMIN)
            assert r.status_code == 422, r.text
            [problem] = r.json()["problems"]
            assert problem["code"] == "test-failed"
            assert problem["file"] == str(rules_dir / "rules.test.yaml")
            assert problem["line"] == 6
            assert problem["message"] == \
                "case 'an urgent lead': traits: expected urgent_need fired, got []"
            assert "qualify rules test" in problem["hint"]
            assert before == c.post("/v1/score", json=LEAD,
                                    headers=bearer()).json()["rulebook"]

    def test_passing_tests_let_it_in(self, rules_dir: Path) -> None:
        """The same test file, a change it allows: reloaded."""
        (rules_dir / "rules.test.yaml").write_text(self.CASE, encoding="utf-8")
        with TestClient(_app(rules_dir)) as c:
            _edit(rules_dir / "rules.yaml", "version: 1", "version: 2")
            assert c.post(RELOAD, headers=ADMIN).json()["status"] == "reloaded"

    def test_a_broken_test_file_is_refused_too(self, rules_dir: Path) -> None:
        """A test file that does not parse is a located problem, not a skipped check."""
        (rules_dir / "rules.test.yaml").write_text("cases: [", encoding="utf-8")
        with pytest.raises(RulebaseError) as e:
            create_app(secured(rules=rules_dir / "rules.yaml"))
        assert e.value.problems[0].file == str(rules_dir / "rules.test.yaml")


class TestAdminKey:
    @pytest.mark.parametrize("headers", [{}, bearer(API_KEY), bearer("nope")])
    def test_reload_needs_the_admin_key(self, secure_client: TestClient,
                                        headers: dict[str, str]) -> None:
        """No key, an API key or a wrong key: 401, nothing reloaded."""
        r = secure_client.post(RELOAD, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"

    def test_no_admin_key_configured_disables_reload(self) -> None:
        """API keys but no admin key: reload is refused (403)."""
        with TestClient(create_app(settings(api_keys=[API_KEY]))) as c:
            r = c.post(RELOAD, headers=bearer())
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        assert "QUALIFY_ADMIN_KEY" in r.json()["message"]

    def test_open_loopback_mode_allows_reload(self, client: TestClient) -> None:
        """With no keys at all (loopback only) reload is open, like scoring."""
        assert client.post(RELOAD).status_code == 200


class TestWorkers:
    def test_sibling_workers_follow_a_reload(self, rules_dir: Path, tmp_path: Path) -> None:
        """Two workers share a reload channel: a reload in one reaches the other."""
        channel = tmp_path / "reload.json"
        apps = [_app(rules_dir, reload_channel=channel, reload_poll=0.02) for _ in range(2)]
        with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
            _edit(rules_dir / "rules.yaml", "version: 1", "version: 2")
            new = a.post(RELOAD, headers=ADMIN).json()["rulebook"]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                seen = b.post("/v1/score", json=LEAD, headers=bearer()).json()["rulebook"]
                if seen == new:
                    break
                time.sleep(0.02)
            assert new == seen
            assert a.post(RELOAD, headers=ADMIN).json()["status"] == "unchanged"

    def test_siblings_serve_what_was_activated_not_what_is_on_disk(
            self, rules_dir: Path, tmp_path: Path) -> None:
        """Issue 13, item 7: an edit after a reload (not itself reloaded) stays off every
        worker, and a worker started while the file is broken serves the activated base."""
        channel = tmp_path / "reload.json"
        rules = rules_dir / "rules.yaml"
        apps = [_app(rules_dir, reload_channel=channel, reload_poll=0.02) for _ in range(2)]
        with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
            _edit(rules, "version: 1", "version: 2")
            activated = a.post(RELOAD, headers=ADMIN).json()["rulebook"]
            _edit(rules, "version: 2", "version: 3")  # the next edit, not reloaded
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                seen = b.post("/v1/score", json=LEAD, headers=bearer()).json()["rulebook"]
                if seen != activated:
                    time.sleep(0.02)
                    continue
                time.sleep(0.2)  # ten more polls: nothing else may come in
                break
            assert activated == b.post("/v1/score", json=LEAD,
                                       headers=bearer()).json()["rulebook"]

            rules.write_text(rules.read_text(encoding="utf-8")[:900], encoding="utf-8")
            with TestClient(_app(rules_dir, reload_channel=channel)) as late:
                assert activated == late.post("/v1/score", json=LEAD,
                                              headers=bearer()).json()["rulebook"]

    def test_retry_on_an_engine_closed_mid_call(self, rules_dir: Path) -> None:
        """A call that meets a retired engine is retried on the current one."""
        with TestClient(_app(rules_dir)) as c:
            service = c.app.state.service  # type: ignore[attr-defined]
            stale = service.registry.current
            c.post(f"{RELOAD}?force=true", headers=ADMIN)
            stale.engine.close()
            current = service.registry.current

            class Flaky:  # gives the stale snapshot first, as a request that read it early
                def __init__(self) -> None:
                    self.calls = 0

                @property
                def current(self) -> Any:
                    self.calls += 1
                    return stale if self.calls == 1 else current

            scorer = Scorer(Flaky(), service.metrics)  # type: ignore[arg-type]
            scored = scorer.score(LEAD, as_of=None, locale=None, source="test", fields={})
            assert current.sha256 == scored.verdict.rulebook["sha256"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings read QUALIFY_* variables; lists take commas or JSON; secrets stay hidden."""
    monkeypatch.setenv("QUALIFY_API_KEYS", '["a,b", "c"]')
    monkeypatch.setenv("QUALIFY_PIPEDRIVE_CREDENTIALS", "user:pa:ss")
    monkeypatch.setenv("QUALIFY_ADMIN_KEY", " ")
    monkeypatch.setenv("QUALIFY_RULES", str(tmp_path / "r.yaml"))
    s = Settings()
    assert [k.get_secret_value() for k in s.api_keys] == ["a,b", "c"]
    assert None is s.admin_key
    assert tmp_path / "mappings" == s.mappings_dir
    assert "pa:ss" not in repr(s)
    monkeypatch.setenv("QUALIFY_PIPEDRIVE_CREDENTIALS", "no-colon")
    with pytest.raises(ValueError, match="user:password"):
        Settings()
