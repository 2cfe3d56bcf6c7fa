"""CRM webhooks: authenticate the request, unwrap the record, remember answers for retries.

Sources are the mapping profiles in the mappings directory (``hubspot.yaml`` serves
``/v1/webhooks/hubspot``). The source name picks the authentication scheme:

    hubspot    X-HubSpot-Signature-v3 over method + URI + body + timestamp (QUALIFY_HUBSPOT_SECRETS)
    pipedrive  HTTP basic auth (QUALIFY_PIPEDRIVE_CREDENTIALS); webhooks v2 {data, previous, meta}
    any other  X-Qualify-Signature: t=<unix>,v1=<hex> over "<t>." + body (QUALIFY_GENERIC_SECRETS)

A source whose credentials are not configured is disabled (404): webhooks are never
accepted unsigned.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request

from qualify.leads import kind_of
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
class Delivery:
    """What a webhook payload carries for scoring."""

    record: Mapping[str, Any]  # what the mapping profile reads
    delivery_id: str | None = None  # the same for every retry of one event
    as_of: dt.date | None = None  # the event's date, so retries score alike
    skip: str | None = None  # why there is nothing to score (e.g. a delete event)


class Scheme(Protocol):
    name: str
    setting: str  # the environment variable that enables it

    def enabled(self) -> bool: ...
    def authenticate(self, request: Request, body: bytes, now: float) -> None: ...
    def unwrap(self, payload: Any) -> Delivery: ...


def _object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", f"{what} must be a JSON object, got "
                       f"{kind_of(payload)}", field="body")
    return payload


class HubSpot:
    """A workflow "Send a webhook" action: the record's properties, signed (v3)."""

    name = "hubspot"
    setting = "QUALIFY_HUBSPOT_SECRETS"

    def __init__(self, settings: Settings) -> None:
        self.secrets = [s.get_secret_value() for s in settings.hubspot_secrets]
        self.tolerance = settings.signature_tolerance
        self.public_url = settings.public_url.rstrip("/") if settings.public_url else None

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

    def unwrap(self, payload: Any) -> Delivery:
        if isinstance(payload, list):
            raise ApiError(422, "unsupported_payload",
                           "a Webhooks API event list carries no record to score: send the "
                           "record from a workflow 'Send a webhook' action", field="body")
        return Delivery(_object(payload, "a HubSpot workflow webhook body"))


class Pipedrive:
    """Pipedrive webhooks (v2 ``{data, previous, meta}``; v1 ``current`` also read)."""

    name = "pipedrive"
    setting = "QUALIFY_PIPEDRIVE_CREDENTIALS"

    def __init__(self, settings: Settings) -> None:
        self.credentials = [c.get_secret_value() for c in settings.pipedrive_credentials]

    def enabled(self) -> bool:
        return bool(self.credentials)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        verify_basic(self.credentials, request.headers.get("authorization"))

    def unwrap(self, payload: Any) -> Delivery:
        body = _object(payload, "a Pipedrive webhook body")
        meta = body.get("meta")
        if not isinstance(meta, dict):
            raise ApiError(422, "invalid_request", "a Pipedrive webhook has a 'meta' object",
                           field="meta")
        data = body.get("data", body.get("current"))
        event = meta.get("id") or meta.get("request_id") or meta.get("correlation_id")
        delivery_id = str(event)[:200] if isinstance(event, str | int) else None
        as_of = _date(meta.get("timestamp"))
        if data is None:
            action = meta.get("action")
            return Delivery({}, delivery_id, as_of,
                            skip=f"a '{action}' event carries no record to score")
        if not isinstance(data, dict):
            raise ApiError(422, "invalid_request", f"'data' must be an object, got "
                           f"{kind_of(data)}", field="data")
        return Delivery({"data": data, "previous": body.get("previous"), "meta": meta},
                        delivery_id, as_of)


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

    def unwrap(self, payload: Any) -> Delivery:
        return Delivery(_object(payload, f"a '{self.name}' webhook body"))


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except (ValueError, OverflowError):  # not a date, or one at the ends of the calendar
        return None


class ReplayCache:
    """Answers by delivery id, so a CRM's retry of one event gets the same answer."""

    def __init__(self, size: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._items: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    def get(self, source: str, delivery_id: str) -> bytes | None:
        item = self._items.get((source, delivery_id))
        if item is None:
            return None
        if item[0] < self.clock():
            del self._items[(source, delivery_id)]
            return None
        return item[1]

    def put(self, source: str, delivery_id: str, answer: bytes) -> None:
        if self.size <= 0 or self.ttl <= 0:
            return
        key = (source, delivery_id)
        self._items[key] = (self.clock() + self.ttl, answer)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class Webhooks:
    """The schemes for each source name, and the replay cache."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fixed: dict[str, Scheme] = {"hubspot": HubSpot(settings),
                                          "pipedrive": Pipedrive(settings)}
        self.replays = ReplayCache(settings.replay_size, settings.replay_ttl)

    def scheme(self, source: str) -> Scheme:
        """The scheme of a source (call only for sources that have a profile)."""
        scheme = self._fixed.get(source)
        if scheme is None:
            scheme = self._fixed[source] = Generic(source, self.settings)
        return scheme
