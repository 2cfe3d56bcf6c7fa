"""Pipedrive write-back: custom fields by name, records fetched when a webhook lacks them.

The calls (API token in the ``x-api-token`` header; the company domain as base URL):

    GET   /v1/personFields, /v1/dealFields      custom fields: 40-character hash ``key``,
                                                ``name``, ``field_type``, ``options`` [{id,
                                                label}]; leads use the deal fields
    GET   /api/v2/persons/{id}, /api/v2/deals/{id}    custom fields under ``custom_fields``
    PATCH /api/v2/persons/{id}, /api/v2/deals/{id}    {"custom_fields": {key: value}}
    GET   /v1/leads/{id}, PATCH /v1/leads/{id}        custom fields as top-level keys
    GET   /v1/users/me                          the token's user: events it caused are ours

Pipedrive keys custom fields by hash and sends single- and multi-option values as option
ids. Records are therefore ``prepare``d before a profile reads them: each custom field is
also put under its name in snake case ("Purchase timeline (days)" ->
``purchase_timeline_days``) and option ids become their labels, so a profile names fields
as people see them. Field definitions are cached for ``ttl`` seconds and read again when a
name is not found. There is no batch update: one PATCH per record.

References: https://developers.pipedrive.com/docs/api/v1/PersonFields,
https://developers.pipedrive.com/docs/api/v1/Persons (v2 persons),
https://developers.pipedrive.com/docs/api/v1/Leads,
https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting,
https://pipedrive.readme.io/docs/guide-for-webhooks-v2.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from service.crm import CrmError, message, retry_after, text

PATHS = {"person": "/api/v2/persons/{id}", "deal": "/api/v2/deals/{id}",
         "lead": "/v1/leads/{id}"}
FIELDS = {"person": "/v1/personFields", "deal": "/v1/dealFields", "lead": "/v1/dealFields"}
OPTION_TYPES = ("enum", "set")
_HASH = re.compile(r"[0-9a-f]{40}$")


def slug(name: str) -> str:
    """A field name as a profile path segment: "Budget (USD)" -> "budget_usd"."""
    return re.sub(r"[^0-9a-z]+", "_", name.casefold()).strip("_")


class Pipedrive:
    name = "pipedrive"
    names_from_api = True

    def __init__(self, token: str, api_url: str, *, timeout: float = 10.0,
                 ttl: float = 600.0, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout,
                                  headers={"x-api-token": token}, transport=transport)
        self.ttl = ttl
        self._fields: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._user: int | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None,
              params: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.TimeoutException:
            raise CrmError(f"Pipedrive did not answer {path} in time", retry=True) from None
        except httpx.TransportError as e:
            raise CrmError(f"Pipedrive unreachable: {type(e).__name__}", retry=True) from None
        status = response.status_code
        if status < 300 or status in (400, 404, 422):
            return response
        problem = f"Pipedrive answered {status} to {method} {path}: {message(response)}"
        if status == 429:
            raise CrmError(problem, retry=True, wait=retry_after(response) or 2.0,
                           status=status)
        if status in (401, 403, 408) or status >= 500:
            raise CrmError(problem, retry=True, status=status)
        raise CrmError(problem, retry=False, status=status)

    # ------------------------------------------------------------------ fields

    def fields(self, entity: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        path = FIELDS[entity]
        with self._lock:
            cached = self._fields.get(path)
            if cached and not fresh and cached[0] > time.monotonic():
                return cached[1]
        found: list[dict[str, Any]] = []
        start = 0
        while True:
            body = self._call("GET", path, params={"start": start, "limit": 500}).json()
            found.extend(body.get("data") or [])
            more = ((body.get("additional_data") or {}).get("pagination") or {})
            if not more.get("more_items_in_collection"):
                break
            start = int(more.get("next_start", start + 500))
        with self._lock:
            self._fields[path] = (time.monotonic() + self.ttl, found)
        return found

    def _field(self, entity: str, name: str) -> dict[str, Any] | None:
        for fresh in (False, True):  # a field created since the last look
            for field in self.fields(entity, fresh=fresh):
                if field.get("key") == name or slug(str(field.get("name", ""))) == slug(name):
                    return field
        return None

    def user_id(self) -> int | None:
        """The id of the token's user (our own API writes carry it)."""
        if self._user is None:
            data = self._call("GET", "/v1/users/me").json().get("data") or {}
            self._user = data.get("id") if isinstance(data.get("id"), int) else None
        return self._user

    def keys(self, entity: str, names: list[str]) -> list[str]:
        """The hash keys of the fields ``names`` (those that exist)."""
        return [f["key"] for n in names if (f := self._field(entity, n)) is not None]

    # ------------------------------------------------------------------ records

    def fetch(self, object_type: str, ids: list[str],
              properties: list[str]) -> dict[str, Mapping[str, Any] | None]:
        out: dict[str, Mapping[str, Any] | None] = {}
        for i in ids:
            response = self._call("GET", PATHS[object_type].format(id=i))
            data = response.json().get("data") if response.status_code < 300 else None
            out[i] = self.prepare(object_type, {"data": data}) if isinstance(data, dict) \
                else None
        return out

    def prepare(self, object_type: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """Custom fields also under their names, option ids as labels."""
        data = record.get("data")
        if not isinstance(data, Mapping) or object_type not in FIELDS:
            return record
        custom = dict(data.get("custom_fields") or {})
        if object_type == "lead":  # v1 leads keep custom fields at the top level
            custom.update({k: v for k, v in data.items() if _HASH.match(k)})
        named: dict[str, Any] = dict(custom)
        by_key = {f.get("key"): f for f in self.fields(object_type)}
        for key, value in custom.items():
            field = by_key.get(key)
            if field is None:
                continue
            named[slug(str(field.get("name", key)))] = _readable(field, value)
        return {**record, "data": {**data, "custom_fields": named}}

    def lacks(self, object_type: str, record: Mapping[str, Any], paths: frozenset[str]) -> bool:
        """A webhook without custom fields, or without one that exists and is read."""
        data = record.get("data")
        if not isinstance(data, Mapping) or object_type not in FIELDS:
            return False
        custom = data.get("custom_fields")
        if not isinstance(custom, Mapping):
            return True
        defined = {slug(str(f.get("name", ""))) for f in self.fields(object_type)
                   if f.get("edit_flag")} | {f.get("key") for f in self.fields(object_type)}
        for path in paths:
            parts = path.split(".")
            if parts[:2] == ["data", "custom_fields"] and len(parts) > 2 and \
                    parts[2] in defined and parts[2] not in custom:
                return True
        return False

    def current(self, record: Mapping[str, Any], names: list[str]) -> dict[str, str]:
        custom = (record.get("data") or {}).get("custom_fields") or {}
        return {n: text(custom.get(slug(n), custom.get(n))) for n in names}

    def write(self, object_type: str,
              updates: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for record_id, props in updates.items():
            body: dict[str, Any] = {}
            error = None
            for name, value in props.items():
                field = self._field(object_type, name)
                if field is None:
                    error = f"no {object_type} field '{name}' in Pipedrive: create it " \
                            "(Settings > Data fields) or fix the profile's write_back"
                    break
                body[field["key"]] = _stored(field, value)
            if error is None:
                payload = body if object_type == "lead" else {"custom_fields": body}
                response = self._call("PATCH", PATHS[object_type].format(id=record_id),
                                      payload)
                if response.status_code >= 300:
                    error = f"{response.status_code}: {message(response)}"
            out[record_id] = error
        return out


def _readable(field: Mapping[str, Any], value: Any) -> Any:
    """A custom field's value as a profile reads it: option labels, not ids."""
    if isinstance(value, Mapping) and "type" in value:  # webhooks v2: {"type", "id"|"value"}
        value = value.get("id", value.get("value")) if "currency" not in value else value
    if field.get("field_type") in OPTION_TYPES and value is not None:
        labels = {str(o.get("id")): o.get("label") for o in field.get("options") or []}
        if isinstance(value, list):
            return [labels.get(str(v), v) for v in value]
        if isinstance(value, str) and "," in value:  # v1 sets: "12,13"
            return [labels.get(v.strip(), v) for v in value.split(",")]
        return labels.get(str(value), value)
    return value


def _stored(field: Mapping[str, Any], value: Any) -> Any:
    """A value as Pipedrive stores it: an option's id for an option field."""
    if field.get("field_type") in OPTION_TYPES:
        for option in field.get("options") or []:
            if str(option.get("label", "")).casefold() == str(value).casefold():
                return option.get("id") if field["field_type"] == "enum" else [option["id"]]
    if field.get("field_type") in ("double", "int"):  # API v2 takes no numbers as text
        try:
            number = float(value)
        except (TypeError, ValueError):
            return text(value)
        return int(number) if number.is_integer() else number
    return text(value)

