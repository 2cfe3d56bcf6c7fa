"""CRM webhooks: authenticate the request, unwrap its events, guard against our own writes.

Sources are the mapping profiles in the mappings directory (``hubspot.yaml`` serves
``/v1/webhooks/hubspot``). The source name picks the authentication scheme and the shapes:

    hubspot    X-HubSpot-Signature-v3 over method + URI + body + timestamp
               (QUALIFY_HUBSPOT_SECRETS); a workflow "Send a webhook" body (one record), or
               an app webhook delivery: a list of thin events (ids, no record)
    pipedrive  HTTP basic auth (QUALIFY_PIPEDRIVE_CREDENTIALS); webhooks v2
               {data, previous, meta} and v1 {current, previous, meta}
    any other  X-Qualify-Signature: t=<unix>,v1=<hex> over "<t>." + body (QUALIFY_GENERIC_SECRETS)

Each event names its delivery id (retries of one event share it), its date, and the CRM
record it is about. Events that need no scoring say why (``skip``): a delete, an object the
profile does not score, or a change we made ourselves (the loop guard: HubSpot
``changeSource: INTEGRATION`` with ``sourceId`` our app id, or a change of only the
properties we write; Pipedrive ``change_source: api`` by our token's user, or a change of
only our fields).

A source whose credentials are not configured is disabled (404): webhooks are never
accepted unsigned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request

from qualify import Profile
from qualify.leads import kind_of
from qualify.mapping import lookup
from service.errors import ApiError
from service.settings import Settings
from service.signatures import (
    GENERIC_SIGNATURE,
    HUBSPOT_SIGNATURE,
    HUBSPOT_TIMESTAMP,
    verify_basic,
    verify_generic,
    verify_hubspot_v3,
)


@dataclass(frozen=True)
class Event:
    """One record event of a webhook delivery."""

    record: Mapping[str, Any] | None  # what the profile reads; None: fetch it (thin event)
    delivery_id: str | None = None  # the same for every retry of one event
    as_of: dt.date | None = None  # the event's date, so retries score alike
    object_type: str | None = None  # the CRM object (contacts, person, ...), to write back
    object_id: str | None = None
    skip: str | None = None  # why there is nothing to score (a delete, our own write, ...)


@dataclass(frozen=True)
class Inbound:
    """What one webhook request carries: a record, or a list of thin events."""

    events: list[Event]
    thin: bool = False  # HubSpot app webhooks: ids only; the outbox fetches the records


class Scheme(Protocol):
    name: str
    setting: str  # the environment variable that enables it

    def enabled(self) -> bool: ...
    def authenticate(self, request: Request, body: bytes, now: float) -> None: ...
    def unwrap(self, payload: Any, profile: Profile) -> Inbound: ...


def _object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", f"{what} must be a JSON object, got "
                       f"{kind_of(payload)}", field="body")
    return payload


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)[:200]


# HubSpot subscription type prefixes -> CRM v3 object types
HUBSPOT_OBJECTS = {"contact": "contacts", "company": "companies", "deal": "deals",
                   "ticket": "tickets", "product": "products", "line_item": "line_items"}
HUBSPOT_SCORED = ("creation", "propertyChange", "restore", "merge")
MAX_EVENTS = 1000  # HubSpot sends at most 100 a request


class HubSpot:
    """App webhooks (a list of thin events) and workflow "Send a webhook" bodies, signed."""

    name = "hubspot"
    setting = "QUALIFY_HUBSPOT_SECRETS"

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
        verify_hubspot_v3(self.secrets, method=request.method, uri=self.uri(request),
                          body=body, signature=request.headers.get(HUBSPOT_SIGNATURE),
                          timestamp=request.headers.get(HUBSPOT_TIMESTAMP), now=now,
                          tolerance=self.tolerance)

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        if isinstance(payload, list):
            if len(payload) > MAX_EVENTS:
                raise ApiError(422, "invalid_request", f"more than {MAX_EVENTS} events in "
                               "one delivery", field="body")
            return Inbound([self._event(e, i, profile) for i, e in enumerate(payload)],
                           thin=True)
        record = _object(payload, "a HubSpot workflow webhook body")
        if "subscriptionType" in record and "objectId" in record:  # one event, not in a list
            return Inbound([self._event(record, 0, profile)], thin=True)
        object_id = None
        for path in ("hs_object_id", "objectId", "properties.hs_object_id.value",
                     "properties.hs_object_id", "id", "vid"):
            object_id = _id(lookup(record, path))
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
        object_id = _id(event.get("primaryObjectId") if action == "merge" else None) \
            or _id(event.get("objectId"))
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


class Pipedrive:
    """Pipedrive webhooks v2 ``{data, previous, meta}`` and v1 ``{current, previous, meta}``."""

    name = "pipedrive"
    setting = "QUALIFY_PIPEDRIVE_CREDENTIALS"

    def __init__(self, settings: Settings) -> None:
        self.credentials = [c.get_secret_value() for c in settings.pipedrive_credentials]
        self.own_user: str | None = None  # the API token's user, once the outbox knows it
        self.own_keys: frozenset[str] = frozenset()  # custom fields we write

    def enabled(self) -> bool:
        return bool(self.credentials)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        verify_basic(self.credentials, request.headers.get("authorization"))

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        body = _object(payload, "a Pipedrive webhook body")
        meta = body.get("meta")
        if not isinstance(meta, dict):
            raise ApiError(422, "invalid_request", "a Pipedrive webhook has a 'meta' object",
                           field="meta")
        v1 = "current" in body or meta.get("v") == 1
        data = body.get("current") if v1 else body.get("data")
        entity = str(meta.get("object") if v1 else meta.get("entity") or "")
        action = str(meta.get("action") or "")
        delivery_id: str | None
        if v1:  # meta.id is the object's id: an event is its webhook, object and time
            object_id = _id(meta.get("id"))
            parts = [meta.get(k) for k in ("webhook_id", "object", "id", "timestamp_micro",
                                           "timestamp", "change_source")]
            delivery_id = "v1:" + ":".join("" if p is None else str(p) for p in parts)
        else:
            object_id = _id(meta.get("entity_id")) or \
                (_id(data.get("id")) if isinstance(data, dict) else None)
            delivery_id = _id(meta.get("id")) or _id(meta.get("correlation_id"))
        as_of = _date(meta.get("timestamp"))
        if data is None:
            return Inbound([Event({}, delivery_id, as_of, entity, object_id,
                                  skip=f"a '{action}' event carries no record to score")])
        if not isinstance(data, dict):
            raise ApiError(422, "invalid_request", f"'data' must be an object, got "
                           f"{kind_of(data)}", field="data")
        skip = None
        previous = body.get("previous")
        if profile.objects and entity not in profile.objects:
            skip = f"{entity or 'untyped'} events are not scored by profile '{profile.name}'"
        elif meta.get("change_source") == "api" and self.own_user is not None and \
                str(meta.get("user_id")) == self.own_user:
            skip = "a change made through our own API token"
        elif isinstance(previous, dict) and self.own_keys and _only_ours(previous,
                                                                         self.own_keys):
            skip = "a change of our own fields only"
        record = {"data": {**data, "custom_fields": flatten_custom_fields(
            data.get("custom_fields"))}, "previous": previous, "meta": meta}
        return Inbound([Event(record, delivery_id, as_of, entity, object_id, skip)])


def flatten_custom_fields(custom: Any) -> Any:
    """Webhooks v2 type each custom field ({"type": "double", "value": 3.5}, {"type":
    "enum", "id": 17}); API v2 does not (3.5, 17). Both come out as API v2 values, except
    money, which keeps {value, currency}."""
    if not isinstance(custom, dict):
        return custom
    return {key: _untyped(value) for key, value in custom.items()}


def _untyped(value: Any) -> Any:
    if not isinstance(value, dict) or "type" not in value or "currency" in value:
        return value
    if "id" in value:
        return value["id"]
    if isinstance(value.get("values"), list):
        return [v.get("id") if isinstance(v, dict) else v for v in value["values"]]
    return value.get("value")


def _only_ours(previous: Mapping[str, Any], ours: frozenset[str]) -> bool:
    keys = set(previous) - {"update_time"}
    custom = previous.get("custom_fields")
    if "custom_fields" in keys and isinstance(custom, dict):
        keys.discard("custom_fields")
        keys |= {f"custom_fields.{k}" for k in custom}
    return bool(keys) and all(k.removeprefix("custom_fields.") in ours for k in keys)


class Generic:
    """Any JSON object, signed with X-Qualify-Signature (the Stripe scheme)."""

    setting = "QUALIFY_GENERIC_SECRETS"

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.secrets = [s.get_secret_value() for s in settings.generic_secrets]
        self.tolerance = settings.signature_tolerance

    def enabled(self) -> bool:
        return bool(self.secrets)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        verify_generic(self.secrets, body=body, header=request.headers.get(GENERIC_SIGNATURE),
                       now=now, tolerance=self.tolerance)

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        return Inbound([Event(_object(payload, f"a '{self.name}' webhook body"))])


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except (ValueError, OverflowError):  # not a date, or one at the ends of the calendar
        return None


class Webhooks:
    """The scheme of each source name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fixed: dict[str, Scheme] = {"hubspot": HubSpot(settings),
                                          "pipedrive": Pipedrive(settings)}

    def scheme(self, source: str) -> Scheme:
        """The scheme of a source (call only for sources that have a profile)."""
        scheme = self._fixed.get(source)
        if scheme is None:
            scheme = self._fixed[source] = Generic(source, self.settings)
        return scheme
