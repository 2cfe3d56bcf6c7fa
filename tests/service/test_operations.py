"""/healthz, /readyz, /metrics; structured logs; the decision log; the OpenAPI document."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from qualify import Engine
from service.logs import REQUEST_ID, DecisionLog, JsonFormatter, LogSetup, TextFormatter
from service.main import create_app
from service.openapi import EXAMPLE_AS_OF, EXAMPLE_LEAD
from tests.service.helpers import AS_OF, LEAD, TestClient, bearer, secured, settings


class TestHealth:
    def test_healthz(self, client: TestClient) -> None:
        """Alive: 200 {"status": "ok"}, no key needed."""
        r = client.get("/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})

    def test_readyz_names_the_rule_base(self, secure_client: TestClient) -> None:
        """Ready: 200 with the rule base in use; no key needed."""
        r = secure_client.get("/readyz")
        assert r.status_code == 200
        assert r.json()["status"] == "ready"
        assert r.json()["rulebook"]["name"] == "default"

    def test_not_ready_before_start_and_after_stop(self) -> None:
        """Before start-up and after shutdown /readyz is 503."""
        app = create_app(settings())
        assert TestClient(app).get("/readyz").status_code == 503  # lifespan not run
        with TestClient(app) as c:
            assert c.get("/readyz").status_code == 200
        assert TestClient(app).get("/readyz").status_code == 503
        with TestClient(app) as c:  # the same app starts again, reloading its rule base
            assert c.get("/readyz").status_code == 200
            assert c.post("/v1/score", json=LEAD).status_code == 200


class TestMetrics:
    def test_counts_requests_verdicts_errors_reloads(self, secure_client: TestClient) -> None:
        """Prometheus text: requests and latency by endpoint, verdicts by grade, errors
        by kind, reloads by outcome, the rule base in use."""
        v = secure_client.post(f"/v1/score?as_of={AS_OF}", json=LEAD, headers=bearer()).json()
        secure_client.post("/v1/score", json={"lead_id": "x", "budget": "lots"},
                           headers=bearer())
        secure_client.post("/v1/score", json=LEAD)
        secure_client.post("/v1/rulebook/reload", headers=bearer("test-admin-key"))
        secure_client.get("/nowhere")
        r = secure_client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        text = r.text
        for line in [
            'qualify_http_requests_total{endpoint="/v1/score",method="POST",status="200"} 1.0',
            'qualify_http_requests_total{endpoint="/v1/score",method="POST",status="422"} 1.0',
            'qualify_http_requests_total{endpoint="/v1/score",method="POST",status="401"} 1.0',
            'qualify_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0',
            'qualify_http_request_duration_seconds_count{endpoint="/v1/score",method="POST"} '
            '3.0',
            f'qualify_verdicts_total{{grade="{v["grade"]}",source="api",'
            f'status="{v["status"]}"}} 1.0',
            'qualify_errors_total{kind="invalid_lead"} 1.0',
            'qualify_errors_total{kind="unauthorized"} 1.0',
            'qualify_rulebook_reloads_total{outcome="unchanged"} 1.0',
        ]:
            assert line in text, line
        assert 'qualify_rulebook_info{name="default"' in text

    def test_multiprocess_mode(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """With PROMETHEUS_MULTIPROC_DIR, /metrics adds up the files of every worker."""
        from service.metrics import Metrics

        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        metrics = Metrics()
        assert metrics.multiprocess
        assert b"qualify" in metrics.render() or metrics.render() == b""
        metrics.process_exit()


class TestLogs:
    def _record(self, **fields: Any) -> logging.LogRecord:
        record = logging.LogRecord("qualify.service", logging.INFO, __file__, 1,
                                   "scored %s", ("L1",), None)
        record.fields = fields
        return record

    def test_json_lines(self) -> None:
        """One JSON object: time, level, logger, message, request id and fields."""
        token = REQUEST_ID.set("req-1")
        try:
            line = JsonFormatter().format(self._record(lead_id="L1", grade="A"))
        finally:
            REQUEST_ID.reset(token)
        out = json.loads(line)
        assert out["ts"].endswith("Z")
        assert {k: out[k] for k in ("level", "logger", "message", "request_id", "lead_id",
                                    "grade")} == {
            "level": "info", "logger": "qualify.service", "message": "scored L1",
            "request_id": "req-1", "lead_id": "L1", "grade": "A"}

    def test_text_lines(self) -> None:
        """The text format keeps fields as key=value."""
        line = TextFormatter().format(self._record(grade="A"))
        assert line.endswith("qualify.service: scored L1 grade=A")

    def test_access_log_fields(self, capfd: pytest.CaptureFixture[str]) -> None:
        """Each request logs request id, lead_id, rule base sha256, grade and latency."""
        with TestClient(create_app(settings(access_log=True))) as c:
            v = c.post(f"/v1/score?as_of={AS_OF}", json=LEAD,
                       headers={"X-Request-ID": "req-77"}).json()
        lines = [json.loads(x) for x in capfd.readouterr().err.splitlines()
                 if x.startswith("{")]
        [access] = [x for x in lines if x["logger"] == "qualify.service.access"]
        assert access["request_id"] == "req-77"
        assert (access["status"], access["lead_id"], access["grade"]) == (200, "L-1001",
                                                                          v["grade"])
        assert len(access["sha256"]) == 64
        assert access["latency_ms"] > 0
        warning = next(x for x in lines if x["level"] == "warning")
        assert "loopback" in warning["message"]

    def test_lines_keep_the_callers_request_id_and_survive_bad_fields(self) -> None:
        """Records are formatted where they are logged: the request id and a traceback are
        the caller's; a field that cannot be shown gives an error line, not a lost log."""
        stream = io.StringIO()
        setup = LogSetup(settings(), stream)

        class Unshowable:
            def __str__(self) -> str:
                raise ValueError("no")

        log = logging.getLogger("qualify.service.test")
        token = REQUEST_ID.set("req-3")
        try:
            try:
                raise KeyError("inner")
            except KeyError:
                log.error("failed", exc_info=True)
            log.info("odd", extra={"fields": {"x": Unshowable()}})
        finally:
            REQUEST_ID.reset(token)
            setup.close()
        failed, odd = (json.loads(x) for x in stream.getvalue().splitlines())
        assert (failed["message"], failed["request_id"]) == ("failed", "req-3")
        assert "KeyError: 'inner'" in failed["exc"]
        assert (odd["level"], odd["message"]) == ("error", "unloggable item: ValueError")

    @pytest.mark.parametrize("log_format", ["json", "text"])
    def test_access_fast_path_writes_what_the_logger_writes(self, log_format: str) -> None:
        """LogSetup.access (the middleware's fast path) gives the line the access logger's
        record gives; in the text format it declines, and the middleware logs the record."""
        stream = io.StringIO()
        setup = LogSetup(settings(log_format=log_format), stream)
        fields = {"method": "POST", "path": "/v1/score", "status": 200, "grade": "A",
                  "latency_ms": 1.5}
        token = REQUEST_ID.set("req-8")
        try:
            fast = setup.access(logging.INFO, "POST /v1/score 200", "req-8", fields)
            logger = logging.getLogger("qualify.service.access")
            logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0,
                                            "%s %s %d", ("POST", "/v1/score", 200), None,
                                            extra={"fields": fields}))
        finally:
            REQUEST_ID.reset(token)
            setup.close()
        lines = stream.getvalue().splitlines()
        assert fast is (log_format == "json")
        if fast:
            a, b = (json.loads(x) for x in lines)
            assert a.pop("ts")[:16] == b.pop("ts")[:16]
            assert list(a.items()) == list(b.items())
        else:
            assert len(lines) == 1

    def test_decision_log(self, tmp_path: Path) -> None:
        """Every decision is a JSON line: input and verdict, or input and error."""
        path = tmp_path / "audit" / "decisions.jsonl"
        with TestClient(create_app(settings(decision_log=path))) as c:
            c.post("/v1/score", json=LEAD, headers={"X-Request-ID": "req-9"})
            c.post("/v1/score", json={"lead_id": "L2", "budget": "lots"})
            c.post("/v1/score/batch", json={"leads": [LEAD]})
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        assert [x["source"] for x in lines] == ["api", "api", "batch"]
        assert lines[0]["request_id"] == "req-9"
        assert lines[0]["input"] == LEAD
        assert lines[0]["verdict"]["lead_id"] == "L-1001"
        assert lines[1]["error"] == {"field": "budget", "message": "expected a number, "
                                                                   "got 'lots'"}
        assert oct(path.stat().st_mode & 0o777) == "0o600"

    def test_decision_log_keeps_what_orjson_refuses(self, tmp_path: Path) -> None:
        """An integer beyond 64 bits (valid JSON a client may send) is logged exactly."""
        path = tmp_path / "decisions.jsonl"
        log = DecisionLog(path)
        log.write(source="api", lead={"lead_id": "1", "budget": 2**70},
                  error={"field": "budget", "message": "out of range"})
        log.close()
        assert json.loads(path.read_text(encoding="utf-8"))["input"]["budget"] == 2**70

    def test_decision_log_follows_logrotate(self, tmp_path: Path) -> None:
        """A moved log file is reopened: new lines go to a new file at the same path."""
        path = tmp_path / "decisions.jsonl"
        log = DecisionLog(path)
        log.write(source="api", lead={"lead_id": "1"}, verdict_json=b'{"v":1}')
        log.close()
        os.rename(path, tmp_path / "decisions.jsonl.1")
        log = DecisionLog(path)
        log._inode = -1  # as if rotated while open
        log.write(source="api", lead={"lead_id": "2", "bad": float("nan")},
                  error={"field": None, "message": "x"})
        log.close()
        assert json.loads(path.read_text(encoding="utf-8"))["input"]["lead_id"] == "2"


