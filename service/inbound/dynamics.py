"""Dataverse (Dynamics 365) webhooks: the ``RemoteExecutionContext`` of a step, a static token.

A webhook registered with the Plug-in Registration Tool posts, for each step it is bound to
(Create and Update of lead, say), the execution context as JSON:

    {"MessageName": "Update", "PrimaryEntityName": "lead", "PrimaryEntityId": "<guid>",
     "InputParameters": [{"key": "Target", "value": {"LogicalName": "lead", "Id": ...,
                          "Attributes": [{"key": "budgetamount", "value": {...}}, ...],
                          "FormattedValues": [{"key": "purchasetimeframe", "value": "This
                          Quarter"}, ...]}}],
     "PostEntityImages": [{"key": "image", "value": <Entity>}], "OperationId": ..., ...}

The record is the post-image (the whole row after the change, when the step has one) over
the target's attributes (only the changed ones). Values are read as people see them: an
option set by its formatted label, money and option values by ``Value``, a lookup by its
name, ``/Date(ms)/`` as epoch milliseconds. Authentication is a static token (HttpHeader
``X-Qualify-Token``, WebhookKey ``?code=``, or HttpQueryString ``?token=``;
QUALIFY_DYNAMICS_TOKENS). Retries of one execution keep its ``OperationId``.

Reference: https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from qualify import Profile
from service.inbound.base import Event, Inbound, JsonBody, as_id, as_object
from service.inbound.token import TokenAuth
from service.settings import Settings

_DATE = re.compile(r"/Date\((-?\d{1,16})([+-]\d{4})?\)/$")
SCORED = ("Create", "Update")


def pairs(items: Any) -> dict[str, Any]:
    """Dataverse's ``[{"key": k, "value": v}, ...]`` collections as a dict."""
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("key"), str):
                out[item["key"]] = item.get("value")
    return out


def _value(value: Any) -> Any:
    if isinstance(value, Mapping):
        if "Value" in value:  # OptionSetValue, Money
            return value["Value"]
        if "LogicalName" in value and "Id" in value:  # EntityReference
            return value.get("Name") or value.get("Id")
        return value
    if isinstance(value, str):
        date = _DATE.match(value)
        if date:
            return int(date.group(1))
    return value


def attributes(entity: Any) -> dict[str, Any]:
    """An Entity's attributes as a profile reads them (formatted labels for option sets)."""
    if not isinstance(entity, Mapping):
        return {}
    formatted = pairs(entity.get("FormattedValues"))
    out = {}
    for key, value in pairs(entity.get("Attributes")).items():
        if key in formatted and isinstance(value, Mapping) and "Value" in value \
                and "OptionSetValue" in str(value.get("__type", "OptionSetValue")):
            out[key] = formatted[key]
        else:
            out[key] = _value(value)
    return out


class Dynamics(JsonBody, TokenAuth):
    """Dataverse webhooks: a step's RemoteExecutionContext, a static token."""

    name = "dynamics"
    setting = "QUALIFY_DYNAMICS_TOKENS"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.dynamics_tokens)

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        """The RemoteExecutionContext: the record's columns are the target's and the
        post-image's ``Attributes`` (money and option values as ``{"Value": ...}``, option
        labels in ``FormattedValues``)."""
        columns = record.get("properties", {})
        attribute = {"anyOf": [
            {"type": "object", "required": ["key", "value"], "properties": {
                "key": {"const": name}, "value": {"anyOf": [column, {
                    "type": "object", "required": ["Value"],
                    "properties": {"__type": {"type": "string"}, "Value": column}}]}}}
            for name, column in columns.items()]} if columns else {"type": "object"}
        labels = {"type": "object", "required": ["key", "value"], "properties": {
            "key": {"type": "string", "enum": sorted(columns)} if columns else
            {"type": "string"}, "value": {"type": "string"}}}
        entity = {"title": "Entity", "type": "object", "required": ["LogicalName", "Attributes"],
                  "properties": {
                      "LogicalName": {"type": "string"},
                      "Id": {"type": "string", "format": "uuid"},
                      "Attributes": {"type": "array", "items": attribute, "maxItems": 40},
                      "FormattedValues": {"type": "array", "items": labels,
                                          "maxItems": 10}}}
        entities = sorted(set(profile.objects) | {"account", "contact", "lead", "opportunity"})
        uuid = {"type": "string", "format": "uuid"}
        schema = {
            "title": "RemoteExecutionContext", "type": "object", "additionalProperties": True,
            "required": ["MessageName", "PrimaryEntityName", "PrimaryEntityId",
                         "InputParameters"],
            "properties": {
                "MessageName": {"type": "string", "enum": [*SCORED, "Delete", "Assign",
                                                           "SetState"],
                                "description": "Create and Update are scored"},
                "PrimaryEntityName": {"type": "string", "enum": entities,
                                      "description": "records of other tables than the "
                                                     "profile's are skipped"},
                "PrimaryEntityId": uuid,
                "OperationId": {**uuid, "description": "the same for a retry"},
                "RequestId": uuid,
                "InputParameters": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object", "required": ["key", "value"], "properties": {
                        "key": {"const": "Target"}, "value": entity}}},
                "PostEntityImages": {"type": "array", "maxItems": 1, "items": {
                    "type": "object", "required": ["key", "value"], "properties": {
                        "key": {"type": "string"}, "value": entity}}}}}
        return {"application/json": {"schema": schema}}

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        context = as_object(payload, "a Dataverse RemoteExecutionContext")
        entity = str(context.get("PrimaryEntityName") or "")
        object_id = as_id(context.get("PrimaryEntityId"))
        message = str(context.get("MessageName") or "")
        delivery_id = as_id(context.get("OperationId")) or as_id(context.get("RequestId"))
        target = pairs(context.get("InputParameters")).get("Target")
        record = attributes(target)
        for image in pairs(context.get("PostEntityImages")).values():
            record.update(attributes(image))
        record.setdefault("id", object_id)
        skip = None
        if message not in SCORED:
            skip = f"a '{message or 'nameless'}' message is not scored"
        elif profile.objects and entity not in profile.objects:
            skip = f"{entity or 'untyped'} records are not scored by profile '{profile.name}'"
        return Inbound([Event(record, delivery_id, object_type=entity or None,
                              object_id=object_id, skip=skip)])
