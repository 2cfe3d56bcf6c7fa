"""POST /v1/webhooks/{source}: HubSpot, Pipedrive and generic payloads, auth, retries.

Payloads are our own, in the shapes of ../shared/samples/crm (HubSpot workflow webhook,
Pipedrive webhooks v2 lead change).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from qualify import Engine
from service.main import create_app
from tests.service.helpers import (
    ADMIN_KEY,
    AS_OF,
    LEAD,
    TestClient,
    bearer,
    dumps,
    generic_headers,
    hubspot_headers,
    pipedrive_headers,
    secured,
    settings,
)

HOOK = "/v1/webhooks"

# A workflow "Send a webhook" body in the legacy contact shape: values as text.
HUBSPOT_LEGACY: dict[str, Any] = {
    "vid": 1246965, "portal-id": 33, "properties": {
        "hs_object_id": {"value": "1246965"}, "budget": {"value": "25000"},
        "contact_role": {"value": "Owner"}, "needs_product": {"value": "true"},
        "sentiment": {"value": "positive"}, "lifecyclestage": {"value": "salesqualifiedlead"},
        "notes_last_contacted": {"value": "1766188800000"},
        "pain_points": {"value": "data silos;compliance"},
        "payment_history": {"value": "none"}, "firstname": {"value": "Ada"}}}
# The same record as the CRM v3 object API and as a "chosen properties" body.
HUBSPOT_V3: dict[str, Any] = {"id": "1246965", "properties": {
    k: v["value"] for k, v in HUBSPOT_LEGACY["properties"].items()}}
HUBSPOT_FLAT: dict[str, Any] = {"objectId": 1246965, **HUBSPOT_V3["properties"]}
HUBSPOT_LEAD = {"lead_id": "1246965", "budget": "25000", "contact_role": "Owner",
                "needs_product": "true", "sentiment": "positive", "stage": "meeting",
                "last_contact_date": "1766188800000", "pain_points": "data silos;compliance",
                "payment_history": "none"}

# Pipedrive webhooks v2, a lead change (the shared sample's shape, our values).
PIPEDRIVE: dict[str, Any] = {
    "data": {"id": "2b9f6a52-8c1e-4d7a-9e0f-3a1b2c3d4e5f", "title": "Acme rollout",
             "value": {"amount": 60000, "currency": "USD"}, "is_archived": False,
             "custom_fields": {"budget": {"value": 25000, "currency": "USD"},
                               "decision_maker": "Yes", "sentiment": "positive"},
             "label_ids": [], "owner_id": 12345678, "person_id": 12},
    "previous": {"value": None},
    "meta": {"action": "change", "entity": "lead", "version": "2.0", "attempt": 1,
             "id": "7e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c",
             "correlation_id": "7e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c",
             "timestamp": "2025-12-20T10:00:00.000Z", "company_id": "12345678",
             "change_source": "app", "host": "acme.pipedrive.com"}}
PIPEDRIVE_LEAD = {"lead_id": PIPEDRIVE["data"]["id"], "budget": 25000,
                  "is_decision_maker": "Yes", "sentiment": "positive",
                  "expected_deal_size": 60000}


def _verdict(engine: Engine, lead: dict[str, Any], as_of: str = AS_OF) -> dict[str, Any]:
    import datetime as dt

    out: dict[str, Any] = engine.score(lead, as_of=dt.date.fromisoformat(as_of)).model_dump(
        mode="json")
    return out


class TestHubSpot:
    @pytest.mark.parametrize("payload", [HUBSPOT_LEGACY, HUBSPOT_V3, HUBSPOT_FLAT],
                             ids=["legacy", "v3-object", "flat"])
    def test_signed_payload_is_scored(self, secure_client: TestClient, engine: Engine,
                                      payload: dict[str, Any]) -> None:
        """Each body shape maps to the same lead and gets the engine's verdict."""
        body = dumps(payload)
        r = secure_client.post(f"{HOOK}/hubspot?as_of={AS_OF}", content=body,
                               headers=hubspot_headers(body, url=f"http://testserver{HOOK}"
                                                       f"/hubspot?as_of={AS_OF}"))
        assert r.status_code == 200, r.text
        answer = r.json()
        assert (answer["source"], answer["scored"],
                                            answer["replayed"]) == ("hubspot", True, False)
        assert _verdict(engine, HUBSPOT_LEAD) == answer["verdict"]
        assert engine.rulebook.sha256 == r.headers["x-qualify-rulebook"]

    def test_the_rotated_out_secret_still_works(self, secure_client: TestClient) -> None:
        """Both configured secrets are accepted during rotation."""
        body = dumps(HUBSPOT_FLAT)
        r = secure_client.post(f"{HOOK}/hubspot", content=body,
                               headers=hubspot_headers(body, secret="old-secret"))
        assert r.status_code == 200

    @pytest.mark.parametrize(("change", "message"), [
        ({"secret": "not-the-secret"}, "does not match"),
        ({"skew": -301}, "stale"),
        ({"skew": 301}, "stale"),
        ({"url": "http://testserver/v1/webhooks/other"}, "does not match"),
    ])
    def test_bad_signature_or_stale_is_401_without_verdict(
            self, secure_client: TestClient, change: dict[str, Any], message: str) -> None:
        """A wrong secret, a stale timestamp or another URL: 401 and nothing scored."""
        body = dumps(HUBSPOT_FLAT)
        r = secure_client.post(f"{HOOK}/hubspot", content=body,
                               headers=hubspot_headers(body, **change))
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"
        assert message in r.json()["message"]
        assert "verdict" not in r.json()

    def test_tampered_body_is_401(self, secure_client: TestClient) -> None:
        """A body changed after signing is refused."""
        body = dumps(HUBSPOT_FLAT)
        headers = hubspot_headers(body)
        tampered = body.replace(b"25000", b"95000")
        assert secure_client.post(f"{HOOK}/hubspot", content=tampered,
                                         headers=headers).status_code == 401

    def test_missing_headers_is_401(self, secure_client: TestClient) -> None:
        """No signature headers at all: 401 naming the missing header."""
        r = secure_client.post(f"{HOOK}/hubspot", json=HUBSPOT_FLAT)
        assert r.status_code == 401
        assert "X-HubSpot-Signature-v3" in r.json()["message"]

    def test_public_url_is_what_is_signed(self) -> None:
        """Behind a proxy, QUALIFY_PUBLIC_URL is the URL HubSpot signed."""
        app = create_app(secured(public_url="https://qualify.example.com/"))
        body = dumps(HUBSPOT_FLAT)
        signed = hubspot_headers(body, url="https://qualify.example.com/v1/webhooks/hubspot")
        with TestClient(app) as c:
            assert c.post(f"{HOOK}/hubspot", content=body, headers=signed).status_code == 200
            local = hubspot_headers(body)  # signed for http://testserver
            assert c.post(f"{HOOK}/hubspot", content=body, headers=local).status_code == 401

    def test_event_list_without_token_is_acknowledged(self,
                                                       secure_client: TestClient) -> None:
        """A Webhooks API event list with no CRM token to fetch records: 200 (HubSpot
        would retry anything else for a day), nothing queued, and the reason says what to
        set."""
        events = [{"objectId": 1246965, "propertyName": "lifecyclestage",
                   "propertyValue": "subscriber", "subscriptionType": "contact.propertyChange",
                   "eventId": 1, "occurredAt": 1462216307945, "attemptNumber": 0}]
        body = dumps(events)
        r = secure_client.post(f"{HOOK}/hubspot", content=body, headers=hubspot_headers(body))
        assert r.status_code == 200
        answer = r.json()
        assert (answer["events"], answer["queued"]) == (1, 0)
        assert "QUALIFY_HUBSPOT_TOKEN" in answer["reason"]

    def test_bad_value_is_acknowledged_and_kept(self, secure_client: TestClient) -> None:
        """A property the rule base cannot read is a data error, not a transport error:
        200 with the reason naming the field (a 4xx would be retried for a day), and the
        record is kept as an invalid job for the admin to see."""
        body = dumps({**HUBSPOT_FLAT, "budget": "lots"})
        r = secure_client.post(f"{HOOK}/hubspot", content=body, headers=hubspot_headers(body))
        assert r.status_code == 200
        answer = r.json()
        assert (answer["scored"], answer["verdict"]) == (False, None)
        assert answer["reason"].startswith("not scored: budget: ")
        kept = secure_client.get("/v1/outbox?state=invalid", headers=bearer(ADMIN_KEY))
        assert kept.status_code == 200
        (job,) = kept.json()["jobs"]
        assert (job["object_id"], job["state"]) == ("1246965", "invalid")
        assert job["last_error"].startswith("budget: ")

    def test_signed_malformed_json_is_400(self, secure_client: TestClient) -> None:
        """A correctly signed body that is not JSON: 400 with the reason."""
        body = b'{"objectId": 1,'
        r = secure_client.post(f"{HOOK}/hubspot", content=body, headers=hubspot_headers(body))
        assert (r.status_code, r.json()["error"]) == (400, "malformed_json")

    def test_lifecycle_other_is_unknown(self, secure_client: TestClient,
                                        engine: Engine) -> None:
        """Mapping placeholders: lifecycle 'other' is treated as missing, not an error."""
        body = dumps({**HUBSPOT_FLAT, "lifecyclestage": "other"})
        url = f"{HOOK}/hubspot?as_of={AS_OF}"
        r = secure_client.post(url, content=body,
                               headers=hubspot_headers(body, url=f"http://testserver{url}"))
        assert r.status_code == 200
        without_stage = {k: v for k, v in HUBSPOT_LEAD.items() if k != "stage"}
        assert _verdict(engine, without_stage) == r.json()["verdict"]


