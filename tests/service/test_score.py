"""POST /v1/score and /v1/score/batch: verdicts, every client error, API keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qualify import Engine
from qualify.synthetic import generate
from service.main import create_app
from service.settings import Settings
from tests.service.helpers import (
    ADMIN_KEY,
    API_KEY,
    AS_OF,
    LEAD,
    TestClient,
    bearer,
    settings,
)


def _expected(engine: Engine, lead: Any, locale: str | None = None) -> dict[str, Any]:
    import datetime as dt

    verdict = engine.score(lead, as_of=dt.date.fromisoformat(AS_OF), locale=locale)
    out: dict[str, Any] = verdict.model_dump(mode="json")
    return out


class TestScore:
    def test_verdict_equals_the_engine(self, client: TestClient, engine: Engine) -> None:
        """The answer is exactly the engine's verdict, naming the rule base's sha256."""
        r = client.post(f"/v1/score?as_of={AS_OF}", json=LEAD)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert _expected(engine, LEAD) == r.json()
        assert engine.rulebook.sha256 == r.json()["rulebook"]["sha256"]
        assert engine.rulebook.sha256 == r.headers["x-qualify-rulebook"]

    def test_locale_zh(self, client: TestClient, engine: Engine) -> None:
        """locale=zh gives Chinese labels and explanation."""
        r = client.post(f"/v1/score?as_of={AS_OF}&locale=zh", json=LEAD)
        assert r.status_code == 200
        assert r.json()["locale"] == "zh"
        assert _expected(engine, LEAD, "zh") == r.json()

    def test_as_of_defaults_to_today(self, client: TestClient) -> None:
        """Without as_of the verdict is as of today (UTC) and says so."""
        import datetime as dt

        r = client.post("/v1/score", json=LEAD)
        assert dt.datetime.now(dt.UTC).date().isoformat() == r.json()["as_of"]

    def test_any_content_type(self, client: TestClient) -> None:
        """JSON is read whatever the Content-Type says (curl -d sends a form type)."""
        r = client.post("/v1/score", content=json.dumps(LEAD).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200

    def test_request_id_echoed_or_made(self, client: TestClient) -> None:
        """A safe X-Request-ID is echoed; an unsafe one is replaced."""
        r = client.post("/v1/score", json=LEAD, headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        r = client.post("/v1/score", json=LEAD, headers={"X-Request-ID": "bad id\x7f"})
        made = r.headers["x-request-id"]
        assert len(made) == 28 and int(made, 16) >= 0
        again = client.post("/v1/score", json=LEAD).headers["x-request-id"]
        assert again != made


class TestScoreErrors:
    @pytest.mark.parametrize(("body", "reason"), [
        (b"{bad", "malformed JSON at line 1 column 2"),
        (b'{"lead_id": "L1",}', "malformed JSON at line 1 column 18"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"lead_id": "L1", "budget": NaN}', "NaN is not valid JSON"),
        (b'{"lead_id": "L1", "budget": Infinity}', "Infinity is not valid JSON"),
        (b'{"lead_id": "L1", "budget": 1e999}', "out of range"),
        (b'{"lead_id": "L1", "budget": ' + b"9" * 5000 + b"}",
         "an integer of 5,000 digits is too large"),
        (b'{"lead_id": "L1", "budget": -' + b"9" * 41 + b"}", "41 digits"),
        (b'{"lead_id": "L1", "budget": 1, "budget": 2}', "the key 'budget' appears twice"),
        (b'{"lead_id": "L1", "x": [{"a": 1, "a": 1}]}', "the key 'a' appears twice"),
    ])
    def test_malformed_json_is_400_with_reason(self, client: TestClient, body: bytes,
                                               reason: str) -> None:
        """Bodies that are not strict JSON get 400 and say why (and where), in words: no
        Python internals, and no silent last-one-wins for a key given twice."""
        r = client.post("/v1/score", content=body)
        assert r.status_code == 400
        assert r.json()["error"] == "malformed_json"
        assert reason in r.json()["message"]
        assert "sys." not in r.json()["message"]

    @pytest.mark.parametrize(("lead", "field", "message"), [
        ({"lead_id": "L1", "budget": "lots"}, "budget", "expected a number, got 'lots'"),
        ({"lead_id": "L1", "contact_role": "boss"}, "contact_role", "is not one of"),
        ({"lead_id": "L1", "last_contact_date": "yesterday"}, "last_contact_date",
         "expected a date"),
        ({"budget": 1}, "lead_id", "is required"),
        ({"lead_id": "L1", "purchase_timeline_days": 9999}, "purchase_timeline_days",
         "above the maximum"),
    ])
    def test_bad_lead_is_422_field_and_message(self, client: TestClient,
                                               lead: dict[str, Any], field: str,
                                               message: str) -> None:
        """A lead the rule base cannot read: 422 with the field and why, no verdict."""
        r = client.post("/v1/score", json=lead)
        assert r.status_code == 422
        body = r.json()
        assert ("invalid_lead", field) == (body["error"], body["field"])
        assert message in body["message"]
        assert "verdict" not in body and "score" not in body

    @pytest.mark.parametrize("body", [[LEAD], "L1", 42, None, True])
    def test_lead_must_be_an_object(self, client: TestClient, body: Any) -> None:
        """A JSON value that is not an object: 422 naming the body."""
        r = client.post("/v1/score", content=json.dumps(body).encode())
        assert r.status_code == 422
        assert r.json()["field"] == "body"

    @pytest.mark.parametrize(("query", "field"), [("as_of=tomorrow", "as_of"),
                                                  ("as_of=2026-13-01", "as_of"),
                                                  ("locale=fr", "locale")])
    def test_wrong_query_types_are_422_naming_field(self, client: TestClient, query: str,
                                                    field: str) -> None:
        """Wrong parameter types: 422 with the field named, in a list of every error."""
        r = client.post(f"/v1/score?{query}", json=LEAD)
        assert r.status_code == 422
        body = r.json()
        assert field == body["field"]
        assert [field] == [e["field"] for e in body["errors"]]
        assert body["errors"][0]["location"] == "query"

    def test_body_over_1mb_is_413(self, client: TestClient) -> None:
        """A body over 1 MiB is refused with 413, by Content-Length."""
        big = json.dumps({"lead_id": "L1", "notes": "x" * 1_048_576}).encode()
        r = client.post("/v1/score", content=big)
        assert r.status_code == 413
        assert r.json()["error"] == "too_large"

    def test_chunked_body_over_1mb_is_413(self, client: TestClient) -> None:
        """A body sent without Content-Length is counted as it arrives."""
        def chunks() -> Any:
            yield b'{"lead_id": "L1", "notes": "'
            for _ in range(20):
                yield b"x" * 65_536
            yield b'"}'
        r = client.post("/v1/score", content=chunks())
        assert r.status_code == 413

    def test_body_of_exactly_1mb_is_read(self, client: TestClient) -> None:
        """The limit is inclusive: a 1 MiB lead is scored."""
        head = b'{"lead_id": "L1", "notes": "'
        body = head + b"x" * (1_048_576 - len(head) - 2) + b'"}'
        assert len(body) == 1_048_576
        assert client.post("/v1/score", content=body).status_code == 200

    def test_unknown_path_and_method(self, client: TestClient) -> None:
        """Unknown endpoints are 404, wrong methods 405, both in the error shape."""
        r = client.get("/v1/nothing")
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = client.get("/v1/score")
        assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
        assert "POST" in r.headers["allow"]
        r = client.post("/v1/score/", json=LEAD)  # no redirect on a trailing slash
        assert r.status_code == 404


class TestServerErrors:
    def test_a_bug_is_500_without_a_trace(self) -> None:
        """An unexpected exception gives a bare 500 with the request id, no trace or text."""
        app = create_app(settings())

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret internal detail")

        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.get("/boom", headers={"X-Request-ID": "req-42"})
        assert r.status_code == 500
        assert r.json() == {"error": "internal_error",
                "message": "internal error; quote request id req-42"}
        assert "Traceback" not in r.text and "secret" not in r.text


class TestApiKeys:
    def test_missing_key_is_401(self, secure_client: TestClient) -> None:
        """Without a key: 401, a WWW-Authenticate challenge, and no verdict."""
        r = secure_client.post("/v1/score", json=LEAD)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "unauthorized"
        assert "lead_id" not in r.text

    @pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "Basic dXNlcjpwYXNz",
                                        f"Bearer {API_KEY}x", API_KEY])
    def test_wrong_key_is_401(self, secure_client: TestClient, header: str) -> None:
        """A wrong key, or a key in the wrong scheme, is refused."""
        r = secure_client.post("/v1/score", json=LEAD, headers={"Authorization": header})
        assert r.status_code == 401

    @pytest.mark.parametrize("key", [API_KEY, ADMIN_KEY])
    def test_api_key_or_admin_key_scores(self, secure_client: TestClient, key: str) -> None:
        """An API key scores; so does the admin key."""
        r = secure_client.post("/v1/score", json=LEAD, headers=bearer(key))
        assert r.status_code == 200

    def test_auth_is_checked_before_the_body(self, secure_client: TestClient) -> None:
        """Without a key even a malformed body gets 401, not a parse error."""
        assert secure_client.post("/v1/score", content=b"{bad").status_code == 401

    def test_several_keys_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every key of a comma-separated QUALIFY_API_KEYS works."""
        monkeypatch.setenv("QUALIFY_API_KEYS", " one, two ,")
        app = create_app(Settings(access_log=False))
        with TestClient(app) as c:
            assert c.post("/v1/score", json=LEAD, headers=bearer("two")).status_code == 200
            assert c.post("/v1/score", json=LEAD, headers=bearer("three")).status_code == 401


