"""``GET /v1/outbox`` (write-back jobs) and ``POST /v1/outbox/retry`` (queue them again).

Both need the admin key: jobs hold CRM records.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from service.bodies import parse_json, read_body
from service.deps import ServiceDep
from service.errors import COMMON, ErrorBody, validation_error
from service.security import ADMIN, AdminAuth

router = APIRouter(prefix="/v1/outbox", tags=["outbox"])

JSON = "application/json"
State = Literal["queued", "running", "delivered", "skipped", "invalid", "dead", "superseded"]


class OutboxJob(BaseModel):
    id: int
    crm: str
    object_type: str
    object_id: str
    state: State
    attempts: int
    source: str | None
    delivery_id: str | None
    as_of: str | None
    created_at: float = Field(description="Unix time")
    updated_at: float
    not_before: float = Field(description="when a queued job is due (Unix time)")
    last_error: str | None = Field(description="the CRM's error, or why nothing was written")
    outcome: dict[str, Any] | None = Field(description="what was written")


class OutboxList(BaseModel):
    jobs: list[OutboxJob]
    next_after: int | None = Field(description="pass as `after` for the next page")


class RetryRequest(BaseModel):
    ids: list[int] | None = Field(default=None, max_length=10_000,
                                  description="jobs to retry (default: every dead one)")
    states: list[Literal["dead", "invalid"]] = Field(default=["dead"], min_length=1)


class RetryResult(BaseModel):
    queued: list[int]


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong admin key"},
    403: {"model": ErrorBody, "description": "no admin key is configured (without API "
          "keys either: the client is not on the service's machine)"}}


@router.get("", summary="Write-back jobs (admin)", operation_id="outbox",
            response_class=Response, openapi_extra=ADMIN,
            responses={200: {"model": OutboxList}, 422: COMMON[422], **ADMIN_ERRORS})
async def jobs(_: AdminAuth, service: ServiceDep,
               state: Annotated[list[State] | None, Query(
                   description="only jobs in these states")] = None,
               crm: Annotated[str | None, Query(max_length=32)] = None,
               after: Annotated[int, Query(ge=0, description="jobs with a larger id")] = 0,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Jobs oldest first, with their state, attempts, the CRM's last error and what was
    written. `state=dead` lists the dead letters, `state=invalid` the records the rule base
    could not read."""
    found = await anyio.to_thread.run_sync(
        lambda: service.store.jobs(states=state, crm=crm, limit=limit, after=after))
    for job in found:
        job.pop("record", None)  # lead data stays in the store
        job.pop("lease_until", None)
    body = {"jobs": found, "next_after": found[-1]["id"] if len(found) == limit else None}
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                    media_type=JSON)


@router.post("/retry", summary="Queue dead or invalid jobs again (admin)",
             operation_id="outbox_retry", response_class=Response,
             openapi_extra={**ADMIN, "requestBody": {"required": False, "content": {
                 "application/json": {"schema": {
                     "$ref": "#/components/schemas/RetryRequest"}}}}},
             responses={200: {"model": RetryResult}, **COMMON, **ADMIN_ERRORS})
async def retry(request: Request, _: AdminAuth, service: ServiceDep) -> Response:
    """Queue jobs again with their attempts reset: by id, or every job in `states`
    (default: every dead one). An invalid job is scored again, with the rule base and
    mapping now loaded. An empty body retries every dead job."""
    body = await read_body(request, service.settings.max_body_bytes,
                           service.settings.body_timeout)
    try:
        asked = RetryRequest.model_validate(parse_json(body) if body.strip() else {})
    except ValidationError as e:
        raise validation_error(e.errors()) from None
    queued = await anyio.to_thread.run_sync(
        lambda: service.store.requeue(asked.ids, asked.states))
    if queued:
        service.wake_outbox()
    return Response(json.dumps({"queued": queued}), media_type=JSON)