class TestPipedrive:
    def test_basic_auth_and_v2_payload(self, secure_client: TestClient,
                                       engine: Engine) -> None:
        """A v2 lead change is scored as of the event's date (meta.timestamp)."""
        r = secure_client.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE),
                               headers=pipedrive_headers())
        assert r.status_code == 200, r.text
        answer = r.json()
        assert PIPEDRIVE["meta"]["id"] == answer["delivery_id"]
        assert _verdict(engine, PIPEDRIVE_LEAD, "2025-12-20") == answer["verdict"]

    def test_retry_gets_the_same_answer(self, secure_client: TestClient) -> None:
        """meta.attempt > 1 with the same meta.id replays the first answer."""
        first = secure_client.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE),
                                   headers=pipedrive_headers())
        retry = copy.deepcopy(PIPEDRIVE)
        retry["meta"]["attempt"] = 2
        again = secure_client.post(f"{HOOK}/pipedrive", content=dumps(retry),
                                   headers=pipedrive_headers())
        assert again.status_code == 200
        assert again.headers["x-qualify-replayed"] == "true"
        assert again.json()["replayed"] is True
        assert first.json()["verdict"] == again.json()["verdict"]

    def test_retry_across_workers_is_recognised(self) -> None:
        """A retry reaching another worker (another app on the same store) is answered
        from the store: the same verdict, marked replayed."""
        answers = []
        for _ in range(2):  # two apps: two worker processes sharing one database
            with TestClient(create_app(secured())) as c:
                answers.append(c.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE),
                                      headers=pipedrive_headers()).json())
        assert (answers[0]["replayed"], answers[1]["replayed"]) == (False, True)
        assert answers[0]["verdict"] == answers[1]["verdict"]

    def test_delete_event_is_skipped(self, secure_client: TestClient) -> None:
        """A delete event has no data: 200, nothing scored, with the reason."""
        deleted = copy.deepcopy(PIPEDRIVE)
        deleted["data"] = None
        deleted["meta"]["action"] = "delete"
        deleted["meta"]["id"] = "another-event"
        answer = secure_client.post(f"{HOOK}/pipedrive", content=dumps(deleted),
                                    headers=pipedrive_headers()).json()
        assert (answer["scored"], answer["verdict"]) == (False, None)
        assert "'delete' event" in answer["reason"]

    @pytest.mark.parametrize("headers", [
        {}, pipedrive_headers(password="wrong"), pipedrive_headers(user="someone"),
        {"Authorization": "Basic %%%"}, {"Authorization": "Bearer x"}])
    def test_bad_credentials_are_401(self, secure_client: TestClient,
                                     headers: dict[str, str]) -> None:
        """Missing, malformed or wrong basic credentials: 401, nothing scored."""
        r = secure_client.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE), headers=headers)
        assert r.status_code == 401
        assert "verdict" not in r.json()

    @pytest.mark.parametrize(("payload", "field"), [
        ({"data": {"id": "x"}}, "meta"),
        ({"data": [1], "meta": {"id": "m"}}, "data"),
        ([PIPEDRIVE], "body"),
    ])
    def test_wrong_shape_is_422(self, secure_client: TestClient, payload: Any,
                                field: str) -> None:
        """A body that is not a Pipedrive webhook: 422 naming the part at fault."""
        r = secure_client.post(f"{HOOK}/pipedrive", content=dumps(payload),
                               headers=pipedrive_headers())
        assert r.status_code == 422
        assert field == r.json()["field"]

    def test_record_without_id_is_acknowledged(self, secure_client: TestClient) -> None:
        """A record the profile finds no lead id in: 200, not scored, naming lead_id (a 4xx
        would count towards Pipedrive's ban of the webhook)."""
        payload = copy.deepcopy(PIPEDRIVE)
        del payload["data"]["id"]
        payload["meta"]["id"] = "no-id-event"
        r = secure_client.post(f"{HOOK}/pipedrive", content=dumps(payload),
                               headers=pipedrive_headers())
        assert (r.status_code, r.json()["scored"]) == (200, False)
        assert r.json()["reason"] == "not scored: lead_id: is required"