class TestOpenAPI:
    def test_document(self, secure_client: TestClient, engine: Engine) -> None:
        """The lead schema comes from the rule base; every operation has an example and
        documents its client errors."""
        doc = secure_client.get("/openapi.json").json()
        lead = doc["components"]["schemas"]["Lead"]
        assert lead["required"] == ["lead_id"]
        assert lead["properties"]["contact_role"]["anyOf"][0]["enum"][0] == "owner"
        ops = {(path, method): op for path, item in doc["paths"].items()
               for method, op in item.items()}
        score = ops[("/v1/score", "post")]
        verdict = score["responses"]["200"]["content"]["application/json"]["examples"]
        assert verdict["verdict"]["value"] == engine.score(
            EXAMPLE_LEAD, as_of=EXAMPLE_AS_OF).model_dump(mode="json")
        assert set(score["responses"]) >= {"200", "400", "401", "413", "422"}
        for key in [("/v1/score/batch", "post"), ("/v1/webhooks/{source}", "post")]:
            assert "examples" in ops[key]["requestBody"]["content"]["application/json"]
        assert set(ops[("/v1/webhooks/{source}", "post")]["responses"]) >= {
            "200", "400", "401", "404", "413", "422"}
        assert {"ApiKey", "AdminKey"} <= set(doc["components"]["securitySchemes"])

    def test_each_source_has_its_operation(self, secure_client: TestClient) -> None:
        """Every webhook source is an operation of its own: its CRM's body around the fields
        its profile reads, its authentication, its answer."""
        doc = secure_client.get("/openapi.json").json()
        schemes = doc["components"]["securitySchemes"]
        for name in ("dynamics", "generic", "hubspot", "pipedrive", "salesforce", "zoho"):
            op = doc["paths"][f"/v1/webhooks/{name}"]["post"]
            assert op["operationId"] == f"webhook_{name}"
            assert "source" not in {p["name"] for p in op["parameters"]}
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes)
        ops = {name: doc["paths"][f"/v1/webhooks/{name}"]["post"] for name in
               ("hubspot", "pipedrive", "salesforce", "zoho")}
        assert ops["hubspot"]["security"] == [{"HubSpotSignature": [], "HubSpotTimestamp": []}]
        record, events, _ = ops["hubspot"]["requestBody"]["content"]["application/json"][
            "schema"]["anyOf"]
        assert record["properties"]["properties"]["properties"]["budget"]["anyOf"][0][
            "properties"]["value"]["description"].startswith("Budget")
        assert {"required": ["objectId"]} in record["allOf"][0]["anyOf"]  # a lead id
        assert events["items"]["required"] == ["eventId", "subscriptionType", "objectId"]
        answer = ops["hubspot"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"$ref": "#/components/schemas/WebhookEvents"} in answer["anyOf"]
        pipedrive = ops["pipedrive"]["requestBody"]["content"]["application/json"]["schema"]
        assert pipedrive["required"] == ["meta"]
        assert pipedrive["properties"]["data"]["anyOf"][0]["required"] == ["id"]
        soap = ops["salesforce"]["requestBody"]["content"]["text/xml"]["schema"]
        assert soap["xml"]["name"] == "Envelope"
        assert "403" in ops["salesforce"]["responses"]
        assert "text/xml" in ops["salesforce"]["responses"]["200"]["content"]
        assert set(ops["zoho"]["requestBody"]["content"]) == {
            "application/x-www-form-urlencoded", "application/json"}

    def test_docs_page(self, client: TestClient) -> None:
        """/docs serves the interactive page."""
        r = client.get("/docs")
        assert r.status_code == 200
        assert "swagger" in r.text.lower()

    def test_document_follows_a_reload(self, rules_dir: Path) -> None:
        """After a reload that changes the rule base, the document describes the new one."""
        app = create_app(secured(rules=rules_dir / "rules.yaml"))
        with TestClient(app) as c:
            first = c.get("/openapi.json").json()["components"]["schemas"]["Lead"]
            path = rules_dir / "rules.yaml"
            path.write_text(path.read_text(encoding="utf-8").replace(
                "version: 1", "version: 7"), encoding="utf-8")
            c.post("/v1/rulebook/reload", headers=bearer("test-admin-key"))
            second = c.get("/openapi.json").json()["components"]["schemas"]["Lead"]
        assert "version 1" in first["description"]
        assert "version 7" in second["description"]


