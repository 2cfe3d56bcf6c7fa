"""``POST /v1/score`` (one lead) and ``POST /v1/score/batch`` (up to 1,000 leads)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from qualify import Verdict
from service.bodies import read_json, require_object
from service.deps import json_operation, scoring
from service.direct import DirectRoute
from service.errors import AUTH, COMMON, ApiError, ErrorBody, validation_error
from service.middleware import log_fields
from service.schemas import BatchRequest, BatchResult
from service.security import CLIENT

router = APIRouter(prefix="/v1/score", tags=["score"], route_class=DirectRoute)

JSON = "application/json"


@router.post(
    "", summary="Score one lead", operation_id="score",
    response_class=Response,
    responses={200: {"model": Verdict, "description": "the verdict; `rulebook.sha256` "
                     "names the rule base that gave it"},
               **AUTH, **COMMON,
               422: {"model": ErrorBody, "description": "a bad lead: `field` names the "
                     "field, `message` says why"}},
    openapi_extra={**CLIENT, **json_operation("Lead")})
async def score(request: Request) -> Response:
    """Score a lead (a JSON object of the rule base's fields; other keys are ignored).

    Values may arrive as CRMs send them: numbers as text ("25,000"), booleans as "Yes",
    dates as ISO text or epoch milliseconds, lists as "a;b". A missing field is unknown,
    not false: the verdict lists what is unknown and what to find out next.
    """
    service, options = await scoring(request)
    settings = service.settings
    lead = require_object(await read_json(request, settings.max_body_bytes,
                                          settings.body_timeout), "a lead")
    scored = service.scorer.score(lead, as_of=options.as_of, locale=options.locale,
                                  source="api", fields=log_fields(request))
    return Response(scored.json, media_type=JSON,
                    headers={"X-Qualify-Rulebook": scored.verdict.rulebook["sha256"]})


@router.post(
    "/batch", summary="Score up to 1,000 leads", operation_id="score_batch",
    response_class=Response,
    responses={200: {"model": BatchResult, "description": "one result per lead, in order: "
                     "`{ok: true, verdict}` or `{ok: false, error: {field, message}}`"},
               **AUTH, **COMMON},
    openapi_extra={**CLIENT, **json_operation("BatchRequest")})
async def score_batch(request: Request) -> Response:
    """Score many leads with one rule base. One bad lead never fails the others, and each
    result equals what `POST /v1/score` gives for that lead."""
    service, options = await scoring(request)
    settings, scorer = service.settings, service.scorer
    body = require_object(await read_json(request, settings.max_body_bytes,
                                          settings.body_timeout),
                          '{"leads": [...]}')
    try:
        leads = BatchRequest.model_validate(body).leads
    except ValidationError as e:
        raise validation_error(e.errors(include_url=False)) from None
    if len(leads) > settings.max_batch:
        raise ApiError(422, "invalid_request", f"at most {settings.max_batch:,} leads per "
                       f"batch, got {len(leads):,}: split the batch", field="leads")
    as_of, locale = options.as_of, options.locale
    if len(leads) <= settings.inline_batch:
        outcome = scorer.batch(leads, as_of=as_of, locale=locale)
    else:  # keep the event loop free for other requests
        outcome = await anyio.to_thread.run_sync(
            lambda: scorer.batch(leads, as_of=as_of, locale=locale))
    log_fields(request).update(sha256=outcome.sha256, leads=len(leads), ok=outcome.ok,
                               failed=outcome.failed)
    return Response(outcome.json, media_type=JSON,
                    headers={"X-Qualify-Rulebook": outcome.sha256})