class TestGeneric:
    def test_signed_lead_is_scored(self, secure_client: TestClient, engine: Engine) -> None:
        """A lead in the rule base's own names, signed, gets its verdict."""
        body = dumps(LEAD)
        r = secure_client.post(f"{HOOK}/generic?as_of={AS_OF}", content=body,
                               headers=generic_headers(body))
        assert r.status_code == 200
        assert _verdict(engine, LEAD) == r.json()["verdict"]

    def test_id_is_read_as_lead_id(self, secure_client: TestClient) -> None:
        """The generic profile reads `id` when there is no lead_id."""
        lead = {k: v for k, v in LEAD.items() if k != "lead_id"} | {"id": 77}
        body = dumps(lead)
        r = secure_client.post(f"{HOOK}/generic", content=body, headers=generic_headers(body))
        assert r.json()["verdict"]["lead_id"] == "77"

    @pytest.mark.parametrize(("change", "message"), [
        ({"secret": "nope"}, "does not match"), ({"skew": -400}, "stale"),
        ({"skew": 400}, "stale")])
    def test_bad_or_stale_signature_is_401(self, secure_client: TestClient,
                                           change: dict[str, Any], message: str) -> None:
        """Wrong secret or a timestamp over 300 s off: 401, nothing scored."""
        body = dumps(LEAD)
        r = secure_client.post(f"{HOOK}/generic", content=body,
                               headers=generic_headers(body, **change))
        assert r.status_code == 401
        assert message in r.json()["message"]

    def test_a_new_source_is_a_new_profile(self, rules_dir: Path) -> None:
        """A profile added beside the rule base serves its own source, generic scheme."""
        (rules_dir / "mappings" / "acme.yaml").write_text(
            "name: acme\nfields:\n  lead_id: {from: Lead_Id}\n"
            "  budget: {from: Budget__c}\n", encoding="utf-8")
        app = create_app(secured(rules=rules_dir / "rules.yaml"))
        body = dumps({"Lead_Id": "Z-1", "Budget__c": "12,000"})
        with TestClient(app) as c:
            r = c.post(f"{HOOK}/acme", content=body, headers=generic_headers(body))
        assert r.status_code == 200
        assert r.json()["verdict"]["lead_id"] == "Z-1"


