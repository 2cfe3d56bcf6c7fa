"""The stand-ins keep the vendors' contracts, driven over real HTTP the way qualify will."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.standins import HubSpotStandIn, PipedriveStandIn, serving

TOKEN = "pat-na1-standin"
READ = "/crm/v3/objects/contacts/batch/read"
UPDATE = "/crm/v3/objects/contacts/batch/update"


@pytest.fixture
def hubspot() -> HubSpotStandIn:
    stand_in = HubSpotStandIn(TOKEN, burst=5)
    stand_in.add("contacts", "101", email="ada@example.com", lead_score="10")
    stand_in.define("contacts", "lead_grade", options=["A", "B", "C"])
    return stand_in


@pytest.fixture
def hs(hubspot: HubSpotStandIn) -> Iterator[httpx.Client]:
    with serving(hubspot.app) as url, httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ) as client:
        yield client


class TestHubSpot:
    def test_a_wrong_or_missing_token_is_refused_with_the_documented_401(
        self, hubspot: HubSpotStandIn, hs: httpx.Client
    ) -> None:
        """No token and a wrong token both get 401 INVALID_AUTHENTICATION, and nothing is read."""
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}):
            answer = hs.post(READ, json={"inputs": [{"id": "101"}]}, headers=headers)
            assert answer.status_code == 401
            assert answer.json()["category"] == "INVALID_AUTHENTICATION"
        assert hubspot.reads == []
        assert [status for *_, status in hubspot.requests] == [401, 401]

    def test_more_than_100_inputs_fail_the_whole_batch(self, hs: httpx.Client) -> None:
        """101 inputs get 400 VALIDATION_ERROR naming the limit of 100."""
        inputs = [{"id": str(i), "properties": {"lead_score": "1"}} for i in range(101)]
        answer = hs.post(UPDATE, json={"inputs": inputs})
        assert answer.status_code == 400
        assert answer.json()["category"] == "VALIDATION_ERROR"
        assert "maximum number of inputs supported in a batch is 100" in answer.json()["message"]

    def test_ids_that_do_not_exist_give_a_207_beside_the_records_that_do(
        self, hubspot: HubSpotStandIn, hs: httpx.Client
    ) -> None:
        """A read and an update with one unknown id: 207, one OBJECT_NOT_FOUND, the rest done."""
        read = hs.post(READ, json={"inputs": [{"id": "101"}, {"id": "999"}],
                                   "properties": ["lead_score", "missing_prop"]})
        assert read.status_code == 207
        body = read.json()
        assert body["status"] == "COMPLETE" and body["numErrors"] == 1
        assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
        assert body["errors"][0]["context"] == {"ids": ["999"]}
        [record] = body["results"]
        assert record["id"] == "101" and record["properties"]["lead_score"] == "10"
        assert "missing_prop" not in record["properties"]

        update = hs.post(UPDATE, json={"inputs": [
            {"id": "101", "properties": {"lead_score": 87}},
            {"id": "999", "properties": {"lead_score": "5"}}]})
        assert update.status_code == 207
        assert update.json()["errors"][0]["context"] == {"ids": ["999"]}
        assert hubspot.writes == [
            {"object_type": "contacts", "id": "101", "properties": {"lead_score": "87"}}]

    def test_an_unknown_property_or_option_rejects_the_batch_and_writes_nothing(
        self, hubspot: HubSpotStandIn, hs: httpx.Client
    ) -> None:
        """400 'Property values were not valid' with PROPERTY_DOESNT_EXIST and INVALID_OPTION."""
        answer = hs.post(UPDATE, json={"inputs": [
            {"id": "101", "properties": {"lead_score": "1", "qualify_verdict": "hot"}},
            {"id": "101x", "properties": {"lead_grade": "Z"}}]})
        assert answer.status_code == 400
        message = answer.json()["message"]
        assert message.startswith("Property values were not valid: [")
        assert "PROPERTY_DOESNT_EXIST" in message and "INVALID_OPTION" in message
        assert hubspot.writes == []
        assert hubspot.objects["contacts"]["101"]["lead_score"] == "10"

    def test_an_update_is_kept_and_read_back_as_text(self, hs: httpx.Client) -> None:
        """A number written comes back as a string from the single-record GET."""
        answer = hs.post(UPDATE, json={"inputs": [
            {"id": "101", "properties": {"lead_score": 42, "lead_grade": "A"}}]})
        assert answer.status_code == 200
        got = hs.get("/crm/v3/objects/contacts/101", params={"properties": "lead_score,lead_grade"})
        properties = got.json()["properties"]
        assert (properties["lead_score"], properties["lead_grade"]) == ("42", "A")
        assert properties["hs_object_id"] == "101"
        assert hs.get("/crm/v3/objects/contacts/5").json()["category"] == "OBJECT_NOT_FOUND"

    def test_the_burst_limit_answers_429_with_the_rate_limit_headers(
        self, hs: httpx.Client
    ) -> None:
        """Past `burst` requests in the window: 429 RATE_LIMIT, Remaining 0, no Retry-After."""
        statuses = [hs.get("/crm/v3/objects/contacts/101").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = hs.get("/crm/v3/objects/contacts/101")
        assert limited.json()["errorType"] == "RATE_LIMIT"
        assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert limited.headers["X-HubSpot-RateLimit-Max"] == "5"
        assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert "Retry-After" not in limited.headers

    def test_scripted_faults_come_first_then_normal_service(
        self, hubspot: HubSpotStandIn, hs: httpx.Client
    ) -> None:
        """fail_next gives a 429 with Retry-After, a 503, and a delay that times a client out."""
        hubspot.fail_next(429, retry_after=2)
        hubspot.fail_next(503)
        hubspot.fail_next(200, delay=0.5)
        first = hs.get("/crm/v3/objects/contacts/101")
        assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
        assert hs.get("/crm/v3/objects/contacts/101").status_code == 503
        with pytest.raises(httpx.ReadTimeout):
            hs.get("/crm/v3/objects/contacts/101", timeout=0.1)
        assert hs.get("/crm/v3/objects/contacts/101").status_code == 200

    def test_another_process_reaches_the_stand_in(self, hubspot: HubSpotStandIn) -> None:
        """A separate process (as `qualify serve` will be) can call the URL `serving` yields."""
        script = ("import httpx, sys; print(httpx.get(sys.argv[1] + '/crm/v3/objects/contacts/101',"
                  " headers={'Authorization': 'Bearer ' + sys.argv[2]}).json()['id'])")
        with serving(hubspot.app) as url:
            done = subprocess.run([sys.executable, "-c", script, url, TOKEN],
                                  capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout.strip() == "101"
        assert hubspot.requests == [("GET", "/crm/v3/objects/contacts/101", 200)]


@pytest.fixture
def pipedrive() -> PipedriveStandIn:
    return PipedriveStandIn(TOKEN, user_id=7, company_id=9)


@pytest.fixture
def pd(pipedrive: PipedriveStandIn) -> Iterator[httpx.Client]:
    with serving(pipedrive.app) as url, httpx.Client(
        base_url=url, headers={"x-api-token": TOKEN}, timeout=5
    ) as client:
        yield client


class TestPipedrive:
    def test_the_token_is_checked_in_the_header_or_the_query(
        self, pipedrive: PipedriveStandIn, pd: httpx.Client
    ) -> None:
        """A wrong token gets the gateway's 401; the header and api_token both work."""
        refused = pd.get("/v1/users/me", headers={"x-api-token": "wrong"})
        assert refused.status_code == 401
        assert refused.json() == {
            "success": False, "error": "unauthorized access", "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com"}
        with httpx.Client(base_url=str(pd.base_url)) as bare:
            me = bare.get("/v1/users/me", params={"api_token": TOKEN}).json()["data"]
        assert (me["id"], me["company_id"]) == (7, 9)

    def test_custom_field_keys_resolve_from_the_fields_endpoints(
        self, pipedrive: PipedriveStandIn, pd: httpx.Client
    ) -> None:
        """A custom field is listed with a 40-hex key, edit_flag true, and its options' ids."""
        key = pipedrive.add_field("deal", "Qualify tier", "enum", options=["Hot", "Cold"])
        answer = pd.get("/v1/dealFields").json()
        assert answer["success"] and not answer["additional_data"]["pagination"][
            "more_items_in_collection"]
        field = next(f for f in answer["data"] if f["name"] == "Qualify tier")
        assert re.fullmatch(r"[0-9a-f]{40}", field["key"]) and field["key"] == key
        assert field["edit_flag"] and [o["label"] for o in field["options"]] == ["Hot", "Cold"]
        assert all(isinstance(o["id"], int) for o in field["options"])
        assert all(not f["edit_flag"] for f in pd.get("/v1/personFields").json()["data"])

    def test_a_v2_patch_is_kept_and_merges_custom_fields(
        self, pipedrive: PipedriveStandIn, pd: httpx.Client
    ) -> None:
        """PATCH /api/v2/persons sets typed custom fields, keeps the others, and is logged."""
        score = pipedrive.add_field("person", "Lead score", "double")
        tier = pipedrive.add_field("person", "Tier", "enum", options=["Hot", "Cold"])
        note = pipedrive.add_field("person", "Note", "varchar")
        pipedrive.add_person(1, "Ada Lovelace", **{note: "keep me"})
        hot = pipedrive.option_id("person", tier, "Hot")
        body = {"custom_fields": {score: 87.5, tier: hot}}
        answer = pd.patch("/api/v2/persons/1", json=body)
        assert answer.status_code == 200
        assert pd.get("/api/v2/persons/1").json()["data"]["custom_fields"] == {
            note: "keep me", score: 87.5, tier: hot}
        assert pipedrive.writes == [{"entity": "person", "id": 1, "body": body}]

    def test_bad_values_and_unknown_ids_are_refused(self, pipedrive: PipedriveStandIn,
                                                    pd: httpx.Client) -> None:
        """An enum sent as a string is a 400; an unknown deal is a 404; nothing is written."""
        tier = pipedrive.add_field("deal", "Tier", "enum", options=["Hot"])
        pipedrive.add_deal(5, "Big deal")
        bad = pd.patch("/api/v2/deals/5", json={"custom_fields": {tier: "Hot"}})
        assert bad.status_code == 400 and bad.json()["success"] is False
        missing = pd.get("/api/v2/deals/6")
        assert missing.status_code == 404 and missing.json()["data"] is None
        assert pipedrive.writes == []

    def test_a_lead_takes_deal_custom_fields_at_the_top_level(
        self, pipedrive: PipedriveStandIn, pd: httpx.Client
    ) -> None:
        """PATCH /v1/leads/{uuid} with a deal-field hash key is kept; null unsets it."""
        verdict = pipedrive.add_field("deal", "Verdict", "varchar")
        lead = pipedrive.add_lead("Inbound", person_id=1)
        assert pd.patch(f"/v1/leads/{lead}", json={verdict: "hot"}).json()["data"][verdict] == "hot"
        assert verdict not in pd.patch(f"/v1/leads/{lead}", json={verdict: None}).json()["data"]
        gone = "00000000-0000-4000-8000-000000000000"
        assert pd.get(f"/v1/leads/{gone}").status_code == 404

    def test_a_scripted_429_carries_the_rate_limit_headers(
        self, pipedrive: PipedriveStandIn, pd: httpx.Client
    ) -> None:
        """fail_next(429) answers with x-ratelimit-* (remaining 0) and the Retry-After asked for."""
        pipedrive.fail_next(429, retry_after=1)
        limited = pd.get("/v1/users/me")
        assert limited.status_code == 429 and limited.json()["success"] is False
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert limited.headers["x-ratelimit-limit"] == "40"
        assert limited.headers["Retry-After"] == "1"
        assert pd.get("/v1/users/me").headers["x-ratelimit-remaining"] == "39"
