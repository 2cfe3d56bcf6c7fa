"""A local stand-in for Salesforce: the OAuth 2.0 client credentials login and the REST API.

One app serves both the login host (`POST /services/oauth2/token`) and the instance
(`/services/data/vXX.X/...`); the token answer's `instance_url` is this server's own base URL
(set `instance_url` after `serving()` starts, or leave it None to answer with the request's).

Documented contract followed:
- client credentials flow: form fields `grant_type=client_credentials`, `client_id`,
  `client_secret`; the answer `{access_token, signature, scope, instance_url, id, token_type:
  "Bearer", issued_at}` (no `expires_in`), only on the org's My Domain host:
  https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_client_credentials_flow.htm
  https://help.salesforce.com/apex/HTViewHelpDoc?id=service.conversation_transcript_api_sample1.htm
- sObject Collections update: `PATCH .../composite/sobjects` `{allOrNone, records: [{attributes:
  {type}, id, ...}]}`, up to 200 records, SaveResults `{id, success, errors: [{statusCode,
  message, fields}]}` in request order, 200 when well formed and 400 when not, a failed record
  has no `id`, allOrNone rolls the others back with ALL_OR_NONE_OPERATION_ROLLED_BACK, and a
  wrong-type id is MALFORMED_ID "Contact ID: id value of incorrect type: ...":
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
- sObject Collections retrieve: `GET .../composite/sobjects/{type}?ids=&fields=`, a list in id
  order with null for an id that is invalid or not there, 400 for a field that does not exist:
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm
- sObject Rows GET with the optional `fields` list (400 for a field that does not exist):
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_get_field_values.htm
- error bodies are a JSON array of `{message, errorCode}`; 401 for an expired or invalid session,
  403 for a refused request such as the API allocation being used up, 404 for a missing
  resource: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
- `Sforce-Limit-Info: api-usage=used/limit` on each answer:
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm

Observed, not documented, and copied: the OAuth errors are 400 `{"error": "invalid_client",
"error_description": "invalid client credentials"}` (wrong secret), `invalid_client_id` "client
identifier invalid" (wrong id) and `unsupported_grant_type`; a dead token gets 401
`[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]`; over 200
records is a 400 EXCEEDED_ID_LIMIT "record limit reached. cannot submit more than 200 records
into this call"; a field that does not exist is a 400 INVALID_FIELD "No such column 'X' on sobject
of type Lead" for the whole call (documented only for single-record calls) and writes nothing;
a well-formed id with no record behind it is ENTITY_IS_DELETED "entity is deleted" (the docs give
no code for it); a missing id is MISSING_ARGUMENT "Id not specified in an update call"; the
allocation refusal is 403 REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded.".

Not modelled: field types and picklist values (any JSON value is kept), the 10-chunk rule for
mixed types, repeated ids in one call, the concurrent long-request limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins.server import Handler, StandIn

COLLECTION_LIMIT = 200
DAY = 86_400.0
ORG_ID = "00D5g000004FakeEAA"
USER_ID = "0055g00000FakeUAAQ"
# Key prefixes of the standard objects qualify may write (the first three characters of an id).
KEY_PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q"}
ID_SHAPE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
VERSION = re.compile(r"^v(\d{2,3})\.(\d)$")
ROLLED_BACK = ("Record rolled back because not all records were valid and the request was using "
               "AllOrNone header")
NOT_THERE = "The requested resource does not exist"


def _errors(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": error_code}], status_code=status)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _failure(status_code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """A failed SaveResult: no `id` key, as in the documented examples."""
    return {"success": False,
            "errors": [{"statusCode": status_code, "message": message, "fields": fields or []}]}


def _version(text: str) -> tuple[int, int] | None:
    match = VERSION.match(text)
    return (int(match[1]), int(match[2])) if match else None


class SalesforceStandIn(StandIn):
    """Salesforce in memory: `records[type][id]` holds each record's fields by their API names."""

    def __init__(self, client_id: str, client_secret: str, *, api_version: str = "v60.0",
                 token_ttl: float = 3600.0, daily_limit: int = 100_000) -> None:
        super().__init__(daily_limit, DAY)  # the rolling 24-hour API allocation
        if _version(api_version) is None:
            raise ValueError(f"api_version must look like v60.0, not {api_version!r}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.token_ttl = token_ttl
        self.instance_url: str | None = None  # None: answer with the request's own base URL
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.fields: dict[str, dict[str, str]] = {}  # per type: lower-case name -> API name
        self.writes: list[dict[str, Any]] = []  # one per record updated
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._serial = itertools.count(1)
        data = "/services/data/{version}"
        self.app = Starlette(routes=[
            Route("/services/oauth2/token", self._login(self._token), methods=["POST"]),
            Route(data + "/composite/sobjects", self._endpoint(self._in_version(self._update)),
                  methods=["PATCH"]),
            Route(data + "/composite/sobjects/{sobject}",
                  self._endpoint(self._in_version(self._retrieve)), methods=["GET"]),
            Route(data + "/sobjects/{sobject}/{record_id}",
                  self._endpoint(self._in_version(self._get_one)), methods=["GET"]),
        ])

    # -- set-up and scripting (called from the test thread) -----------------------------------

    def define(self, sobject_type: str, *field_names: str) -> None:
        """Make fields exist on a type (Id always does); names match case-insensitively."""
        with self._lock:
            self._define(sobject_type, ("Id", *field_names))

    def add(self, sobject_type: str, id: str, **fields: Any) -> None:
        """Create or replace a record; its field names become ones that exist."""
        with self._lock:
            self._define(sobject_type, ("Id", *fields))
            self.records.setdefault(sobject_type, {})[id] = {"Id": id, **fields}

    def expire_tokens(self) -> None:
        """Every token issued so far stops working, as when the session times out."""
        with self._lock:
            self._tokens.clear()

    def _define(self, sobject_type: str, names: tuple[str, ...]) -> None:
        known = self.fields.setdefault(sobject_type, {})
        for name in names:
            known.setdefault(name.lower(), name)

    # -- the login host --------------------------------------------------------------------------

    def _login(self, handler: Handler) -> Handler:
        """The token endpoint takes scripted faults and is logged, but needs no session and
        does not count against the API allocation."""
        async def endpoint(request: Request) -> Response:
            fault = self._faults.take()
            if fault is not None:
                await fault.wait()
            if fault is not None and fault.status >= 400:
                error = "rate_limit_exceeded" if fault.status == 429 else "unknown_error"
                response: Response = _oauth_error(fault.status, error, "retry your request")
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
            else:
                response = await handler(request)
            with self._lock:
                self.requests.append((request.method, request.url.path, response.status_code))
            return response

        return endpoint

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "grant type not supported")
        if not hmac.compare_digest(form.get("client_id", ""), self.client_id):
            return _oauth_error(400, "invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(form.get("client_secret", ""), self.client_secret):
            return _oauth_error(400, "invalid_client", "invalid client credentials")
        base = str(request.base_url).rstrip("/")
        issued_at = str(int(time.time() * 1000))
        identity = f"{base}/id/{ORG_ID}/{USER_ID}"
        signature = base64.b64encode(hmac.new(self.client_secret.encode(),
                                              (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        token = f"{ORG_ID[:15]}!AQ{next(self._serial)}.{secrets.token_urlsafe(48)}"
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
            self.tokens_issued += 1
            instance = self.instance_url or base
        return JSONResponse({"access_token": token, "signature": signature, "scope": "api",
                             "instance_url": instance, "id": identity, "token_type": "Bearer",
                             "issued_at": issued_at})

    # -- the vendor's answers for the shared pipeline ------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in {"bearer", "oauth"} or not token:
            return False
        with self._lock:
            expiry = self._tokens.get(token.strip())
            if expiry is not None and expiry <= time.monotonic():
                del self._tokens[token.strip()]
                expiry = None
        return expiry is not None

    def _unauthorized(self) -> Response:
        return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        left = self._burst.remaining() if remaining is None else remaining
        return {"Sforce-Limit-Info": f"api-usage={self._burst.limit - left}/{self._burst.limit}"}

    def _refused(self, status: int) -> Response:
        """Salesforce refuses a used-up allocation with 403, so a scripted 429 or 403 (and the
        allocation itself) answers 403 REQUEST_LIMIT_EXCEEDED."""
        if status in (403, 429):
            response = _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            response.headers.update(self._rate_headers(remaining=0))
            return response
        if status == 401:
            return self._unauthorized()
        if status == 503:
            return _errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable.")
        if status >= 500:
            error_id = uuid.uuid4().int % 10**9
            return _errors(status, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please "
                           f"include this ErrorId if you contact support: {error_id}")
        return _errors(status, "BAD_REQUEST", "scripted error")

    # -- endpoints -------------------------------------------------------------------------------

    def _in_version(self, handler: Handler) -> Handler:
        """A version this org does not have yet (or no version at all) is a 404."""
        async def checked(request: Request) -> Response:
            asked = _version(request.path_params["version"])
            if asked is None or asked > (_version(self.api_version) or (0, 0)):
                return _errors(404, "NOT_FOUND", NOT_THERE)
            return await handler(request)

        return checked

    def _find(self, sobject_type: str, key: str) -> str | None:
        """The stored id for `key` (15 or 18 characters, like Salesforce); caller holds the lock."""
        records = self.records.get(sobject_type, {})
        if key in records:
            return key
        if len(key) in (15, 18):
            return next((i for i in records if len(i) in (15, 18) and i[:15] == key[:15]), None)
        return None

    def _malformed(self, sobject_type: str, key: str) -> bool:
        prefix = KEY_PREFIXES.get(sobject_type)
        return not ID_SHAPE.match(key) or (prefix is not None and not key.startswith(prefix))

    def _unknown_fields(self, sobject_type: str, names: Any) -> str | None:
        """The first name that is not a field of the type; the caller holds the lock."""
        known = self.fields.get(sobject_type, {})
        return next((n for n in names if n.lower() not in known), None)

    async def _update(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            return _errors(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _errors(400, "JSON_PARSER_ERROR", "records must be a list of sObjects")
        if len(records) > COLLECTION_LIMIT:
            return _errors(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                           f"than {COLLECTION_LIMIT} records into this call")
        all_or_none = body.get("allOrNone") is True
        version = request.path_params["version"]
        with self._lock:
            planned: list[tuple[str, str, dict[str, Any]] | dict[str, Any]] = []
            for record in records:
                attributes = record.get("attributes")
                sobject_type = attributes.get("type") if isinstance(attributes, dict) else None
                if not isinstance(sobject_type, str) or not sobject_type:
                    return _errors(400, "INVALID_TYPE", "No SObject Type defined in the request")
                if sobject_type not in self.fields:
                    return _errors(400, "INVALID_TYPE",
                                   f"sObject type '{sobject_type}' is not supported.")
                values = {k: v for k, v in record.items() if k != "attributes"}
                if (bad := self._unknown_fields(sobject_type, values)) is not None:
                    return _errors(400, "INVALID_FIELD",
                                   f"No such column '{bad}' on sobject of type {sobject_type}")
                planned.append(self._plan(sobject_type, values))
            failed = any(isinstance(p, dict) for p in planned)
            results: list[dict[str, Any]] = []
            for plan in planned:
                if isinstance(plan, dict):
                    results.append(plan)
                elif all_or_none and failed:
                    results.append({"id": plan[1], **_failure("ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                              ROLLED_BACK)})
                else:
                    sobject_type, found, changes = plan
                    self.records[sobject_type][found].update(changes)
                    self.writes.append({"sobject_type": sobject_type, "id": found,
                                        "fields": changes, "version": version})
                    results.append({"id": found, "success": True, "errors": []})
        return JSONResponse(results)

    def _plan(self, sobject_type: str, values: dict[str, Any]
              ) -> tuple[str, str, dict[str, Any]] | dict[str, Any]:
        """What one record of an update will do, or its failed SaveResult; caller holds the lock."""
        key = next((v for k, v in values.items() if k.lower() == "id"), None)
        if not isinstance(key, str) or not key:
            return _failure("MISSING_ARGUMENT", "Id not specified in an update call")
        found = self._find(sobject_type, key)
        if found is None and self._malformed(sobject_type, key):
            return _failure("MALFORMED_ID", f"{sobject_type} ID: id value of incorrect type: {key}",
                            ["Id"])
        if found is None:
            return _failure("ENTITY_IS_DELETED", "entity is deleted")
        known = self.fields[sobject_type]
        changes = {known[k.lower()]: v for k, v in values.items() if k.lower() != "id"}
        return sobject_type, found, changes

    def _shown(self, sobject_type: str, found: str, names: list[str] | None, version: str
               ) -> dict[str, Any]:
        """One record as the REST API gives it; the caller holds the lock."""
        record = self.records[sobject_type][found]
        known = self.fields[sobject_type]
        wanted = list(known.values()) if names is None else [known[n.lower()] for n in names]
        url = f"/services/data/{version}/sobjects/{sobject_type}/{found}"
        shown: dict[str, Any] = {"attributes": {"type": sobject_type, "url": url}}
        shown.update({name: record.get(name) for name in wanted if name != "Id"})
        shown["Id"] = found
        return shown

    @staticmethod
    def _names(text: str | None) -> list[str] | None:
        return None if text is None else [n.strip() for n in text.split(",") if n.strip()]

    async def _get_one(self, request: Request) -> Response:
        sobject_type, key = request.path_params["sobject"], request.path_params["record_id"]
        names = self._names(request.query_params.get("fields"))
        with self._lock:
            if sobject_type not in self.fields:
                return _errors(404, "NOT_FOUND", NOT_THERE)
            if names is not None and (bad := self._unknown_fields(sobject_type, names)):
                return _errors(400, "INVALID_FIELD",
                               f"No such column '{bad}' on entity '{sobject_type}'")
            found = self._find(sobject_type, key)
            if found is None and self._malformed(sobject_type, key):
                return _errors(404, "NOT_FOUND", "Provided external ID field does not exist or "
                               f"is not accessible: {key}")
            if found is None:
                return _errors(404, "NOT_FOUND", NOT_THERE)
            return JSONResponse(self._shown(sobject_type, found, names,
                                            request.path_params["version"]))

    async def _retrieve(self, request: Request) -> Response:
        sobject_type = request.path_params["sobject"]
        ids = self._names(request.query_params.get("ids"))
        names = self._names(request.query_params.get("fields"))
        if not ids or not names:
            return _errors(400, "MISSING_ARGUMENT", "ids and fields are both required")
        with self._lock:
            if sobject_type not in self.fields:
                return _errors(404, "NOT_FOUND", NOT_THERE)
            if (bad := self._unknown_fields(sobject_type, names)) is not None:
                return _errors(400, "INVALID_FIELD",
                               f"No such column '{bad}' on entity '{sobject_type}'")
            version = request.path_params["version"]
            found = [self._find(sobject_type, key) for key in ids]
            return JSONResponse([None if f is None else self._shown(sobject_type, f, names, version)
                                 for f in found])

