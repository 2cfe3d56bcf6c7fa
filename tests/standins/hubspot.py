"""A local stand-in for HubSpot's CRM v3 objects API, as a private app sees it.

Documented contract followed:
- batch/read and batch/update bodies and `BatchResponseSimplePublicObject` answers:
  https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects
  https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/update-objects
- 200 when a batch update fully succeeds, 207 when part of it fails:
  https://developers.hubspot.com/changelog/simplifying-batch-update-response-codes-for-crm-v3-apis
- error bodies: https://developers.hubspot.com/docs/api-reference/latest/error-handling
- burst limit, `X-HubSpot-RateLimit-*` headers, the 429 body (`errorType: RATE_LIMIT`,
  `policyName`): https://developers.hubspot.com/docs/api/usage-details

Observed, not documented, and copied: unknown ids give a 207 with one OBJECT_NOT_FOUND error
listing them in `context.ids`; an unknown property or a bad option value rejects the whole batch
with 400 VALIDATION_ERROR "Property values were not valid: [...]" and writes nothing; over 100
inputs, or a repeated id, is a 400. The limit's own 429 has no Retry-After (none is documented).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins.server import StandIn

BATCH_LIMIT = 100
HISTORY_BATCH_LIMIT = 50
DAILY_LIMIT = 250_000
# HubSpot names the object in upper-case singular in its error messages.
SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "deals": "DEAL", "tickets": "TICKET"}
# Returned when a read names no properties (HubSpot's defaults for the common objects).
DEFAULT_PROPERTIES = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
}
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, category: str, message: str, **extra: Any) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}
    return JSONResponse(body, status_code=status)


def _text(value: Any) -> str:
    """HubSpot stores every property value as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class HubSpotStandIn(StandIn):
    """HubSpot's objects API in memory: `objects[type][id]` holds each record's properties."""

    def __init__(self, token: str, *, burst: int = 100, window: float = 10.0) -> None:
        super().__init__(burst, window)
        self.token = token
        self.objects: dict[str, dict[str, dict[str, str | None]]] = {}
        self.properties: dict[str, set[str]] = {}  # names that exist, per object type
        self.options: dict[str, dict[str, set[str]]] = {}  # enumeration values, per property
        self.writes: list[dict[str, Any]] = []  # one per record updated
        self.reads: list[dict[str, Any]] = []  # one per batch read or single GET
        self._stamps: dict[tuple[str, str], list[str]] = {}  # (type, id) -> [created, updated]
        base = "/crm/v3/objects/{object_type}"
        self.app = Starlette(routes=[
            Route(base + "/batch/read", self._endpoint(self._batch_read), methods=["POST"]),
            Route(base + "/batch/update", self._endpoint(self._batch_update), methods=["POST"]),
            Route(base + "/{object_id}", self._endpoint(self._get_one), methods=["GET"]),
        ])

    # -- set-up and scripting (called from the test thread) -----------------------------------

    def add(self, object_type: str, id: str, **properties: Any) -> None:
        """Create or replace a record; its property names become ones that exist."""
        with self._lock:
            self.properties.setdefault(object_type, set()).update(properties)
            self.objects.setdefault(object_type, {})[id] = {
                k: None if v is None else _text(v) for k, v in properties.items()
            }
            self._stamps[(object_type, id)] = [_now(), _now()]

    def define(self, object_type: str, name: str, options: list[str] | None = None) -> None:
        """Make a property exist (with no value anywhere); `options` makes it an enumeration."""
        with self._lock:
            self.properties.setdefault(object_type, set()).add(name)
            if options is not None:
                self.options.setdefault(object_type, {})[name] = set(options)

    # -- the vendor's answers for the shared pipeline ------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def _unauthorized(self) -> Response:
        return _error(401, "INVALID_AUTHENTICATION", AUTH_MESSAGE)

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        left = self._burst.remaining() if remaining is None else remaining
        return {
            "X-HubSpot-RateLimit-Max": str(self._burst.limit),
            "X-HubSpot-RateLimit-Remaining": str(left),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self._burst.window * 1000)),
            "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, DAILY_LIMIT - self._admitted)),
        }

    def _refused(self, status: int) -> Response:
        if status != 429:
            return _error(status, "INTERNAL_ERROR" if status >= 500 else "ERROR",
                          "internal error" if status >= 500 else "scripted error")
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING"}
        return JSONResponse(body, status_code=429, headers=self._rate_headers(remaining=0))

    # -- endpoints -------------------------------------------------------------------------------

    def _record(self, object_type: str, id: str, names: list[str]) -> dict[str, Any]:
        """One result as HubSpot gives it; the caller holds the lock."""
        props = self.objects[object_type][id]
        known = self.properties.get(object_type, set())
        created, updated = self._stamps[(object_type, id)]
        modified = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
        shown: dict[str, str | None] = {"hs_object_id": id, "createdate": created,
                                        modified: updated}
        shown.update({n: props.get(n) for n in names if n in known})
        return {"id": id, "properties": shown, "createdAt": created, "updatedAt": updated,
                "archived": False}

    def _find(self, object_type: str, key: str, id_property: str | None) -> str | None:
        records = self.objects.get(object_type, {})
        if not id_property or id_property == "hs_object_id":
            return key if key in records else None
        return next((i for i, p in records.items() if p.get(id_property) == key), None)

    def _batch(self, status: str, results: list[Any], missing: list[str], object_type: str,
               started: str) -> JSONResponse:
        body: dict[str, Any] = {"status": status, "results": results}
        if missing:
            word = SINGULAR.get(object_type, object_type.upper())
            body["numErrors"] = 1
            body["errors"] = [{
                "status": "error", "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {word} objects, they may be deleted or not exist."
                           " Check that ids are valid.",
                "context": {"ids": missing}}]
        body.update(startedAt=started, completedAt=_now())
        return JSONResponse(body, status_code=207 if missing else 200)

    @staticmethod
    async def _inputs(request: Request) -> tuple[dict[str, Any], list[Any]] | JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON: `inputs` must be a list")
        if len(inputs) > BATCH_LIMIT:
            return _error(400, "VALIDATION_ERROR", "The maximum number of inputs supported in a "
                          f"batch is {BATCH_LIMIT}. Please reduce the number of items and try "
                          "again")
        return body, inputs

    async def _batch_read(self, request: Request) -> Response:
        started, object_type = _now(), request.path_params["object_type"]
        parsed = await self._inputs(request)
        if isinstance(parsed, Response):
            return parsed
        body, inputs = parsed
        history = body.get("propertiesWithHistory") or []
        if history and len(inputs) > HISTORY_BATCH_LIMIT:
            return _error(400, "VALIDATION_ERROR", "The maximum number of inputs supported in a "
                          f"batch request for property histories is {HISTORY_BATCH_LIMIT}. Please "
                          "reduce the number of items and try again")
        names = list(body.get("properties") or DEFAULT_PROPERTIES.get(object_type, ()))
        keys = [str(i.get("id")) for i in inputs]
        results, missing = [], []
        with self._lock:
            self.reads.append({"object_type": object_type, "ids": keys, "properties": names,
                               "id_property": body.get("idProperty")})
            for key in dict.fromkeys(keys):
                found = self._find(object_type, key, body.get("idProperty"))
                if found is None:
                    missing.append(key)
                else:
                    results.append(self._record(object_type, found, names))
        return self._batch("COMPLETE", results, missing, object_type, started)

    def _invalid(self, object_type: str, properties: dict[str, Any]) -> list[dict[str, Any]]:
        """HubSpot's per-property validation results for one input; the caller holds the lock."""
        known = self.properties.get(object_type, set())
        options = self.options.get(object_type, {})
        problems = []
        for name, value in properties.items():
            if name not in known:
                message, code = f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"
            elif name in options and _text(value) and (
                    bad := [v for v in _text(value).split(";") if v not in options[name]]):
                allowed = ", ".join(sorted(options[name]))
                message = f"{bad[0]} was not one of the allowed options: [{allowed}]"
                code = "INVALID_OPTION"
            else:
                continue
            problems.append({"isValid": False, "message": message, "error": code, "name": name,
                             "localizedErrorMessage": message})
        return problems

    async def _batch_update(self, request: Request) -> Response:
        started, object_type = _now(), request.path_params["object_type"]
        parsed = await self._inputs(request)
        if isinstance(parsed, Response):
            return parsed
        _, inputs = parsed
        keys = [str(i.get("id")) for i in inputs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            return _error(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: "
                          f"[{', '.join(repeated)}]. IDs must be unique", context={"ids": repeated})
        if not all(isinstance(i.get("properties"), dict) for i in inputs):
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON: no `properties` object")
        results, missing = [], []
        with self._lock:
            problems = [p for i in inputs for p in self._invalid(object_type, i["properties"])]
            if problems:
                detail = json.dumps(problems, separators=(",", ":"))
                return _error(400, "VALIDATION_ERROR", f"Property values were not valid: {detail}")
            for key, item in zip(keys, inputs, strict=True):
                found = self._find(object_type, key, item.get("idProperty"))
                if found is None:
                    missing.append(key)
                    continue
                written = {k: _text(v) for k, v in item["properties"].items()}
                self.objects[object_type][found].update(written)
                self._stamps[(object_type, found)][1] = _now()
                self.writes.append({"object_type": object_type, "id": found,
                                    "properties": written})
                results.append(self._record(object_type, found, list(written)))
        return self._batch("COMPLETE", results, missing, object_type, started)

    async def _get_one(self, request: Request) -> Response:
        object_type, key = request.path_params["object_type"], request.path_params["object_id"]
        asked = request.query_params.get("properties")
        names = asked.split(",") if asked else list(DEFAULT_PROPERTIES.get(object_type, ()))
        with self._lock:
            self.reads.append({"object_type": object_type, "ids": [key], "properties": names,
                               "id_property": request.query_params.get("idProperty")})
            found = self._find(object_type, key, request.query_params.get("idProperty"))
            if found is not None:
                return JSONResponse(self._record(object_type, found, names))
        return _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.",
                      context={"id": [key]})
