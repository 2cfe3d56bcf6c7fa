"""The round trip in one process: a CRM's webhook in, the verdict written back into the
record at the CRM stand-in by the service's own outbox thread; retries write nothing twice;
our own writes start no new round."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from service.main import create_app
from tests.crm.conftest import HUBSPOT_TOKEN, PIPEDRIVE_TOKEN, wait_until
from tests.service.helpers import (
    ADMIN_KEY,
    TestClient,
    bearer,
    dumps,
    hubspot_headers,
    pipedrive_headers,
    secured,
)
from tests.standins import HubSpotStandIn, PipedriveStandIn

HOOK = "/v1/webhooks"
APP_ID = "1160452"
CONTACT = {"budget": "25000", "jobtitle": "CEO", "needs_product": "true",
           "sentiment": "positive"}



def _event(object_id: int, event_id: int, **extra: Any) -> dict[str, Any]:
    """A HubSpot app webhook event (the shape of its webhooks guide)."""
    return {"objectId": object_id, "propertyName": "budget", "propertyValue": "25000",
            "changeSource": "CRM_UI", "sourceId": "userId:45678", "eventId": event_id,
            "subscriptionId": 25, "portalId": 33, "appId": int(APP_ID),
            "occurredAt": 1767225600000, "subscriptionType": "contact.propertyChange",
            "attemptNumber": 0, **extra}


@pytest.fixture
def hub(hubspot: tuple[HubSpotStandIn, str]) -> Iterator[tuple[HubSpotStandIn, TestClient]]:
    crm, url = hubspot
    app = create_app(secured(hubspot_token=HUBSPOT_TOKEN, hubspot_api_url=url,
                             hubspot_app_id=APP_ID, outbox_poll=0.05))
    with TestClient(app) as client:
        yield crm, client


def _post_hubspot(client: TestClient, payload: Any) -> dict[str, Any]:
    body = dumps(payload)
    r = client.post(f"{HOOK}/hubspot", content=body, headers=hubspot_headers(body))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


class TestHubSpot:
    def test_a_batch_of_thin_events_is_written_back(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """Answered at once with what was queued; both contacts then get their verdict."""
        crm, client = hub
        crm.add("contacts", "11", **CONTACT)
        crm.add("contacts", "12", **{**CONTACT, "sentiment": "negative"})
        answer = _post_hubspot(client, [_event(11, 1), _event(12, 2)])
        assert (answer["events"], answer["queued"], answer["replayed"]) == (2, 2, 0)
        wait_until(lambda: len(crm.writes) == 2)
        assert {w["id"] for w in crm.writes} == {"11", "12"}
        assert crm.objects["contacts"]["11"]["qualify_grade"]

    def test_a_retried_delivery_writes_nothing_twice(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """HubSpot retries a batch (attemptNumber 1): every event is known, nothing is
        queued, and no second write happens."""
        crm, client = hub
        crm.add("contacts", "13", **CONTACT)
        _post_hubspot(client, [_event(13, 3)])
        wait_until(lambda: len(crm.writes) == 1)
        again = _post_hubspot(client, [_event(13, 3, attemptNumber=1)])
        assert (again["queued"], again["replayed"]) == (0, 1)
        time.sleep(0.3)  # several outbox polls
        assert len(crm.writes) == 1

    def test_our_own_changes_start_no_new_round(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """A change of a property we write, a change by our app, a company, a deletion:
        acknowledged, nothing queued, nothing read."""
        crm, client = hub
        answer = _post_hubspot(client, [
            _event(14, 4, propertyName="qualify_score", propertyValue="80"),
            _event(15, 5, changeSource="INTEGRATION", sourceId=APP_ID),
            _event(16, 6, subscriptionType="company.propertyChange"),
            _event(17, 7, subscriptionType="contact.deletion"),
        ])
        assert (answer["queued"], answer["skipped"]) == (0, 4)
        time.sleep(0.2)
        assert crm.requests == []

    def test_a_workflow_record_is_answered_and_written(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """A workflow "Send a webhook" body: the answer carries the verdict, and the same
        score lands in the contact."""
        crm, client = hub
        crm.add("contacts", "18", **CONTACT)
        answer = _post_hubspot(client, {"hs_object_id": "18", **CONTACT})
        assert (answer["scored"], answer["queued"]) == (True, True)
        wait_until(lambda: len(crm.writes) == 1)
        assert crm.writes[0]["properties"]["qualify_score"] == str(answer["verdict"]["score"])

    def test_the_outbox_is_in_metrics_and_admin(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """/metrics counts jobs per CRM and state; GET /v1/outbox lists them (admin key)."""
        crm, client = hub
        crm.add("contacts", "19", **CONTACT)
        _post_hubspot(client, [_event(19, 9)])
        wait_until(lambda: len(crm.writes) == 1)
        wait_until(lambda: 'qualify_outbox_jobs{crm="hubspot",state="delivered"} 1.0'
              in client.get("/metrics").text)
        text = client.get("/metrics").text
        assert 'qualify_outbox_oldest_age_seconds{crm="hubspot"} 0.0' in text
        assert 'qualify_outbox_jobs_finished_total{crm="hubspot",outcome="delivered"}' in text
        assert client.get("/v1/outbox").status_code == 401
        listed = client.get("/v1/outbox?state=delivered", headers=bearer(ADMIN_KEY)).json()
        (job,) = listed["jobs"]
        assert (job["object_id"], job["attempts"]) == ("19", 1)
        assert job["outcome"]["qualify_score"] == crm.writes[0]["properties"]["qualify_score"]
        assert "record" not in job

    def test_admin_retry_validates_its_body(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """A bad retry body is a 422 naming the field; an empty one retries dead jobs."""
        _, client = hub
        bad = client.post("/v1/outbox/retry", json={"states": ["delivered"]},
                          headers=bearer(ADMIN_KEY))
        assert (bad.status_code, bad.json()["field"]) == (422, "states.0")
        ok = client.post("/v1/outbox/retry", headers=bearer(ADMIN_KEY))
        assert ok.json() == {"queued": []}


PIPEDRIVE_V2: dict[str, Any] = {
    "data": {"id": 42, "name": "Ada", "custom_fields": {}},
    "previous": {"name": "Ada L."},
    "meta": {"action": "change", "entity": "person", "entity_id": "42", "version": "2.0",
             "id": "0b1e0d6c-1111-4f8e-8d7c-6b5a4f3e2d1c", "attempt": 1,
             "timestamp": "2026-01-01T10:00:00.000Z", "change_source": "app",
             "user_id": "7", "company_id": "200"}}


@pytest.fixture
def pipe(pipedrive: tuple[PipedriveStandIn, str]
         ) -> Iterator[tuple[PipedriveStandIn, TestClient]]:
    crm, url = pipedrive
    app = create_app(secured(pipedrive_api_token=PIPEDRIVE_TOKEN, pipedrive_api_url=url,
                             outbox_poll=0.05))
    with TestClient(app) as client:
        yield crm, client


class TestPipedrive:
    def test_a_person_change_is_written_back(
            self, pipe: tuple[PipedriveStandIn, TestClient]) -> None:
        """Queued at once (no verdict in the answer: names come from Pipedrive's API), then
        PATCHed into the person's Qualify fields."""
        crm, client = pipe
        crm.add_person(42, "Ada")
        r = client.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE_V2),
                        headers=pipedrive_headers())
        assert (r.status_code, r.json()["queued"]) == (200, True)
        wait_until(lambda: len(crm.writes) == 1)
        assert crm.writes[0]["entity"] == "person"

    def test_a_change_by_our_own_token_is_skipped(
            self, pipe: tuple[PipedriveStandIn, TestClient]) -> None:
        """change_source api by the token's own user (learnt from /v1/users/me): skipped."""
        crm, client = pipe
        service = client.app.state.service  # type: ignore[attr-defined]
        wait_until(lambda: service.webhooks.scheme("pipedrive").own_user is not None)
        ours = copy.deepcopy(PIPEDRIVE_V2)
        ours["meta"].update(change_source="api", user_id=str(crm.user_id), id="ours-1")
        r = client.post(f"{HOOK}/pipedrive", content=dumps(ours), headers=pipedrive_headers())
        assert "our own API token" in r.json()["reason"]
        own_fields = copy.deepcopy(PIPEDRIVE_V2)
        key = next(f["key"] for f in crm.person_fields if f["name"] == "Qualify grade")
        own_fields["previous"] = {"custom_fields": {key: "B"}, "update_time": "x"}
        own_fields["meta"]["id"] = "ours-2"
        r = client.post(f"{HOOK}/pipedrive", content=dumps(own_fields),
                        headers=pipedrive_headers())
        assert "our own fields only" in r.json()["reason"]

    def test_v1_changes_of_one_object_are_not_mistaken_for_retries(
            self, pipe: tuple[PipedriveStandIn, TestClient]) -> None:
        """Webhooks v1 put the object's id in meta.id: two changes of one deal at two times
        are two deliveries, not a retry."""
        _, client = pipe
        answers = []
        for stamp in ("2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"):
            v1 = {"v": 1, "current": {"id": 7, "title": "Deal"}, "previous": {},
                  "meta": {"v": 1, "action": "updated", "object": "deal", "id": 7,
                           "webhook_id": 99, "timestamp": stamp, "change_source": "app"}}
            answers.append(client.post(f"{HOOK}/pipedrive", content=dumps(v1),
                                       headers=pipedrive_headers()).json())
        assert [a["replayed"] for a in answers] == [False, False]
        assert answers[0]["delivery_id"] != answers[1]["delivery_id"]

    def test_an_organization_event_is_acknowledged_and_skipped(
            self, pipe: tuple[PipedriveStandIn, TestClient]) -> None:
        """Entities the profile does not score are not scored as leads."""
        _, client = pipe
        org = copy.deepcopy(PIPEDRIVE_V2)
        org["meta"].update(entity="organization", id="org-1")
        answer = client.post(f"{HOOK}/pipedrive", content=dumps(org),
                             headers=pipedrive_headers()).json()
        assert answer["scored"] is False
        assert "organization events are not scored" in answer["reason"]