class TestAuthenticationFirst:
    def test_a_bad_as_of_from_a_stranger_is_401_not_422(self,
                                                       secure_client: TestClient) -> None:
        """Options are read after authentication: an unsigned request with a bad as_of
        learns nothing about the options, only that it is not authenticated."""
        r = secure_client.post(f"{HOOK}/hubspot?as_of=yesterday", content=b"{}")
        assert r.status_code == 401
        body = dumps(HUBSPOT_FLAT)
        url = f"{HOOK}/hubspot?as_of=yesterday"
        signed = secure_client.post(url, content=body, headers=hubspot_headers(
            body, url=f"http://testserver{url}"))
        assert (signed.status_code, signed.json()["field"]) == (422, "as_of")


class TestSources:
    def test_unknown_source_is_404(self, secure_client: TestClient) -> None:
        """A source with no profile: 404 saying how to add one, without listing the sources
        (the caller is not authenticated yet)."""
        r = secure_client.post(f"{HOOK}/nowhere", json={})
        assert (r.status_code, r.json()["error"]) == (404, "unknown_source")
        assert "mappings/nowhere.yaml" in r.json()["message"]
        assert "hubspot" not in r.json()["message"]

    @pytest.mark.parametrize(("source", "variable"), [
        ("hubspot", "QUALIFY_HUBSPOT_SECRETS"), ("pipedrive", "QUALIFY_PIPEDRIVE_CREDENTIALS"),
        ("generic", "QUALIFY_GENERIC_SECRETS")])
    def test_source_without_credentials_is_disabled(self, client: TestClient, source: str,
                                                    variable: str) -> None:
        """Webhooks are never accepted unsigned: an unconfigured source is 404."""
        r = client.post(f"{HOOK}/{source}", json=LEAD)
        assert (r.status_code, r.json()["error"]) == (404, "source_disabled")
        assert variable in r.json()["message"]

    def test_webhook_body_over_1mb_is_413(self, secure_client: TestClient) -> None:
        """The size limit applies before any signature work."""
        body = b"{" + b" " * 1_100_000 + b"}"
        r = secure_client.post(f"{HOOK}/generic", content=body, headers=generic_headers(body))
        assert r.status_code == 413

    def test_webhooks_need_no_api_key(self) -> None:
        """Webhooks carry their own authentication; the API key is not asked for."""
        app = create_app(secured())
        body = dumps(LEAD)
        with TestClient(app) as c:
            assert c.post(f"{HOOK}/generic", content=body,
                                 headers=generic_headers(body)).status_code == 200

    def test_webhook_settings_only(self) -> None:
        """A generic secret alone enables the generic source and nothing else."""
        app = create_app(settings(generic_secrets=["only"]))
        body = dumps(LEAD)
        with TestClient(app) as c:
            assert c.post(f"{HOOK}/generic", content=body,
                                 headers=generic_headers(body, secret="only")).status_code == 200
            assert c.post(f"{HOOK}/hubspot", content=body).status_code == 404