def test_fastapi_telemetry_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI's OpenTelemetry hooks look up providers on every request: off by default."""
    monkeypatch.delenv("QUALIFY_OPENTELEMETRY", raising=False)
    assert not create_app()._native_telemetry.enabled()
    monkeypatch.setenv("QUALIFY_OPENTELEMETRY", "true")
    assert create_app()._telemetry["tracing"] is True


class TestClientHangsUp:
    def test_a_client_gone_mid_body_is_not_a_server_error(
            self, caplog: pytest.LogCaptureFixture) -> None:
        """A client that hangs up before its body arrives: 499 (nginx's 'client closed
        request'), counted as such, no 500 and no traceback in the log."""
        import asyncio

        from service.main import create_app
        from tests.service.helpers import settings as make_settings

        app = create_app(make_settings(generic_secrets=["s"]))  # open scoring, webhook on
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def call(path: str) -> None:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "POST", "scheme": "http", "path": path,
                     "raw_path": path.encode(), "query_string": b"", "root_path": "",
                     "headers": [(b"content-type", b"application/json"),
                                 (b"content-length", b"100")],
                     "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
            await app(scope, receive, send)

        for path in ("/v1/score", "/v1/webhooks/generic", "/v1/score/batch"):
            sent.clear()
            asyncio.run(call(path))
            (start,) = [m for m in sent if m["type"] == "http.response.start"]
            assert start["status"] == 499, (path, start["status"])
        assert "unhandled error" not in caplog.text
        assert "ClientDisconnect" not in caplog.text
        metrics = app.state.service.metrics.render().decode()
        assert 'status="500"' not in metrics
        assert 'qualify_errors_total{kind="client_closed_request"}' in metrics
