"""A local stand-in for Pipedrive: v1 fields, leads and users/me; v2 persons and deals.

Documented contract followed:
- token in the `x-api-token` header (the older `api_token` query is accepted too):
  https://pipedrive.readme.io/docs/core-api-concepts-authentication
- envelopes `{success, data, additional_data}` and `{success: false, error, error_info, ...}`:
  https://pipedrive.readme.io/docs/core-api-concepts-responses
- field definitions (`key`, `name`, `field_type`, `options[{id, label}]`, `edit_flag`), keys
  are 40-character hashes: https://pipedrive.readme.io/docs/core-api-concepts-custom-fields
- v2 keeps custom fields in `custom_fields` (enum = option id, set = option ids, monetary =
  {value, currency}), PATCH not PUT, strict types:
  https://pipedrive.readme.io/docs/pipedrive-api-v2-migration-guide
- v1 leads: uuid ids, deal custom fields as top-level hash keys shown only when set, PATCH
  changes only what it is given and null unsets (Pipedrive's OpenAPI, Leads)
- burst limit per token in a rolling 2-second window, `x-ratelimit-limit/-remaining/-reset`:
  https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting

The 401 body is the live API's (observed). The 404, 400 and 429 texts are undocumented; they
use the documented envelope with this stand-in's wording.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins.server import StandIn

ERROR_INFO = "Please check developers.pipedrive.com"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LEAD_KEYS = {"title", "owner_id", "person_id", "organization_id", "value", "expected_close_date",
             "label_ids", "is_archived", "was_seen", "visible_to", "channel", "channel_id"}
READ_ONLY = {"id", "add_time", "update_time", "creator_user_id"}
SYSTEM_FIELDS = {  # a few of the built-in (edit_flag false) fields each list starts with
    "person": [("name", "Name", "varchar"), ("email", "Email", "varchar"),
               ("phone", "Phone", "phone"), ("owner_id", "Owner", "user")],
    "deal": [("title", "Title", "varchar"), ("value", "Value", "monetary"),
             ("status", "Status", "status"), ("user_id", "Owner", "user")],
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _fail(status: int, error: str, **extra: Any) -> JSONResponse:
    body = {"success": False, "error": error, "error_info": ERROR_INFO, "data": None,
            "additional_data": None, **extra}
    return JSONResponse(body, status_code=status)


def _ok(data: Any, **additional: Any) -> JSONResponse:
    return JSONResponse({"success": True, "data": data, "additional_data": additional or None})


def _field(id: int, key: str, name: str, field_type: str, *, custom: bool = False,
           options: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": id, "key": key, "name": name, "field_type": field_type, "options": options,
            "edit_flag": custom, "active_flag": True, "mandatory_flag": key in ("name", "title")}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_v2(field: dict[str, Any], value: Any) -> bool:
    """Does `value` have the API v2 shape for this custom field (None always clears)?"""
    kind, option_ids = field["field_type"], {o["id"] for o in field["options"] or []}
    if value is None:
        return True
    if kind == "enum":
        return isinstance(value, int) and not isinstance(value, bool) and value in option_ids
    if kind == "set":
        return (isinstance(value, list) and bool(value)
                and all(isinstance(v, int) and v in option_ids for v in value))
    if kind == "monetary":
        return (isinstance(value, dict) and _is_number(value.get("value"))
                and isinstance(value.get("currency"), str))
    if kind == "double":
        return _is_number(value)
    if kind in ("user", "org", "people"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("varchar", "varchar_auto", "text", "phone", "date"):
        return isinstance(value, str)
    return True


class PipedriveStandIn(StandIn):
    """Pipedrive in memory: field definitions, persons and deals (v2 shape), leads (v1 shape)."""

    def __init__(self, token: str, *, user_id: int = 100, company_id: int = 200,
                 burst: int = 40, window: float = 2.0) -> None:
        super().__init__(burst, window)
        self.token, self.user_id, self.company_id = token, user_id, company_id
        self.person_fields: list[dict[str, Any]] = [
            _field(i, *f) for i, f in enumerate(SYSTEM_FIELDS["person"], 1)]
        self.deal_fields: list[dict[str, Any]] = [
            _field(i, *f) for i, f in enumerate(SYSTEM_FIELDS["deal"], 1)]
        self.persons: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.writes: list[dict[str, Any]] = []  # (entity, id, body) of each PATCH that succeeded
        self._ids = itertools.count(1000)
        self.app = Starlette(routes=[
            Route("/v1/personFields", self._endpoint(self._fields), methods=["GET"]),
            Route("/v1/dealFields", self._endpoint(self._fields), methods=["GET"]),
            Route("/v1/users/me", self._endpoint(self._me), methods=["GET"]),
            Route("/v1/leads/{id}", self._endpoint(self._lead), methods=["GET", "PATCH"]),
            Route("/api/v2/{entity:str}/{id:int}", self._endpoint(self._v2),
                  methods=["GET", "PATCH"]),
        ])

    # -- set-up and scripting (called from the test thread) -----------------------------------

    def add_field(self, entity: str, name: str, field_type: str,
                  options: list[str] | None = None) -> str:
        """Define a custom field on "person" or "deal" (leads use deal fields); returns its key."""
        with self._lock:
            key = hashlib.sha1(f"{entity}/{name}/{next(self._ids)}".encode()).hexdigest()
            choices = [{"id": next(self._ids), "label": o} for o in options] if options else None
            self._field_list(entity).append(
                _field(next(self._ids), key, name, field_type, custom=True, options=choices))
            return key

    def _field_list(self, entity: str) -> list[dict[str, Any]]:
        return self.person_fields if entity in ("person", "persons") else self.deal_fields

    def option_id(self, entity: str, key: str, label: str) -> int:
        """The id of an enum/set option, found by its label."""
        field = next(f for f in self._field_list(entity) if f["key"] == key)
        return int(next(o["id"] for o in field["options"] if o["label"] == label))

    def add_person(self, id: int, name: str, **custom_fields: Any) -> None:
        """Create a person as API v2 shows it; `custom_fields` in v2 shapes, keyed by hash."""
        with self._lock:
            self.persons[id] = self._item(id, name=name, org_id=None, emails=[], phones=[],
                                          custom_fields=dict(custom_fields))

    def add_deal(self, id: int, title: str, **custom_fields: Any) -> None:
        """Create a deal as API v2 shows it; `custom_fields` in v2 shapes, keyed by hash."""
        with self._lock:
            self.deals[id] = self._item(
                id, title=title, creator_user_id=self.user_id, person_id=None, org_id=None,
                value=0, currency="EUR", status="open", stage_id=1, pipeline_id=1,
                is_archived=False, custom_fields=dict(custom_fields))

    def _item(self, id: int, **fields: Any) -> dict[str, Any]:
        return {"id": id, "owner_id": self.user_id, "add_time": _now(), "update_time": _now(),
                "is_deleted": False, "visible_to": 3, "label_ids": [], **fields}

    def add_lead(self, title: str, person_id: int | None = None, **custom_fields: Any) -> str:
        """Create a lead (v1 shape: deal custom fields as top-level hash keys); returns its id."""
        lead_id = str(uuid.uuid4())
        with self._lock:
            self.leads[lead_id] = {
                "id": lead_id, "title": title, "owner_id": self.user_id,
                "creator_id": self.user_id, "label_ids": [], "person_id": person_id,
                "organization_id": None, "source_name": "API", "origin": "API",
                "is_archived": False, "was_seen": False, "value": None,
                "expected_close_date": None, "add_time": _now(), "update_time": _now(),
                "visible_to": "3", **custom_fields}
        return lead_id

    # -- the vendor's answers for the shared pipeline ------------------------------------------

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("x-api-token") or request.query_params.get("api_token")
        return token == self.token

    def _unauthorized(self) -> Response:
        return JSONResponse({"success": False, "error": "unauthorized access", "errorCode": 401,
                             "error_info": ERROR_INFO}, status_code=401)

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        left = self._burst.remaining() if remaining is None else remaining
        return {"x-ratelimit-limit": str(self._burst.limit), "x-ratelimit-remaining": str(left),
                "x-ratelimit-reset": str(self._burst.reset_in())}

    def _refused(self, status: int) -> Response:
        if status != 429:
            return _fail(status, "Requested service is not available", errorCode=status)
        response = _fail(429, "Rate limit exceeded", errorCode=429)
        response.headers.update(self._rate_headers(remaining=0))
        return response

    # -- endpoints -------------------------------------------------------------------------------

    async def _fields(self, request: Request) -> Response:
        start = int(request.query_params.get("start", 0))
        limit = min(int(request.query_params.get("limit", 100)), 500)
        with self._lock:
            fields = self._field_list("person" if "person" in request.url.path else "deal")
            page = fields[start:start + limit]
            more = start + limit < len(fields)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return _ok(page, pagination=pagination)

    async def _me(self, request: Request) -> Response:
        return _ok({
            "id": self.user_id, "name": "Stand-in User", "email": "standin@example.com",
            "default_currency": "EUR", "locale": "en_US", "lang": 1, "activated": True,
            "active_flag": True, "is_admin": 1, "role_id": 1, "timezone_name": "Europe/Tallinn",
            "is_you": True, "is_deleted": False, "company_id": self.company_id,
            "company_name": "Stand-in Company", "company_domain": "standin",
            "company_country": "EE", "language": {"language_code": "en", "country_code": "US"}})

    @staticmethod
    async def _json_object(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _v2(self, request: Request) -> Response:
        entity, item_id = request.path_params["entity"], request.path_params["id"]
        if entity not in ("persons", "deals"):
            return _fail(404, "Unknown endpoint")
        name = "person" if entity == "persons" else "deal"
        store = self.persons if entity == "persons" else self.deals
        fields = self._field_list(entity)
        body = await self._json_object(request) if request.method == "PATCH" else {}
        with self._lock:
            item = store.get(item_id)
            if item is None or item["is_deleted"]:
                return _fail(404, f"{name.capitalize()} not found")
            if body is None:
                return _fail(400, "Request body must be a JSON object")
            custom = body.get("custom_fields", {})
            defined = {f["key"]: f for f in fields if f["edit_flag"]}
            bad = [k for k in body if k not in item or k in READ_ONLY]
            if not isinstance(custom, dict):
                bad.append("custom_fields")
            elif unknown := [k for k in custom if k not in defined]:
                return _fail(400, f"Unknown custom field: {unknown[0]}", field_code=unknown[0])
            elif invalid := [k for k, v in custom.items() if not _valid_v2(defined[k], v)]:
                return _fail(400, f"Invalid value for custom field {invalid[0]} "
                             f"({defined[invalid[0]]['field_type']})", field_code=invalid[0])
            if bad:
                return _fail(400, f"Invalid field(s) in the request body: {', '.join(bad)}")
            if request.method == "PATCH":
                item.update({k: v for k, v in body.items() if k != "custom_fields"})
                for key, value in custom.items():
                    if value is None:
                        item["custom_fields"].pop(key, None)
                    else:
                        item["custom_fields"][key] = value
                item["update_time"] = _now()
                self.writes.append({"entity": name, "id": item_id, "body": body})
            return _ok(item)  # rendered to bytes here, under the lock

    async def _lead(self, request: Request) -> Response:
        lead_id = request.path_params["id"]
        body = await self._json_object(request) if request.method == "PATCH" else {}
        with self._lock:
            lead = self.leads.get(lead_id)
            if not UUID.match(lead_id):
                return _fail(400, "Lead ID must be a valid UUID")
            if lead is None:
                return _fail(404, "Lead not found")
            if body is None:
                return _fail(400, "Request body must be a JSON object")
            hashes = {f["key"] for f in self.deal_fields if f["edit_flag"]}
            bad = [k for k in body if k not in LEAD_KEYS and k not in hashes]
            if bad:
                return _fail(400, f"Invalid field(s) in the request body: {', '.join(bad)}")
            if request.method == "PATCH":
                for key, value in body.items():
                    if value is None and key in hashes:
                        lead.pop(key, None)
                    else:
                        lead[key] = value
                lead["update_time"] = _now()
                self.writes.append({"entity": "lead", "id": lead_id, "body": body})
            return _ok(lead)

