"""Salesforce end to end in one process: an Outbound Message in, the SOAP Ack out, the fields
written through the REST API of a Salesforce stand-in (tests/standins/salesforce.py).

A resent message writes nothing twice, a foreign organisation and a hostile XML document are
refused with nothing queued, an expired token is renewed, and a per-record error fails only
its record."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest

from qualify import Engine, default_rules_path, load_profile
from service.main import create_app
from tests.crm.conftest import wait_until
from tests.service.helpers import ADMIN_KEY, TestClient, bearer, secured
from tests.standins import serving
from tests.standins.salesforce import SalesforceStandIn

ORG = "00D5g000004ABCDEAA"
CLIENT_ID, CLIENT_SECRET = "3MVG9-qualify-test", "sf-client-secret"
HOOK = "/v1/webhooks/salesforce"
QUALIFY_FIELDS = ("Qualify_Score__c", "Qualify_Grade__c", "Qualify_Status__c",
                  "Qualify_Next_Step__c", "Qualify_Reason__c", "Qualify_Rulebook__c",
                  "Qualify_Scored_At__c")
LEAD = {"Budget__c": "25000", "Title": "Founder & CEO", "Needs_Product__c": "true",
        "Sentiment__c": "positive", "Status": "Working - Contacted", "AnnualRevenue": None,
        "Company": "Acme Ltd"}


def message(notes: list[tuple[str, str, dict[str, Any]]], org: str = ORG,
            kind: str = "Lead") -> bytes:
    """An Outbound Message as Salesforce sends it (the shape of ../shared/samples/crm)."""
    parts = []
    for note_id, record_id, fields in notes:
        values = "".join(
            f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{escape(str(v))}</sf:{k}>"
            for k, v in {"Id": record_id, **fields}.items())
        parts.append(f"<Notification><Id>{note_id}</Id><sObject xsi:type=\"sf:{kind}\" "
                     f'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{values}</sObject>'
                     "</Notification>")
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/'
            'XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g0000008OJqAAM</ActionId>"
            '<SessionId xsi:nil="true"/><EnterpriseUrl>https://acme.my.salesforce.com/services/'
            "Soap/c/60.0/00D5g000004ABCD</EnterpriseUrl><PartnerUrl>https://acme.my.salesforce"
            ".com/services/Soap/u/60.0/00D5g000004ABCD</PartnerUrl>"
            + "".join(parts) + "</notifications></soapenv:Body></soapenv:Envelope>").encode()


@pytest.fixture
def sf() -> Iterator[tuple[SalesforceStandIn, TestClient]]:
    crm = SalesforceStandIn(CLIENT_ID, CLIENT_SECRET)
    crm.define("Lead", *QUALIFY_FIELDS)
    with serving(crm.app) as url:
        crm.instance_url = url
        app = create_app(secured(salesforce_org_ids=[ORG[:15]], salesforce_client_id=CLIENT_ID,
                                 salesforce_client_secret=CLIENT_SECRET,
                                 salesforce_login_url=url, outbox_poll=0.05))
        with TestClient(app) as client:
            yield crm, client


def _post(client: TestClient, body: bytes) -> Any:
    return client.post(HOOK, content=body, headers={"Content-Type": "text/xml; charset=utf-8",
                                                    "SOAPAction": '""'})



def _expected(engine: Engine, fields: dict[str, Any], record_id: str) -> Any:
    profile = load_profile(default_rules_path().parent / "mappings" / "salesforce.yaml",
                           engine.rulebook)
    return engine.score(profile.apply({"Id": record_id, **fields}), as_of=dt.date.today())


class TestOutboundMessage:
    def test_acknowledged_then_written_back(self, sf: tuple[SalesforceStandIn, TestClient],
                                            engine: Engine) -> None:
        """The Ack comes at once as SOAP; the lead then holds its verdict's fields."""
        crm, client = sf
        crm.add("Lead", "00Q5g00000AA001EAA", **{k: v for k, v in LEAD.items() if v})
        r = _post(client, message([("04l5g000000AAA1AAA", "00Q5g00000AA001EAA", LEAD)]))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/xml")
        assert b"<Ack>true</Ack>" in r.content
        assert b"notificationsResponse" in r.content
        wait_until(lambda: len(crm.writes) == 1)
        verdict = _expected(engine, LEAD, "00Q5g00000AA001EAA")
        fields = crm.records["Lead"]["00Q5g00000AA001EAA"]
        assert (fields["Qualify_Score__c"], fields["Qualify_Grade__c"]) == (verdict.score,
                                                                            verdict.grade)
        assert fields["Qualify_Status__c"] == verdict.status

    def test_a_resent_message_writes_nothing_twice(
            self, sf: tuple[SalesforceStandIn, TestClient]) -> None:
        """Salesforce resends for 24 hours, sometimes twice: Ack again, no second write."""
        crm, client = sf
        crm.add("Lead", "00Q5g00000AA002EAA", Company="Acme")
        body = message([("04l5g000000AAA2AAA", "00Q5g00000AA002EAA", LEAD)])
        assert b"<Ack>true</Ack>" in _post(client, body).content
        wait_until(lambda: len(crm.writes) == 1)
        assert b"<Ack>true</Ack>" in _post(client, body).content
        time.sleep(0.3)
        assert len(crm.writes) == 1

    def test_a_foreign_organisation_is_refused(
            self, sf: tuple[SalesforceStandIn, TestClient]) -> None:
        """Another org's message: 403, no Ack, nothing queued."""
        _, client = sf
        r = _post(client, message([("04l5g000000AAA3AAA", "00Q5g00000AA003EAA", LEAD)],
                                  org="00D000000000001AAA"))
        assert r.status_code == 403
        assert b"Ack" not in r.content
        assert client.get("/v1/outbox", headers=bearer(ADMIN_KEY)).json()["jobs"] == []

    @pytest.mark.parametrize(("body", "reason"), [
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
         b'"&lol;&lol;&lol;&lol;">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap'
         b'.org/soap/envelope/"><soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>',
         "the XML is refused"),
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
         b"<r>&x;</r>", "the XML is refused"),
        (b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
         "the XML is refused"),
        # A valid message behind a DTD: refused for the DTD itself, not for its shape.
        (message([("04l5g000000AAA9AAA", "00Q5g00000AA009EAA", LEAD)]).replace(
            b"?>", b"?><!DOCTYPE soapenv:Envelope>", 1), "the XML is refused"),
        (message([("04l5g000000AAA9AAA", "00Q5g00000AA009EAA", LEAD)]).replace(
            b"?>", b'?><!DOCTYPE soapenv:Envelope [<!ENTITY c "Acme">]>', 1),
         "the XML is refused"),
        (b"<soapenv:Envelope", "malformed XML"),
        (b"", "empty"),
        (b'<r xmlns="urn:x">not an outbound message</r>', "not a Salesforce Outbound Message"),
    ], ids=["entity-expansion", "external-entity", "external-dtd", "dtd-on-a-valid-message",
            "entity-on-a-valid-message", "truncated", "empty", "not-soap"])
    def test_hostile_or_malformed_xml_is_400(
            self, sf: tuple[SalesforceStandIn, TestClient], body: bytes, reason: str) -> None:
        """DTDs, entities and external references are refused, as is broken XML: 400 with
        the reason, nothing queued."""
        _, client = sf
        r = _post(client, body)
        assert (r.status_code, r.json()["error"]) == (400, "malformed_xml")
        assert reason in r.json()["message"]
        assert client.get("/v1/outbox", headers=bearer(ADMIN_KEY)).json()["jobs"] == []

    def test_an_expired_token_is_renewed(self, sf: tuple[SalesforceStandIn, TestClient]) -> None:
        """A token that expires between two messages: INVALID_SESSION_ID, a new token, the
        write done."""
        crm, client = sf
        for i in (4, 5):
            crm.add("Lead", f"00Q5g00000AA00{i}EAA", Company="Acme")
        _post(client, message([("04l5g000000AAA4AAA", "00Q5g00000AA004EAA", LEAD)]))
        wait_until(lambda: len(crm.writes) == 1)
        crm.expire_tokens()
        _post(client, message([("04l5g000000AAA5AAA", "00Q5g00000AA005EAA", LEAD)]))
        wait_until(lambda: len(crm.writes) == 2)
        assert crm.tokens_issued == 2

    def test_a_deleted_lead_fails_only_itself(
            self, sf: tuple[SalesforceStandIn, TestClient]) -> None:
        """Composite answers per record: the deleted lead is dead with Salesforce's error,
        the other written."""
        crm, client = sf
        crm.add("Lead", "00Q5g00000AA006EAA", Company="Acme")
        _post(client, message([("04l5g000000AAA6AAA", "00Q5g00000AA006EAA", LEAD),
                               ("04l5g000000AAA7AAA", "00Q5g00000AA007EAA", LEAD)]))
        wait_until(lambda: len(client.get("/v1/outbox?state=dead",
                                     headers=bearer(ADMIN_KEY)).json()["jobs"]) == 1)
        (dead,) = client.get("/v1/outbox?state=dead", headers=bearer(ADMIN_KEY)).json()["jobs"]
        assert dead["object_id"] == "00Q5g00000AA007EAA"
        assert "ENTITY_IS_DELETED" in dead["last_error"]
        assert [w["id"] for w in crm.writes] == ["00Q5g00000AA006EAA"]

    def test_a_missing_custom_field_is_dead_with_salesforce_error(
            self, sf: tuple[SalesforceStandIn, TestClient]) -> None:
        """A Qualify_* field not created in Salesforce: the whole call is refused
        (INVALID_FIELD); the record is dead with the field named."""
        crm, client = sf
        crm.fields["Lead"].pop("qualify_reason__c")
        crm.add("Lead", "00Q5g00000AA008EAA", Company="Acme")
        _post(client, message([("04l5g000000AAA8AAA", "00Q5g00000AA008EAA", LEAD)]))
        wait_until(lambda: len(client.get("/v1/outbox?state=dead",
                                     headers=bearer(ADMIN_KEY)).json()["jobs"]) == 1)
        (dead,) = client.get("/v1/outbox?state=dead", headers=bearer(ADMIN_KEY)).json()["jobs"]
        assert "Qualify_Reason__c" in dead["last_error"]

    def test_the_shared_sample_is_acknowledged_and_skipped(
            self, sf: tuple[SalesforceStandIn, TestClient], shared_dir: Any) -> None:
        """The real sample (a custom object, another org): refused for its org; with its org
        allowed, acknowledged and skipped (State_Province__c is not scored)."""
        crm, client = sf
        body = (shared_dir / "samples" / "crm" / "salesforce_outbound_message.xml").read_bytes()
        assert _post(client, body).status_code == 403
        service = client.app.state.service  # type: ignore[attr-defined]
        service.webhooks.scheme("salesforce").orgs.add("00De0000000pmu1")
        r = _post(client, body)
        assert b"<Ack>true</Ack>" in r.content
        assert client.get("/v1/outbox", headers=bearer(ADMIN_KEY)).json()["jobs"] == []
        assert crm.writes == []
