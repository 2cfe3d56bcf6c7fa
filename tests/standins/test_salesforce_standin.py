"""The Salesforce stand-in keeps the documented contract, driven over real HTTP as qualify will."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.standins.salesforce import SalesforceStandIn
from tests.standins.server import serving

CLIENT_ID = "3MVG9standin.consumer.key"
CLIENT_SECRET = "standin-consumer-secret"
LEAD = "00Q5g00000AbCdEEAZ"
OTHER_LEAD = "00Q5g00000AbCdFEAZ"
COLLECTION = "/services/data/v60.0/composite/sobjects"


@pytest.fixture
def salesforce() -> SalesforceStandIn:
    stand_in = SalesforceStandIn(CLIENT_ID, CLIENT_SECRET)
    stand_in.add("Lead", LEAD, LastName="Lovelace", Company="Analytical", Lead_Score__c=None)
    stand_in.add("Lead", OTHER_LEAD, LastName="Hopper", Company="Navy")
    stand_in.define("Lead", "Qualify_Verdict__c", "Email")
    return stand_in


@pytest.fixture
def sf(salesforce: SalesforceStandIn) -> Iterator[httpx.Client]:
    with serving(salesforce.app) as url, httpx.Client(base_url=url, timeout=5) as client:
        salesforce.instance_url = url
        yield client


def login(client: httpx.Client, secret: str = CLIENT_SECRET) -> httpx.Response:
    return client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": secret})


def bearer(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client).json()['access_token']}"}


def lead(id: str, **fields: object) -> dict[str, object]:
    return {"attributes": {"type": "Lead"}, "id": id, **fields}


class TestToken:
    def test_the_client_credentials_flow_issues_a_bearer_token_for_this_instance(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """The documented fields; instance_url is the stand-in; the token works there."""
        answer = login(sf)
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"access_token", "signature", "scope", "instance_url", "id",
                             "token_type", "issued_at"}
        assert body["token_type"] == "Bearer" and body["instance_url"] == str(sf.base_url)
        assert body["issued_at"].isdigit() and "/id/00D" in body["id"]
        got = sf.get(f"{body['instance_url']}/services/data/v60.0/sobjects/Lead/{LEAD}",
                     headers={"Authorization": f"Bearer {body['access_token']}"})
        assert got.status_code == 200 and got.json()["LastName"] == "Lovelace"
        assert salesforce.tokens_issued == 1

    def test_a_bad_secret_client_id_or_grant_is_refused_with_the_oauth_error(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """400 invalid_client, invalid_client_id and unsupported_grant_type; no token issued."""
        assert login(sf, secret="wrong").json() == {
            "error": "invalid_client", "error_description": "invalid client credentials"}
        wrong_id = sf.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"})
        assert (wrong_id.status_code, wrong_id.json()["error"]) == (400, "invalid_client_id")
        as_json = sf.post("/services/oauth2/token", json={
            "grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET})
        assert (as_json.status_code, as_json.json()["error"]) == (400, "unsupported_grant_type")
        assert salesforce.tokens_issued == 0
        assert [s for *_, s in salesforce.requests] == [400, 400, 400]

    def test_an_expired_token_gets_invalid_session_id_and_writes_nothing(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """After expire_tokens, a call gets 401 [{message, errorCode: INVALID_SESSION_ID}]."""
        headers = bearer(sf)
        salesforce.expire_tokens()
        answer = sf.patch(COLLECTION, headers=headers, json={
            "allOrNone": False, "records": [lead(LEAD, Lead_Score__c=90)]})
        assert answer.status_code == 401
        assert answer.json() == [{"message": "Session expired or invalid",
                                  "errorCode": "INVALID_SESSION_ID"}]
        assert sf.get(f"/services/data/v60.0/sobjects/Lead/{LEAD}").status_code == 401
        assert salesforce.writes == []

    def test_renewing_after_expiry_works_and_the_ttl_is_kept(self) -> None:
        """A fresh token works after expire_tokens; a token_ttl of 0.2 s dies on its own."""
        salesforce = SalesforceStandIn(CLIENT_ID, CLIENT_SECRET, token_ttl=0.2)
        salesforce.add("Lead", LEAD, LastName="Lovelace")
        with serving(salesforce.app) as url, httpx.Client(base_url=url, timeout=5) as client:
            path = f"/services/data/v60.0/sobjects/Lead/{LEAD}"
            first = bearer(client)
            assert client.get(path, headers=first).status_code == 200
            salesforce.expire_tokens()
            assert client.get(path, headers=first).status_code == 401
            second = bearer(client)
            assert client.get(path, headers=second).status_code == 200
            time.sleep(0.3)
            assert client.get(path, headers=second).status_code == 401
            assert client.get(path, headers=bearer(client)).status_code == 200
        assert salesforce.tokens_issued == 3

    def test_a_scripted_fault_on_the_token_endpoint_is_an_oauth_error(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """fail_next(503) answers the next login with 503 unknown_error, then logins work."""
        salesforce.fail_next(503)
        failed = login(sf)
        assert (failed.status_code, failed.json()["error"]) == (503, "unknown_error")
        assert login(sf).status_code == 200


class TestComposite:
    def test_an_update_gives_one_result_per_record_in_request_order(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """Success, wrong-type id, unknown id and missing id each get their SaveResult; 200."""
        answer = sf.patch(COLLECTION, headers=bearer(sf), json={"allOrNone": False, "records": [
            lead(LEAD, Lead_Score__c=87.5, qualify_verdict__c="hot"),
            lead("0015g00000AbCdEEAZ", Lead_Score__c=1),
            lead("00Q5g00000ZZZZZEAZ", Lead_Score__c=2),
            {"attributes": {"type": "Lead"}, "Lead_Score__c": 3}]})
        assert answer.status_code == 200
        ok, wrong_type, gone, no_id = answer.json()
        assert ok == {"id": LEAD, "success": True, "errors": []}
        assert "id" not in wrong_type and wrong_type["errors"] == [{
            "statusCode": "MALFORMED_ID", "fields": ["Id"],
            "message": "Lead ID: id value of incorrect type: 0015g00000AbCdEEAZ"}]
        assert gone["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
        assert no_id["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
        assert salesforce.writes == [{"sobject_type": "Lead", "id": LEAD, "version": "v60.0",
                                      "fields": {"Lead_Score__c": 87.5,
                                                 "Qualify_Verdict__c": "hot"}}]
        assert salesforce.records["Lead"][LEAD]["Qualify_Verdict__c"] == "hot"
        assert "Sforce-Limit-Info" in answer.headers

    def test_all_or_none_rolls_back_the_valid_records(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """With allOrNone, a good record reports ALL_OR_NONE_OPERATION_ROLLED_BACK, none is kept."""
        answer = sf.patch(COLLECTION, headers=bearer(sf), json={"allOrNone": True, "records": [
            lead(LEAD, Lead_Score__c=50), lead("00Q5g00000ZZZZZEAZ", Lead_Score__c=2)]})
        assert answer.status_code == 200
        kept, gone = answer.json()
        assert kept["id"] == LEAD and kept["success"] is False
        assert kept["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert gone["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
        assert salesforce.writes == [] and salesforce.records["Lead"][LEAD]["Lead_Score__c"] is None

    def test_more_than_200_records_are_refused_as_a_whole(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """201 records get 400 EXCEEDED_ID_LIMIT; 200 are accepted."""
        headers = bearer(sf)
        too_many = sf.patch(COLLECTION, headers=headers, json={
            "records": [lead(LEAD, Lead_Score__c=i) for i in range(201)]})
        assert too_many.status_code == 400
        assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
        assert "cannot submit more than 200 records" in too_many.json()[0]["message"]
        assert salesforce.writes == []
        enough = sf.patch(COLLECTION, headers=headers, json={
            "records": [lead(LEAD, Lead_Score__c=i) for i in range(200)]})
        assert enough.status_code == 200 and len(enough.json()) == 200
        assert salesforce.records["Lead"][LEAD]["Lead_Score__c"] == 199

    def test_an_unknown_field_fails_the_whole_call(
        self, salesforce: SalesforceStandIn, sf: httpx.Client
    ) -> None:
        """400 INVALID_FIELD "No such column 'X' on sobject of type Lead"; nothing written."""
        answer = sf.patch(COLLECTION, headers=bearer(sf), json={"records": [
            lead(OTHER_LEAD, Lead_Score__c=10), lead(LEAD, Not_A_Field__c=1)]})
        assert answer.status_code == 400
        assert answer.json() == [{"errorCode": "INVALID_FIELD", "message":
                                  "No such column 'Not_A_Field__c' on sobject of type Lead"}]
        assert salesforce.writes == []

    def test_reads_show_what_was_written(self, sf: httpx.Client) -> None:
        """GET one record (with fields=, or all), the collection GET with a null, and the 404s."""
        headers = bearer(sf)
        sf.patch(COLLECTION, headers=headers, json={"records": [lead(LEAD, Lead_Score__c=42)]})
        one = sf.get(f"/services/data/v60.0/sobjects/Lead/{LEAD[:15]}", headers=headers,
                     params={"fields": "lead_score__c,LastName"}).json()
        assert one == {"attributes": {"type": "Lead",
                                      "url": f"/services/data/v60.0/sobjects/Lead/{LEAD}"},
                       "Lead_Score__c": 42, "LastName": "Lovelace", "Id": LEAD}
        assert set(sf.get(f"/services/data/v60.0/sobjects/Lead/{LEAD}", headers=headers).json()
                   ) >= {"attributes", "Id", "Company", "Email", "Qualify_Verdict__c"}
        many = sf.get(f"{COLLECTION}/Lead", headers=headers, params={
            "ids": f"{LEAD},00Q5g00000ZZZZZEAZ", "fields": "Id,Lead_Score__c"}).json()
        assert many[0]["Lead_Score__c"] == 42 and many[1] is None
        bad_field = sf.get(f"/services/data/v60.0/sobjects/Lead/{LEAD}", headers=headers,
                           params={"fields": "Nope__c"})
        assert (bad_field.status_code, bad_field.json()[0]["errorCode"]) == (400, "INVALID_FIELD")
        missing = sf.get("/services/data/v60.0/sobjects/Lead/00Q5g00000ZZZZZEAZ", headers=headers)
        assert (missing.status_code, missing.json()[0]["errorCode"]) == (404, "NOT_FOUND")
        assert sf.get(f"/services/data/v99.0/sobjects/Lead/{LEAD}",
                      headers=headers).status_code == 404

    def test_the_api_allocation_and_scripted_limits_answer_403_request_limit_exceeded(
        self,
    ) -> None:
        """Past daily_limit calls, and for a scripted 429, 403 REQUEST_LIMIT_EXCEEDED."""
        salesforce = SalesforceStandIn(CLIENT_ID, CLIENT_SECRET, daily_limit=2)
        salesforce.add("Lead", LEAD, LastName="Lovelace")
        with serving(salesforce.app) as url, httpx.Client(base_url=url, timeout=5) as client:
            headers, path = bearer(client), f"/services/data/v60.0/sobjects/Lead/{LEAD}"
            first = client.get(path, headers=headers)
            assert first.headers["Sforce-Limit-Info"] == "api-usage=1/2"
            assert client.get(path, headers=headers).status_code == 200
            limited = client.get(path, headers=headers)
            assert limited.status_code == 403
            assert limited.json() == [{"message": "TotalRequests Limit exceeded.",
                                       "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
            assert limited.headers["Sforce-Limit-Info"] == "api-usage=2/2"
        sf_scripted = SalesforceStandIn(CLIENT_ID, CLIENT_SECRET)
        sf_scripted.fail_next(429, retry_after=3)
        with serving(sf_scripted.app) as url, httpx.Client(base_url=url, timeout=5) as client:
            scripted = client.get("/services/data/v60.0/sobjects/Lead/x")
            assert (scripted.status_code, scripted.headers["Retry-After"]) == (403, "3")
            assert scripted.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
