"""The direct path (service/direct.py) of scoring and webhooks answers as FastAPI would.

Every other service test goes through the direct path already (it is on by default); here
the same requests go to an app with it on and one with it off, and the answers must match:
status, body, headers, access-log line and metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from qualify import Verdict
from service.main import create_app
from service.scoring import Scorer
from tests.service.helpers import (
    AS_OF,
    LEAD,
    TestClient,
    bearer,
    dumps,
    generic_headers,
    pipedrive_headers,
    secured,
    settings,
)

HEADERS = ("content-type", "x-qualify-rulebook", "www-authenticate", "retry-after", "allow",
           "x-request-id")

# (method, path, body, headers): good and bad requests of every kind the endpoints answer
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", f"/v1/score?as_of={AS_OF}", dumps(LEAD), bearer()),
    ("POST", f"/v1/score?as_of={AS_OF}&locale=zh", dumps(LEAD), bearer()),
    ("POST", "/v1/score", dumps({"lead_id": "L2", "budget": "lots"}), bearer()),
    ("POST", "/v1/score", b'{"lead_id": ', bearer()),
    ("POST", "/v1/score", b"", bearer()),
    ("POST", "/v1/score", b"\xff\xfe", bearer()),
    ("POST", "/v1/score", b"[1, 2]", bearer()),
    ("POST", "/v1/score", b'{"budget": NaN}', bearer()),
    ("POST", "/v1/score", b"x" * 2_000, bearer()),  # over the test's 1,000-byte limit
    ("POST", "/v1/score?as_of=2026-13-01&locale=fr", dumps(LEAD), bearer()),
    ("POST", "/v1/score", dumps(LEAD), {}),
    ("POST", "/v1/score", dumps(LEAD), bearer("wrong")),
    ("GET", "/v1/score", b"", bearer()),
    ("PUT", "/v1/score", dumps(LEAD), bearer()),
    ("POST", "/v1/score/", dumps(LEAD), bearer()),
    ("POST", f"/v1/score/batch?as_of={AS_OF}",
     dumps({"leads": [LEAD, {"lead_id": "L3", "budget": "lots"}, 7]}), bearer()),
    ("POST", "/v1/score/batch", dumps({"leads": [LEAD] * 3}), bearer()),
    ("POST", "/v1/score/batch", dumps({"leads": "none"}), bearer()),
    ("POST", "/v1/score/batch", dumps({"leads": [LEAD] * 4}), bearer()),  # over max_batch 3
    ("POST", "/v1/score/batch", dumps(LEAD), {}),
    ("POST", f"/v1/webhooks/generic?as_of={AS_OF}", dumps(LEAD), generic_headers(dumps(LEAD))),
    ("POST", "/v1/webhooks/generic", dumps({**LEAD, "budget": "lots"}),
     generic_headers(dumps({**LEAD, "budget": "lots"}))),
    ("POST", "/v1/webhooks/generic", dumps(LEAD), {}),
    ("POST", "/v1/webhooks/pipedrive", b'{"meta": 1}', pipedrive_headers()),
    ("POST", "/v1/webhooks/nowhere", dumps(LEAD), {}),
    ("POST", "/v1/webhooks/" + "s" * 65, dumps(LEAD), {}),
    ("POST", "/v1/webhooks/", dumps(LEAD), {}),
    ("POST", "/v1/webhooks/generic/extra", dumps(LEAD), {}),
    ("GET", "/v1/webhooks/generic", b"", {}),
]


def _answer(client: TestClient, method: str, path: str, body: bytes,
            headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    r = client.request(method, path, content=body,
                       headers={**headers, "X-Request-ID": "req-1"})
    try:
        payload: Any = r.json()
    except ValueError:
        payload = r.text
    if isinstance(payload, dict) and "as_of" in payload and path.find("as_of") < 0:
        payload.pop("as_of")  # today: may differ between the two calls at midnight
    return r.status_code, payload, {h: r.headers[h] for h in HEADERS if h in r.headers}


def _pair(**overrides: Any) -> Iterator[tuple[TestClient, TestClient]]:
    direct = create_app(secured(max_body_bytes=1_000, max_batch=3, **overrides))
    framework = create_app(secured(max_body_bytes=1_000, max_batch=3, **overrides))
    assert ("POST", "/v1/score") in direct.direct  # else this test compares nothing
    assert ("POST", "/v1/webhooks/") in direct.direct_prefixes
    framework.direct.clear()
    framework.direct_prefixes.clear()
    with TestClient(direct, raise_server_exceptions=False) as d, \
            TestClient(framework, raise_server_exceptions=False) as f:
        yield d, f


@pytest.fixture
def pair() -> Iterator[tuple[TestClient, TestClient]]:
    yield from _pair()


@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS,
                         ids=[f"{m} {p} {b[:20]!r} {sorted(h)}" for m, p, b, h in REQUESTS])
def test_same_answer_both_ways(pair: tuple[TestClient, TestClient], method: str, path: str,
                               body: bytes, headers: dict[str, str]) -> None:
    direct, framework = pair
    assert _answer(direct, method, path, body, headers) == \
        _answer(framework, method, path, body, headers)


def test_same_metrics_both_ways(pair: tuple[TestClient, TestClient]) -> None:
    """Requests, latency and errors are counted under the same labels."""
    for client in pair:
        for method, path, body, headers in REQUESTS:
            client.request(method, path, content=body, headers=headers)
    lines = []
    for client in pair:
        text = client.get("/metrics").text
        lines.append(sorted(x.rsplit(" ", 1)[0] for x in text.splitlines()
                            if x.startswith(("qualify_http_requests_total", "qualify_errors_total",
                                             "qualify_verdicts_total"))))
    assert lines[0] == lines[1]
    assert any('endpoint="/v1/score"' in x for x in lines[0])


def test_a_bug_is_500_without_a_trace_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception nobody expected: the same bare 500 with the request id."""
    def boom(self: Scorer, *args: Any, **kwargs: Any) -> Verdict:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Scorer, "score", boom)
    for direct, framework in _pair():
        answers = [_answer(c, "POST", "/v1/score", dumps(LEAD), bearer())
                   for c in (direct, framework)]
    assert answers[0] == answers[1]
    assert answers[0][:2] == (500, {"error": "internal_error",
                                    "message": "internal error; quote request id req-1"})


