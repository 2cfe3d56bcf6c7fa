"""What every inbound adapter gives the webhook route: events, and how to read them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from fastapi import Request

from qualify import Profile
from qualify.leads import kind_of
from service.bodies import parse_json
from service.errors import ApiError


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
    thin: bool = False  # a list of events (HubSpot app webhooks, Salesforce notifications):
    #                     answered with what was queued, the outbox scores each
    ack: bytes | None = None  # the answer the CRM requires (Salesforce: a SOAP Ack)


# The OpenAPI security schemes of the webhook sources; each adapter names its own in
# ``security`` (service/openapi.py puts them in the document).
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "HubSpotSignature": {
        "type": "apiKey", "in": "header", "name": "X-HubSpot-Signature-v3",
        "description": "base64 HMAC-SHA256, with the app's client secret "
                       "(QUALIFY_HUBSPOT_SECRETS), of method + URL + body + timestamp. "
                       "The older X-HubSpot-Signature (v1, v2) is accepted too."},
    "HubSpotTimestamp": {
        "type": "apiKey", "in": "header", "name": "X-HubSpot-Request-Timestamp",
        "description": "milliseconds since 1970, at most 5 minutes from the server's clock"},
    "PipedriveBasic": {
        "type": "http", "scheme": "basic",
        "description": "a user:password of QUALIFY_PIPEDRIVE_CREDENTIALS, set as the "
                       "webhook's HTTP auth"},
    "QualifySignature": {
        "type": "apiKey", "in": "header", "name": "X-Qualify-Signature",
        "description": 't=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body> with a secret '
                       "of QUALIFY_GENERIC_SECRETS, at most 5 minutes from the server's "
                       "clock"},
    "WebhookToken": {
        "type": "apiKey", "in": "header", "name": "X-Qualify-Token",
        "description": "a token of QUALIFY_ZOHO_TOKENS (zoho) or QUALIFY_DYNAMICS_TOKENS "
                       "(dynamics); also accepted as Authorization: Bearer"},
    "WebhookTokenQuery": {
        "type": "apiKey", "in": "query", "name": "token",
        "description": "the same token as a URL parameter (Dataverse WebhookKey: ?code=)"},
}
TOKEN_SECURITY: list[dict[str, list[str]]] = [{"WebhookToken": []}, {"WebhookTokenQuery": []}]
RECORD_ANSWER: dict[str, Any] = {"application/json": {"schema": {
    "$ref": "#/components/schemas/WebhookResult"}}}


class Scheme(Protocol):
    name: str
    setting: str  # the environment variable that enables it
    # OpenAPI: the schemes of SECURITY_SCHEMES it takes (alternatives, each a set of them)
    security: ClassVar[list[dict[str, list[str]]]]

    def enabled(self) -> bool: ...
    def authenticate(self, request: Request, body: bytes, now: float) -> None: ...
    def parse(self, body: bytes, content_type: str) -> Any: ...
    def unwrap(self, payload: Any, profile: Profile) -> Inbound: ...

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        """OpenAPI: the request body's content (media type -> schema), around ``record``,
        the JSON Schema of what the profile reads."""

    def answer(self) -> dict[str, Any]:
        """OpenAPI: the content of a 200 answer."""


class JsonBody:
    """Bodies are strict JSON whatever the Content-Type says (CRMs are careless with it)."""

    def parse(self, body: bytes, content_type: str) -> Any:
        return parse_json(body)

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        return {"application/json": {"schema": record}}

    def answer(self) -> dict[str, Any]:
        return RECORD_ANSWER


def as_object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", f"{what} must be a JSON object, got "
                       f"{kind_of(payload)}", field="body")
    return payload


def as_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)[:200]


def event_date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except (ValueError, OverflowError):  # not a date, or one at the ends of the calendar
        return None


