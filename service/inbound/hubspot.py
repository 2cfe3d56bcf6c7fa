"""HubSpot: app webhooks (thin events) and workflow webhooks, signed v3 (or v1/v2)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from fastapi import Request

from qualify import Profile
from qualify.leads import kind_of
from qualify.mapping import lookup
from service.errors import ApiError
from service.inbound.base import RECORD_ANSWER, Event, Inbound, JsonBody, as_id, as_object
from service.settings import Settings
from service.signatures import (
    HUBSPOT_LEGACY_SIGNATURE,
    HUBSPOT_SIGNATURE,
    HUBSPOT_SIGNATURE_VERSION,
    HUBSPOT_TIMESTAMP,
    verify_hubspot_legacy,
    verify_hubspot_v3,
)

# HubSpot subscription type prefixes -> CRM v3 object types
HUBSPOT_OBJECTS = {"contact": "contacts", "company": "companies", "deal": "deals",
                   "ticket": "tickets", "product": "products", "line_item": "line_items"}
HUBSPOT_SCORED = ("creation", "propertyChange", "restore", "merge")
MAX_EVENTS = 1000  # HubSpot sends at most 100 a request


class HubSpot(JsonBody):
    """App webhooks (a list of thin events) and workflow "Send a webhook" bodies, signed."""

    name = "hubspot"
    setting = "QUALIFY_HUBSPOT_SECRETS"
    security: ClassVar[list[dict[str, list[str]]]] = [
        {"HubSpotSignature": [], "HubSpotTimestamp": []}]

    def __init__(self, settings: Settings) -> None:
        self.secrets = [s.get_secret_value() for s in settings.hubspot_secrets]
        self.tolerance = settings.signature_tolerance
        self.public_url = settings.public_url.rstrip("/") if settings.public_url else None
        self.app_id = settings.hubspot_app_id

    def enabled(self) -> bool:
        return bool(self.secrets)

    def uri(self, request: Request) -> str:
        """The URL HubSpot called (it signs it); QUALIFY_PUBLIC_URL behind a proxy."""
        if self.public_url is None:
            return str(request.url)
        query = request.url.query
        return self.public_url + request.url.path + (f"?{query}" if query else "")

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        """v3 (app webhooks, workflow webhooks of new apps) when its header is there; else
        v1/v2 by ``X-HubSpot-Signature-Version`` (legacy webhooks, workflow webhooks and
        custom workflow actions still send these)."""
        headers = request.headers
        v3 = headers.get(HUBSPOT_SIGNATURE)
        if v3 is not None or headers.get(HUBSPOT_LEGACY_SIGNATURE) is None:
            verify_hubspot_v3(self.secrets, method=request.method, uri=self.uri(request),
                              body=body, signature=v3,
                              timestamp=headers.get(HUBSPOT_TIMESTAMP), now=now,
                              tolerance=self.tolerance)
            return
        verify_hubspot_legacy(self.secrets, version=headers.get(HUBSPOT_SIGNATURE_VERSION),
                              method=request.method, uri=self.uri(request), body=body,
                              signature=headers.get(HUBSPOT_LEGACY_SIGNATURE))

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        """A workflow webhook's record, or app webhook events (a list, or one)."""
        objects = [prefix for prefix, plural in HUBSPOT_OBJECTS.items()
                   if not profile.objects or plural in profile.objects] or ["contact"]
        kinds = [f"{o}.{a}" for o in objects
                 for a in (*HUBSPOT_SCORED, "deletion", "associationChange")]
        event = {
            "title": "HubSpotEvent", "type": "object", "additionalProperties": True,
            "required": ["eventId", "subscriptionType", "objectId"],
            "description": "an app webhook event: ids only, the outbox fetches the record",
            "properties": {
                "eventId": {"type": "integer", "minimum": 1},
                "subscriptionId": {"type": "integer"}, "portalId": {"type": "integer"},
                "appId": {"type": "integer"},
                "occurredAt": {"type": "integer", "minimum": 0,
                               "maximum": 253_402_300_799_000, "description": "epoch ms"},
                "subscriptionType": {"type": "string", "enum": kinds},
                "attemptNumber": {"type": "integer", "minimum": 0},
                "objectId": {"type": "integer", "minimum": 1},
                "primaryObjectId": {"type": "integer", "minimum": 1},
                "propertyName": {"type": "string"}, "propertyValue": {"type": "string"},
                "changeSource": {"type": "string"}, "sourceId": {"type": "string"}}}
        events = {"type": "array", "items": event, "maxItems": 100,
                  "description": "an app webhook delivery: up to 100 events"}
        return {"application/json": {"schema": {"anyOf": [record, events, event]}}}

    def answer(self) -> dict[str, Any]:
        return {"application/json": {"schema": {"anyOf": [
            RECORD_ANSWER["application/json"]["schema"],
            {"$ref": "#/components/schemas/WebhookEvents"}]}}}

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        if isinstance(payload, list):
            if len(payload) > MAX_EVENTS:
                raise ApiError(422, "invalid_request", f"more than {MAX_EVENTS} events in "
                               "one delivery", field="body")
            return Inbound([self._event(e, i, profile) for i, e in enumerate(payload)],
                           thin=True)
        record = as_object(payload, "a HubSpot workflow webhook body")
        if "subscriptionType" in record and "objectId" in record:  # one event, not in a list
            return Inbound([self._event(record, 0, profile)], thin=True)
        object_id = None
        for path in ("hs_object_id", "objectId", "properties.hs_object_id.value",
                     "properties.hs_object_id", "id", "vid"):
            object_id = as_id(lookup(record, path))
            if object_id:
                break
        object_type = sorted(profile.objects)[0] if profile.objects else "contacts"
        return Inbound([Event(record, object_type=object_type, object_id=object_id)])

    def _event(self, event: Any, index: int, profile: Profile) -> Event:
        if not isinstance(event, dict):
            raise ApiError(422, "invalid_request", f"event {index} must be a JSON object, "
                           f"got {kind_of(event)}", field=f"body.{index}")
        kind = str(event.get("subscriptionType", ""))
        prefix, _, action = kind.partition(".")
        object_type = HUBSPOT_OBJECTS.get(prefix, prefix)
        object_id = as_id(event.get("primaryObjectId") if action == "merge" else None) \
            or as_id(event.get("objectId"))
        parts = [event.get(k) for k in ("portalId", "subscriptionId", "eventId", "objectId",
                                        "propertyName", "occurredAt")]
        # eventId alone "is not guaranteed to be unique" (HubSpot's webhooks guide)
        delivery_id = ":".join("" if p is None else str(p) for p in parts)[:255] \
            if event.get("eventId") is not None else None
        occurred = event.get("occurredAt")
        as_of = dt.datetime.fromtimestamp(occurred / 1000, dt.UTC).date() \
            if isinstance(occurred, int) and 0 < occurred < 253_402_300_799_000 else None
        skip = None
        if object_id is None:
            skip = "no objectId"
        elif action not in HUBSPOT_SCORED:
            skip = f"a {kind or 'typeless'} event is not scored"
        elif profile.objects and object_type not in profile.objects:
            skip = f"{object_type} are not scored by profile '{profile.name}'"
        elif event.get("propertyName") in profile.write_back.values():
            skip = f"a change of our own property {event['propertyName']}"
        elif self.app_id and event.get("changeSource") == "INTEGRATION" and \
                str(event.get("sourceId")) == self.app_id:
            skip = "a change made by our own app"
        return Event(None, delivery_id, as_of, object_type, object_id, skip)


