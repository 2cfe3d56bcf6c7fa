"""Zoho CRM and Dataverse webhooks (a static token, no signature) and HubSpot's older v1/v2
signatures, through the service."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from qualify import Engine
from service.main import create_app
from service.signatures import hubspot_legacy_signature
from tests.service.helpers import HUBSPOT_SECRET, TestClient, dumps, secured

ZOHO_TOKEN, DYNAMICS_TOKEN = "zoho-static-token", "dataverse-webhook-key"
AS_OF = "2026-01-01"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(secured(zoho_tokens=["old-zoho", ZOHO_TOKEN],
                             dynamics_tokens=[DYNAMICS_TOKEN]))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _score(engine: Engine, lead: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = engine.score(lead, as_of=dt.date.fromisoformat(AS_OF)).model_dump(
        mode="json")
    return out


ZOHO_FORM = {"id": "4876876000000624001", "Budget": "25000", "Designation": "CEO",
             "Lead_Status": "Contacted", "Sentiment": "positive", "Needs_Product": "true"}
ZOHO_LEAD = {"lead_id": "4876876000000624001", "budget": "25000", "contact_role": "executive",
             "stage": "contacted", "sentiment": "positive", "needs_product": "true"}


class TestZoho:
    def test_a_form_body_with_the_token_header(self, client: TestClient,
                                               engine: Engine) -> None:
        """Zoho's default body is form-encoded; Designation is read by patterns, Lead_Status
        onto the stage."""
        r = client.post(f"/v1/webhooks/zoho?as_of={AS_OF}", content=urlencode(ZOHO_FORM),
                        headers={"X-Qualify-Token": ZOHO_TOKEN,
                                 "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] == _score(engine, ZOHO_LEAD)

    @pytest.mark.parametrize("where", ["query", "bearer", "old-token"])
    def test_the_token_in_the_url_or_as_bearer(self, client: TestClient, engine: Engine,
                                               where: str) -> None:
        """A URL parameter, a bearer header, a token being rotated out: all accepted."""
        url, headers = f"/v1/webhooks/zoho?as_of={AS_OF}", {}
        if where == "query":
            url += f"&token={ZOHO_TOKEN}"
        elif where == "bearer":
            headers["Authorization"] = f"Bearer {ZOHO_TOKEN}"
        else:
            headers["X-Qualify-Token"] = "old-zoho"
        r = client.post(url, content=dumps(ZOHO_FORM), headers=headers)
        assert r.json()["verdict"] == _score(engine, ZOHO_LEAD)

    @pytest.mark.parametrize("headers", [{}, {"X-Qualify-Token": "wrong"},
                                         {"Authorization": "Basic eDp5"}])
    def test_without_the_token_401(self, client: TestClient,
                                   headers: dict[str, str]) -> None:
        """No token, a wrong one: 401, nothing scored."""
        r = client.post("/v1/webhooks/zoho", content=urlencode(ZOHO_FORM), headers=headers)
        assert r.status_code == 401
        assert "verdict" not in r.json()

    @pytest.mark.parametrize(("body", "message"), [
        (b"id=1&id=2", "given twice"),
        (b"\xff=1", "not UTF-8"),
        (b"id", "malformed form"),
    ])
    def test_a_malformed_form_is_400(self, client: TestClient, body: bytes,
                                     message: str) -> None:
        """A field given twice, bytes that are not UTF-8, a broken form: 400 saying so."""
        r = client.post("/v1/webhooks/zoho", content=body,
                        headers={"X-Qualify-Token": ZOHO_TOKEN})
        assert (r.status_code, r.json()["error"]) == (400, "malformed_form")
        assert message in r.json()["message"]


def context(attributes: list[dict[str, Any]], *, message: str = "Update",
            formatted: list[dict[str, Any]] | None = None,
            operation: str = "a1b2c3d4-0000-0000-0000-000000000001") -> dict[str, Any]:
    """A Dataverse RemoteExecutionContext (the shape of Microsoft's webhook sample)."""
    lead_id = "7d2c6c4e-5a3b-ee11-be6e-000d3a5a1b2c"
    entity = {"LogicalName": "lead", "Id": lead_id, "Attributes": attributes,
              "FormattedValues": formatted or [], "KeyAttributes": [], "RowVersion": "1"}
    return {"BusinessUnitId": "b0c1", "CorrelationId": "c0", "Depth": 1,
            "InitiatingUserId": "u1", "InputParameters": [{"key": "Target", "value": entity}],
            "IsExecutingOffline": False, "MessageName": message, "Mode": 1,
            "OperationCreatedOn": "/Date(1767225600000)/", "OperationId": operation,
            "OrganizationId": "o1", "OrganizationName": "acme", "OutputParameters": [],
            "PrimaryEntityId": lead_id, "PrimaryEntityName": "lead",
            "PostEntityImages": [], "PreEntityImages": [], "RequestId": "r1", "Stage": 40,
            "UserId": "u1"}


DYNAMICS = context([
    {"key": "budgetamount", "value": {"__type": "Money:http://schemas.microsoft.com/xrm/2011/"
                                      "Contracts", "Value": 25000.0}},
    {"key": "need", "value": {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/"
                              "2011/Contracts", "Value": 0}},
    {"key": "purchasetimeframe", "value": {"__type": "OptionSetValue:http://schemas."
                                           "microsoft.com/xrm/2011/Contracts", "Value": 1}},
    {"key": "decisionmaker", "value": True},
    {"key": "jobtitle", "value": "VP Sales"},
    {"key": "parentaccountid", "value": {"__type": "EntityReference:http://schemas.microsoft"
                                         ".com/xrm/2011/Contracts", "Id": "a1",
                                         "LogicalName": "account", "Name": "Acme"}},
], formatted=[{"key": "need", "value": "Must have"},
              {"key": "purchasetimeframe", "value": "This Quarter"}])
DYNAMICS_LEAD = {"lead_id": "7d2c6c4e-5a3b-ee11-be6e-000d3a5a1b2c", "budget": 25000,
                 "needs_product": True, "purchase_timeline_days": 90,
                 "is_decision_maker": True, "contact_role": "executive"}


class TestDynamics:
    def test_a_context_is_read_as_people_see_it(self, client: TestClient,
                                                engine: Engine) -> None:
        """Money by its value, option sets by their labels (mapped by the profile), the key
        as ?code= (Dataverse's WebhookKey)."""
        r = client.post(f"/v1/webhooks/dynamics?as_of={AS_OF}&code={DYNAMICS_TOKEN}",
                        content=dumps(DYNAMICS))
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] == _score(engine, DYNAMICS_LEAD)

    def test_a_retry_of_one_operation_is_recognised(self, client: TestClient) -> None:
        """Dataverse retries after a 502-504 with the same OperationId: the same answer."""
        url = f"/v1/webhooks/dynamics?code={DYNAMICS_TOKEN}"
        first = client.post(url, content=dumps(DYNAMICS)).json()
        again = client.post(url, content=dumps(DYNAMICS)).json()
        assert (first["replayed"], again["replayed"]) == (False, True)
        assert first["verdict"] == again["verdict"]

    def test_a_delete_is_skipped(self, client: TestClient) -> None:
        """A Delete message has no record to score: 200, the reason."""
        r = client.post(f"/v1/webhooks/dynamics?code={DYNAMICS_TOKEN}",
                        content=dumps(context([], message="Delete", operation="op-2")))
        assert (r.status_code, r.json()["scored"]) == (200, False)
        assert "'Delete' message" in r.json()["reason"]

    def test_a_post_image_completes_the_target(self, client: TestClient,
                                               engine: Engine) -> None:
        """The target holds the changed columns only; the post-image has the whole row."""
        changed = context([{"key": "jobtitle", "value": "VP Sales"}], operation="op-3")
        changed["PostEntityImages"] = [{"key": "after", "value": {
            "LogicalName": "lead", "Attributes": DYNAMICS["InputParameters"][0]["value"][
                "Attributes"], "FormattedValues": DYNAMICS["InputParameters"][0]["value"][
                "FormattedValues"]}}]
        r = client.post(f"/v1/webhooks/dynamics?as_of={AS_OF}&code={DYNAMICS_TOKEN}",
                        content=json.dumps(changed))
        assert r.json()["verdict"] == _score(engine, DYNAMICS_LEAD)


class TestHubSpotLegacySignatures:
    BODY = dumps({"hs_object_id": "51", "budget": "25000", "jobtitle": "CEO"})

    @pytest.mark.parametrize("version", ["v1", "v2"])
    def test_v1_and_v2_are_accepted(self, client: TestClient, version: str) -> None:
        """X-HubSpot-Signature with its version (v1 when absent) authenticates."""
        url = "http://testserver/v1/webhooks/hubspot"
        signature = hubspot_legacy_signature(version, HUBSPOT_SECRET, "POST", url, self.BODY)
        r = client.post("/v1/webhooks/hubspot", content=self.BODY, headers={
            "X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version})
        assert (r.status_code, r.json()["scored"]) == (200, True)

    def test_a_wrong_legacy_signature_is_401(self, client: TestClient) -> None:
        """A v1 signature over another body: 401."""
        signature = hubspot_legacy_signature("v1", HUBSPOT_SECRET, "POST", "", b"{}")
        r = client.post("/v1/webhooks/hubspot", content=self.BODY,
                        headers={"X-HubSpot-Signature": signature})
        assert r.status_code == 401