class TestHubSpotShapes:
    def test_a_single_event_not_in_a_list_is_a_thin_event(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """One app-webhook event sent as an object is not scored as an empty lead: it is
        queued, fetched and written back like a list of one."""
        crm, client = hub
        crm.add("contacts", "31", **CONTACT)
        answer = _post_hubspot(client, _event(31, 31))
        assert (answer["events"], answer["queued"]) == (1, 1)
        wait_until(lambda: len(crm.writes) == 1)

    def test_a_custom_lifecycle_stage_is_unknown_not_refused(
            self, hub: tuple[HubSpotStandIn, TestClient]) -> None:
        """A custom lifecycle stage id (HubSpot workflows never retry a refused webhook):
        scored, with the stage unknown."""
        _, client = hub
        answer = _post_hubspot(client, {"hs_object_id": "32", **CONTACT,
                                        "lifecyclestage": "1234567"})
        assert (answer["scored"], answer["verdict"]["lead_id"]) == (True, "32")
        assert 'qualify_webhook_unread_values_total{field="stage",source="hubspot"} 1.0' \
            in client.get("/metrics").text


def test_no_secret_reaches_a_log_or_an_error(hubspot: tuple[HubSpotStandIn, str],
                                             capfd: pytest.CaptureFixture[str]) -> None:
    """Tokens and secrets appear in no log line, no stored error and no admin answer, even
    when the CRM refuses the token."""
    crm, url = hubspot
    token = "pat-secret-token-do-not-log"
    crm.add("contacts", "41", **CONTACT)
    app = create_app(secured(hubspot_token=token, hubspot_api_url=url, outbox_poll=0.05,
                             access_log=True, log_level="debug"))
    with TestClient(app) as client:
        _post_hubspot(client, [_event(41, 41)])
        wait_until(lambda: any("401" in (j["last_error"] or "") for j in client.get(
            "/v1/outbox", headers=bearer(ADMIN_KEY)).json()["jobs"]))
        listed = client.get("/v1/outbox", headers=bearer(ADMIN_KEY)).text
        metrics = client.get("/metrics").text
    logs = capfd.readouterr()
    for text in (logs.out, logs.err, listed, metrics):
        assert token not in text
        assert HUBSPOT_TOKEN not in text
        assert "hubspot-client-secret" not in text
    assert "INVALID_AUTHENTICATION" in listed or "401" in listed