class TestBatch:
    def test_batch_equals_single(self, client: TestClient, engine: Engine) -> None:
        """Each batch result equals that lead's single verdict; order is kept."""
        leads = list(generate(40, seed=7, bad_rate=0.2))
        r = client.post(f"/v1/score/batch?as_of={AS_OF}", json={"leads": leads})
        assert r.status_code == 200
        body = r.json()
        assert 40 == body["count"] == len(body["results"])
        assert body["ok"] + body["failed"] == 40
        assert body["failed"] > 0
        assert engine.rulebook.sha256 == body["rulebook"]["sha256"]
        for lead, result in zip(leads, body["results"], strict=True):
            single = client.post(f"/v1/score?as_of={AS_OF}", json=lead)
            if result["ok"]:
                assert single.json() == result["verdict"]
            else:
                assert {"field": single.json()["field"],
                        "message": single.json()["message"]} == result["error"]

    def test_one_bad_lead_never_fails_the_others(self, client: TestClient) -> None:
        """Bad leads and non-objects fail alone, each with its field and message."""
        leads = [LEAD, {"lead_id": "L2", "budget": "lots"}, 7, {"budget": 1}, LEAD]
        body = client.post("/v1/score/batch", json={"leads": leads}).json()
        assert [x["ok"] for x in body["results"]] == [True, False, False, False, True]
        assert body["results"][1]["error"] == \
            {"field": "budget", "message": "expected a number, got 'lots'"}
        assert None is body["results"][2]["error"]["field"]
        assert body["results"][3]["error"]["field"] == "lead_id"

    def test_inline_and_threaded_batches_agree(self, engine: Engine) -> None:
        """Small batches run on the loop, large ones in a thread: same answers."""
        leads = list(generate(12, seed=3))
        answers = []
        for inline in (0, 100):
            with TestClient(create_app(settings(inline_batch=inline))) as c:
                answers.append(c.post(f"/v1/score/batch?as_of={AS_OF}&locale=zh",
                                      json={"leads": leads}).json())
        assert answers[0] == answers[1]

    def test_empty_batch(self, client: TestClient) -> None:
        """No leads, no results."""
        body = client.post("/v1/score/batch", json={"leads": []}).json()
        assert (body["count"], body["results"]) == (0, [])

    def test_over_1000_leads_is_422(self, client: TestClient) -> None:
        """More than 1,000 leads: 422 naming 'leads', nothing scored."""
        r = client.post("/v1/score/batch", json={"leads": [{"lead_id": "x"}] * 1001})
        assert r.status_code == 422
        assert r.json()["field"] == "leads"
        assert "at most 1,000" in r.json()["message"]

    @pytest.mark.parametrize(("body", "field"), [
        ({"leads": "L1"}, "leads"), ({}, "leads"), ({"leads": [], "extra": 1}, "extra"),
        ([LEAD], "body"), ({"leads": None}, "leads"),
    ])
    def test_wrong_types_are_422_naming_field(self, client: TestClient, body: Any,
                                              field: str) -> None:
        """A body of the wrong shape names the field at fault."""
        r = client.post("/v1/score/batch", json=body)
        assert r.status_code == 422
        assert field == r.json()["field"]

    def test_malformed_json_and_keys(self, client: TestClient,
                                     secure_client: TestClient) -> None:
        """Malformed JSON is 400; a missing API key is 401."""
        assert client.post("/v1/score/batch", content=b"{").status_code == 400
        assert secure_client.post("/v1/score/batch", json={"leads": []}).status_code == 401
