"""Salesforce Outbound Messages: SOAP notifications in, a SOAP acknowledgement out.

A workflow rule or flow sends an Outbound Message (Setup > Process Automation > Outbound
Messages) to ``https://<your host>/v1/webhooks/salesforce``: a SOAP ``notifications``
document with ``OrganizationId``, ``ActionId``, ``SessionId`` (often nil), ``EnterpriseUrl``,
``PartnerUrl`` and up to 100 ``Notification`` elements, each an ``Id`` and an ``sObject``
(``xsi:type="sf:Lead"``) holding the fields chosen in Setup. Salesforce signs nothing: a
message is taken only from an organisation listed in QUALIFY_SALESFORCE_ORG_IDS (15- or
18-character ids), else refused (403) and nothing is queued. The listener must answer
``<Ack>true</Ack>`` once every notification is safe: until then Salesforce resends the
message for 24 hours, in any order and sometimes twice, so notifications are deduplicated on
their ``Id``. The document is parsed by defusedxml: a DTD, an entity or an external
reference is refused (400), as is anything that is not well-formed XML.

Reference: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm
"""

from __future__ import annotations

from typing import Any, ClassVar

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from fastapi import Request

from qualify import Profile
from service.errors import ApiError
from service.inbound.base import Event, Inbound, as_id
from service.settings import Settings

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
OUTBOUND = "{http://soap.sforce.com/2005/09/outbound}"
SOBJECT = "{urn:sobject.enterprise.soap.sforce.com}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
MAX_NOTIFICATIONS = 1000  # Salesforce sends at most 100 a message

ACK = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
       b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
       b"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>")


def _bad(message: str) -> ApiError:
    return ApiError(400, "malformed_xml", message)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class Salesforce:
    """Salesforce Outbound Messages (SOAP), from the organisations allowed."""

    name = "salesforce"
    setting = "QUALIFY_SALESFORCE_ORG_IDS"
    # Nothing signs it: the OrganizationId in the message is checked against the settings.
    security: ClassVar[list[dict[str, list[str]]]] = []

    def __init__(self, settings: Settings) -> None:
        self.orgs = {org.strip()[:15] for org in settings.salesforce_org_ids if org.strip()}

    def enabled(self) -> bool:
        return bool(self.orgs)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        """Nothing to check before the body is read: the organisation is checked in it."""

    def parse(self, body: bytes, content_type: str) -> Any:
        """The notifications as data: {organization, action, notifications: [{id, type,
        fields}]}. 400 for a document that is not a well-formed, harmless SOAP message."""
        if not body.strip():
            raise _bad("the request body is empty: send a SOAP Outbound Message")
        try:
            root = fromstring(body, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
        except DefusedXmlException as e:
            raise _bad(f"the XML is refused: {type(e).__name__} (no DTDs, entities or "
                       "external references)") from None
        except ParseError as e:
            raise _bad(f"malformed XML: {e}") from None
        notifications = root.find(f"{SOAP}Body/{OUTBOUND}notifications")
        if root.tag != f"{SOAP}Envelope" or notifications is None:
            raise _bad("not a Salesforce Outbound Message: expected a SOAP Envelope whose "
                       "Body holds notifications")
        items = notifications.findall(f"{OUTBOUND}Notification")
        if len(items) > MAX_NOTIFICATIONS:
            raise _bad(f"more than {MAX_NOTIFICATIONS} notifications in one message")
        out = []
        for item in items:
            sobject = item.find(f"{OUTBOUND}sObject")
            fields: dict[str, str | None] = {}
            kind = ""
            if sobject is not None:
                kind = (sobject.get(f"{XSI}type") or "").split(":")[-1]
                for field in sobject:
                    nil = field.get(f"{XSI}nil") == "true"
                    fields[_local(field.tag)] = None if nil else (field.text or "")
            out.append({"id": (item.findtext(f"{OUTBOUND}Id") or "").strip(), "type": kind,
                        "fields": fields})
        return {"organization": (notifications.findtext(f"{OUTBOUND}OrganizationId")
                                 or "").strip(),
                "action": (notifications.findtext(f"{OUTBOUND}ActionId") or "").strip(),
                "notifications": out}

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        """The SOAP notifications document (OpenAPI's ``xml`` names and namespaces); each
        sObject holds the fields the profile reads, as text."""
        fields: dict[str, Any] = {
            name: {"type": "string", "maxLength": 100,
                   "description": column.get("description", name),
                   "xml": {"prefix": "sf", "namespace": SOBJECT[1:-1]}}
            for name, column in record.get("properties", {}).items()}
        kinds = [f"sf:{o}" for o in sorted(profile.objects)] or ["sf:Lead"]
        fields["type"] = {"type": "string", "enum": kinds, "xml": {
            "name": "type", "attribute": True, "prefix": "xsi", "namespace": XSI[1:-1]}}
        text = {"type": "string", "maxLength": 100}
        notification = {"type": "object", "required": ["Id", "sObject"], "properties": {
            "Id": {"type": "string", "minLength": 1, "maxLength": 18},
            "sObject": {"type": "object", "required": ["type", *record.get("required", [])],
                        "properties": fields}}}
        schema = {
            "title": "OutboundMessage", "type": "object", "required": ["Body"],
            "xml": {"name": "Envelope", "prefix": "soapenv", "namespace": SOAP[1:-1]},
            "properties": {"Body": {
                "type": "object", "required": ["notifications"],
                "xml": {"prefix": "soapenv"}, "properties": {"notifications": {
                    "type": "object", "required": ["OrganizationId", "Notification"],
                    "xml": {"namespace": OUTBOUND[1:-1]}, "properties": {
                        "OrganizationId": {
                            "type": "string", "pattern": "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$",
                            "description": "one of QUALIFY_SALESFORCE_ORG_IDS, else 403"},
                        "ActionId": text, "SessionId": text, "EnterpriseUrl": text,
                        "PartnerUrl": text,
                        "Notification": {"type": "array", "items": notification,
                                         "minItems": 1, "maxItems": 100}}}}}}}
        return {"text/xml": {"schema": schema}}

    def answer(self) -> dict[str, Any]:
        return {"text/xml": {"schema": {"type": "string"}, "example": ACK.decode()}}

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        org = payload["organization"]
        if not org or org[:15] not in self.orgs:
            raise ApiError(403, "forbidden", f"organisation '{org[:18]}' is not in "
                           "QUALIFY_SALESFORCE_ORG_IDS: nothing was queued")
        events = []
        for note in payload["notifications"]:
            fields = note["fields"]
            object_id = as_id(fields.get("Id"))
            kind = note["type"] or "sObject"
            skip = None
            if not note["id"]:
                raise _bad("a Notification has no Id")
            if object_id is None:
                skip = "the sObject has no Id field"
            elif profile.objects and kind not in profile.objects:
                skip = f"{kind} records are not scored by profile '{profile.name}'"
            events.append(Event(fields, f"{org[:15]}:{note['id']}", None, kind, object_id,
                                skip))
        return Inbound(events, thin=True, ack=ACK)
