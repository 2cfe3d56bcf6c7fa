"""Pipedrive webhooks v2 and v1, with HTTP basic auth; the loop guard on our own writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import Request

from qualify import Profile
from qualify.leads import kind_of
from service.errors import ApiError
from service.inbound.base import Event, Inbound, JsonBody, as_id, as_object, event_date
from service.settings import Settings
from service.signatures import verify_basic

# Pipedrive's webhook entities (webhooks v2)
ENTITIES = frozenset({"activity", "deal", "lead", "note", "organization", "person", "pipeline",
                      "product", "project", "stage", "user"})


class Pipedrive(JsonBody):
    """Pipedrive webhooks v2 ``{data, previous, meta}`` and v1 ``{current, previous, meta}``."""

    name = "pipedrive"
    setting = "QUALIFY_PIPEDRIVE_CREDENTIALS"
    security: ClassVar[list[dict[str, list[str]]]] = [{"PipedriveBasic": []}]

    def __init__(self, settings: Settings) -> None:
        self.credentials = [c.get_secret_value() for c in settings.pipedrive_credentials]
        self.own_user: str | None = None  # the API token's user, once the outbox knows it
        self.own_keys: frozenset[str] = frozenset()  # custom fields we write

    def enabled(self) -> bool:
        return bool(self.credentials)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        verify_basic(self.credentials, request.headers.get("authorization"))

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        """Webhooks v2: ``data`` (the record the profile reads), ``previous``, ``meta``."""
        entities = sorted(set(profile.objects) | ENTITIES)
        meta = {"type": "object", "additionalProperties": True,
                "required": ["action", "entity"], "properties": {
            "action": {"type": "string", "enum": ["create", "change", "delete"]},
            "entity": {"type": "string", "enum": entities,
                       "description": "the object; events of objects the profile does not "
                                      "score are skipped"},
            "entity_id": {"type": "string"},
            "id": {"type": "string", "format": "uuid",
                   "description": "the event's id: a retry of the event has the same"},
            "timestamp": {"type": "string", "format": "date-time",
                          "description": "the event's time: the verdict's as_of date"},
            "version": {"type": "string", "example": "2.0"},
            "change_source": {"type": "string", "enum": ["app", "api"]},
            "user_id": {"type": "integer"}, "attempt": {"type": "integer"}}}
        data = dict(record.get("properties", {}).get("data") or {"type": "object"})
        schema = {**record, "required": ["meta"], "properties": {
            **record.get("properties", {}), "meta": meta,
            "data": {"anyOf": [data, {"type": "null"}]},
            "previous": {"anyOf": [{"type": "object"}, {"type": "null"}]}}}
        return {"application/json": {"schema": schema}}

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        body = as_object(payload, "a Pipedrive webhook body")
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
            object_id = as_id(meta.get("id"))
            parts = [meta.get(k) for k in ("webhook_id", "object", "id", "timestamp_micro",
                                           "timestamp", "change_source")]
            delivery_id = "v1:" + ":".join("" if p is None else str(p) for p in parts)
        else:
            object_id = as_id(meta.get("entity_id")) or \
                (as_id(data.get("id")) if isinstance(data, dict) else None)
            delivery_id = as_id(meta.get("id")) or as_id(meta.get("correlation_id"))
        as_of = event_date(meta.get("timestamp"))
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


