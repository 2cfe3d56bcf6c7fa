"""One error shape for every failure, and the handlers that map exceptions to it.

    {"error": "invalid_lead", "message": "expected a number, got 'lots'", "field": "budget"}

``error`` is a stable code for programs, ``message`` says what to do, ``field`` names the
offending input. A client's mistake is always 4xx; a 500 means a bug, is logged with its
traceback under the request id, and shows neither trace nor exception text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from qualify import EngineClosedError, EngineError, LeadError
from service.logs import REQUEST_ID

log = logging.getLogger("qualify.service")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 408: "request_timeout",
               413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
               429: "too_many_requests", 503: "not_ready"}


class FieldError(BaseModel):
    field: str = Field(description="the input at fault, e.g. leads.3 or as_of")
    location: str = Field(description="body, query, path or header")
    message: str


class ErrorBody(BaseModel):
    """Every error answer has this shape (some add keys, e.g. a reload's problems)."""

    error: str = Field(description="a stable code, e.g. invalid_lead, malformed_json")
    message: str = Field(description="what went wrong and what to do")
    field: str | None = Field(default=None, description="the offending field, if any")
    errors: list[FieldError] | None = Field(default=None, description="every invalid input")


class ApiError(Exception):
    """Raised by the service's code; answered as ``ErrorBody`` with ``status``."""

    def __init__(self, status: int, error: str, message: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


def lead_error(e: LeadError) -> ApiError:
    return ApiError(422, "invalid_lead", e.reason, field=e.field)


def _count(request: Request, kind: str) -> None:
    service = getattr(request.app.state, "service", None)
    if service is not None:
        service.metrics.errors.labels(kind).inc()


def _respond(request: Request, error: ApiError) -> JSONResponse:
    _count(request, error.error)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic/FastAPI errors as ``{field, location, message}``."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc and loc[0] in ("body", "query", "path", "header", "cookie") \
            else "body"
        parts = loc[1:] if loc and loc[0] == where else loc
        name = ".".join(parts) or where
        out.append({"field": name, "location": where, "message": str(err.get("msg", ""))})
    return out


def validation_error(errors: Sequence[Any]) -> ApiError:
    """422 naming every field at fault (400 if the body was not JSON at all)."""
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            return ApiError(400, "malformed_json", f"malformed JSON: {reason}")
    problems = field_errors(errors)
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return ApiError(422, "invalid_request", f"{first['field']}: {first['message']}",
                    field=first["field"], extra={"errors": problems})


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(request, exc)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _respond(request, validation_error(exc.errors()))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = {404: "no such endpoint; see /docs",
               413: "the request body is too large",
               405: "method not allowed on this endpoint"}.get(exc.status_code,
                                                                str(exc.detail))
    return _respond(request, ApiError(exc.status_code, code, message,
                                      headers=exc.headers or {}))


async def _lead(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LeadError)
    return _respond(request, lead_error(exc))


async def _engine(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, EngineClosedError):  # only while shutting down
        return _respond(request, ApiError(503, "not_ready", "the service is shutting down",
                                          headers={"Retry-After": "1"}))
    log.error("engine error: %s", exc)
    return _respond(request, ApiError(422, "unscorable_lead",
                                      "the rule engine could not evaluate this lead"))


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("qualify.request_id") or REQUEST_ID.get()
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    _count(request, "internal_error")
    message = "internal error" + (f"; quote request id {request_id}" if request_id else "")
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse({"error": "internal_error", "message": message}, status_code=500,
                        headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(LeadError, _lead)
    app.add_exception_handler(EngineError, _engine)
    app.add_exception_handler(Exception, _internal)


# Documented on every operation (schemathesis checks that no other status appears).
COMMON: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed JSON, or a body that is not JSON"},
    408: {"model": ErrorBody, "description": "the body did not arrive in time "
          "(QUALIFY_BODY_TIMEOUT, 30 s)"},
    413: {"model": ErrorBody, "description": "the body is over the size limit (1 MiB)"},
    422: {"model": ErrorBody, "description": "an input has the wrong type or value; "
          "``field`` names it"},
}
AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong API key"},
    403: {"model": ErrorBody, "description": "no API key is configured, and the client is "
          "not on the service's machine"},
}