def test_same_access_log_both_ways(capfd: pytest.CaptureFixture[str]) -> None:
    """The access line is written once the app stops (logs go through a writer thread)."""
    for direct in (True, False):
        app = create_app(secured(access_log=True))
        if not direct:
            app.direct.clear()
            app.direct_prefixes.clear()
        capfd.readouterr()
        with TestClient(app) as client:
            client.post(f"/v1/score?as_of={AS_OF}", content=dumps(LEAD),
                        headers={**bearer(), "X-Request-ID": "req-5"})
        [line] = [json.loads(x) for x in capfd.readouterr().err.splitlines()
                  if '"qualify.service.access"' in x]
        line.pop("ts"), line.pop("latency_ms")
        assert line == {"level": "info", "logger": "qualify.service.access",
                        "message": "POST /v1/score 200", "request_id": "req-5",
                        "method": "POST", "path": "/v1/score", "endpoint": "/v1/score",
                        "status": 200, "lead_id": "L-1001", "sha256": line["sha256"],
                        "grade": line["grade"], "score": line["score"],
                        "verdict_status": line["verdict_status"]}


def test_off_under_opentelemetry() -> None:
    """FastAPI's telemetry wraps its whole stack, so every request must go through it."""
    assert create_app(settings(opentelemetry=True)).direct == {}


def test_root_path_deployments_go_through_fastapi() -> None:
    """Under a root path (a proxy prefix), FastAPI's routing owns the request."""
    app = create_app(settings())
    route, _ = app.direct["POST", "/v1/score"]

    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the direct path served a root_path request")

    app.direct["POST", "/v1/score"] = (route, never)
    with TestClient(app, root_path="/api", raise_server_exceptions=False) as client:
        r = client.post(f"/api/v1/score?as_of={AS_OF}", content=dumps(LEAD))
        assert (r.status_code, r.json()["lead_id"]) == (200, "L-1001")
    app.root_path = "/api"  # FastAPI(root_path=...): the scope's path may lack the prefix
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(f"/v1/score?as_of={AS_OF}", content=dumps(LEAD))
        assert (r.status_code, r.json()["lead_id"]) == (200, "L-1001")
