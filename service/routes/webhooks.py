"""``POST /v1/webhooks/{source}``: a CRM's own payload, authenticated, recorded, scored.

The answer never waits for the CRM. A delivery is recorded in the store (its id, so any
worker or instance recognises a retry; its write-back job, so the verdict reaches the CRM
record) before it is answered. A record the rule base cannot read is a data error, not a
transport error: it is answered 200 with the reason (a 4xx would make the CRM retry it for
a day, or ban the webhook) and kept as an ``invalid`` job that ``GET /v1/outbox`` lists.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response

from qualify import Profile
from service.bodies import read_body
from service.deps import OPTION_PARAMETERS, Options, Service, get_service, options
from service.direct import DirectRoute
from service.errors import COMMON, ApiError, ErrorBody
from service.inbound import Event, Inbound
from service.middleware import log_fields
from service.schemas import WebhookEvents, WebhookResult
from service.signatures import SignatureError
from service.store import NewJob

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=DirectRoute)
log = logging.getLogger("qualify.service")

JSON = "application/json"

MAX_SOURCE = 64
SOURCE: dict[str, Any] = {
    "name": "source", "in": "path", "required": True,
    "description": "a mapping profile's name: hubspot, pipedrive, generic, or one you add "
                   "beside the rule base",
    "schema": {"type": "string", "maxLength": MAX_SOURCE}, "example": "hubspot"}
OPERATION: dict[str, Any] = {
    "parameters": [SOURCE, *OPTION_PARAMETERS], "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/WebhookPayload"}}}}}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(source: str, delivery_id: str | None, *, verdict_json: bytes | None = None,
            reason: str | None = None, queued: bool = False) -> bytes:
    head = _dumps({"source": source, "delivery_id": delivery_id, "replayed": False,
                   "scored": verdict_json is not None, "queued": queued, "reason": reason})
    return head[:-1] + b',"verdict":' + (verdict_json or b"null") + b"}"


def _replayed(answer: bytes | None, source: str, delivery_id: str) -> bytes:
    if answer is None:
        return _answer(source, delivery_id, reason="a retry of a delivery already taken")
    return answer.replace(b'"replayed":false', b'"replayed":true', 1)


@router.post(
    "/{source}", summary="Score a CRM's webhook payload", operation_id="webhook",
    response_class=Response,
    responses={200: {"model": WebhookResult | WebhookEvents,
                     "description": "the verdict for the record, or why it was not scored; "
                     "for a list of events (HubSpot app webhooks), what was queued; for "
                     "Salesforce, its SOAP acknowledgement (a retry of the same delivery "
                     "gets the same answer)",
                     "content": {"text/xml": {"schema": {"type": "string"}}}},
               401: {"model": ErrorBody, "description": "bad signature, stale timestamp "
                     "or wrong credentials: nothing is scored"},
               403: {"model": ErrorBody, "description": "salesforce: an organisation that "
                     "is not in QUALIFY_SALESFORCE_ORG_IDS; nothing is queued"},
               404: {"model": ErrorBody, "description": "no such source, or its "
                     "credentials are not configured"},
               **COMMON},
    openapi_extra=OPERATION)
async def webhook(request: Request) -> Response:
    """Authenticate the request, map the payload with the source's profile, score it, and
    queue the verdict's write-back to the CRM record.

    - `hubspot`: a workflow "Send a webhook" body, or an app webhook delivery (a list of
      up to 100 events: answered at once, the records fetched, scored and written back by
      the outbox); signed with `X-HubSpot-Signature-v3` and `X-HubSpot-Request-Timestamp`
      (at most 5 minutes off).
    - `pipedrive`: webhooks v2 `{data, previous, meta}` (or v1) with HTTP basic auth. A
      retry (same `meta.id`) gets the same answer; `as_of` defaults to the event's date.
    - `salesforce`: an Outbound Message (SOAP) from an organisation of
      `QUALIFY_SALESFORCE_ORG_IDS`; answered with its acknowledgement once stored.
    - `zoho` (form fields or JSON) and `dynamics` (a Dataverse RemoteExecutionContext): a
      static token as `X-Qualify-Token`, `Authorization: Bearer` or `?token=`.
    - any other source: a JSON object signed with
      `X-Qualify-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`.

    Each source is also documented as its own operation (`POST /v1/webhooks/hubspot`, ...)
    with the body its CRM sends and the fields its mapping profile reads.

    A record the rule base cannot read is answered 200 with `scored: false` and the reason.
    """
    source: str = request.path_params["source"]
    if len(source) > MAX_SOURCE:
        raise ApiError(422, "invalid_request", f"source: at most {MAX_SOURCE} characters",
                       field="source")
    service = await get_service(request)
    snapshot = service.registry.current
    fields = log_fields(request)
    fields["source"] = source
    profile = snapshot.profiles.get(source)
    metrics = service.metrics
    if profile is None:  # the caller is not authenticated yet: the sources are not listed
        raise ApiError(404, "unknown_source", f"no webhook source '{source[:64]}': a source "
                       f"is a profile in the mappings directory, mappings/{source[:64]}.yaml",
                       field="source")
    scheme = service.webhooks.scheme(source)
    if not scheme.enabled():
        raise ApiError(404, "source_disabled", f"webhook source '{source}' is not enabled: "
                       f"set {scheme.setting}", field="source")
    body = await read_body(request, service.settings.max_body_bytes,
                           service.settings.body_timeout)
    try:
        scheme.authenticate(request, body, time.time())
    except SignatureError as e:
        metrics.webhooks.labels(source, "rejected").inc()
        raise ApiError(401, "unauthorized", str(e)) from None
    query = await options(request)  # after authentication: no answer to strangers' input
    try:
        inbound = scheme.unwrap(scheme.parse(body, request.headers.get("content-type", "")),
                                profile)
    except ApiError as e:
        if e.status == 403:
            metrics.webhooks.labels(source, "rejected").inc()
        raise
    if inbound.thin:
        return await _thin(service, source, profile, inbound)
    return await _record(service, source, profile, inbound.events[0], options=query,
                         fields=fields)


async def _record(service: Service, source: str, profile: Profile, event: Event, *,
                  options: Options, fields: dict[str, Any]) -> Response:
    """One record: scored now (the answer carries the verdict), written back by the outbox."""
    metrics = service.metrics
    delivery_id = event.delivery_id
    if delivery_id:
        fields["delivery_id"] = delivery_id
    writes = service.writes_back(source, profile) and event.object_id is not None
    as_of = options.as_of or event.as_of
    job = None
    outcome = "skipped"
    headers: dict[str, str] = {}
    if event.skip:
        answer = _answer(source, delivery_id, reason=event.skip)
        log.info("webhook event skipped", extra={"fields": {**fields, "reason": event.skip}})
    elif writes and service.clients[source].names_from_api:  # Pipedrive: names from its API
        answer = _answer(source, delivery_id, queued=True,
                         reason="queued: scored and written back by the outbox")
        job = _job(source, event, as_of)
        outcome = "queued"
    else:
        record = dict(event.record or {})
        unread: list[tuple[str, Any]] = []
        lead: dict[str, Any] = profile.apply(record, unread)
        for field, value in unread:
            metrics.unread.labels(source, field).inc()
            log.info("value read as unknown", extra={"fields": {
                **fields, "field": field, "value": str(value)[:100]}})
        try:
            scored = service.scorer.score(lead, as_of=as_of, locale=options.locale,
                                          source=source, fields=fields)
        except ApiError as e:
            if e.status != 422:
                raise
            metrics.webhooks.labels(source, "invalid").inc()
            reason = f"{e.field}: {e.message}" if e.field else e.message
            log.warning("webhook record not scored", extra={"fields": {
                **fields, "reason": reason, "object_id": event.object_id}})
            answer = _answer(source, delivery_id, reason=f"not scored: {reason}")
            job = NewJob(source, event.object_type or source, event.object_id or "",
                         record, as_of.isoformat() if as_of else None, source, delivery_id,
                         state="invalid", error=reason)
            outcome = "invalid"
        else:
            job = _job(source, event, as_of) if writes else None
            answer = _answer(source, delivery_id, verdict_json=scored.json, queued=writes)
            headers["X-Qualify-Rulebook"] = scored.verdict.rulebook["sha256"]
            outcome = "scored"
    fresh = [True]  # nothing to remember (no event id, no job): no transaction
    if delivery_id is not None or job is not None:
        fresh = await service.deliveries.accept(source, [(delivery_id, job)], answer)
    if not fresh[0]:
        assert delivery_id is not None
        metrics.webhooks.labels(source, "replayed").inc()
        stored = await anyio.to_thread.run_sync(service.store.seen, source, delivery_id)
        return Response(_replayed(stored[1], source, delivery_id), media_type=JSON,
                        headers={"X-Qualify-Replayed": "true"})
    if outcome != "invalid":
        metrics.webhooks.labels(source, outcome).inc()
    if job is not None and job.state == "queued":
        service.wake_outbox()
    return Response(answer, media_type=JSON, headers=headers)


def _job(source: str, event: Event, as_of: Any) -> NewJob:
    assert event.object_id is not None
    return NewJob(source, event.object_type or source, event.object_id, event.record,
                  as_of.isoformat() if as_of else None, source, event.delivery_id)


async def _thin(service: Service, source: str, profile: Profile, inbound: Inbound) -> Response:
    """HubSpot app webhooks: ids only. Answered at once; the outbox fetches the records."""
    metrics = service.metrics
    events = inbound.events
    writes = service.writes_back(source, profile)
    items = [(e.delivery_id, None if e.skip or not writes else _job(source, e, e.as_of))
             for e in events]
    fresh = await service.deliveries.accept(source, items)
    taken = [job for new, (_, job) in zip(fresh, items, strict=True) if new]
    queued = sum(1 for job in taken if job is not None)
    skipped = len(taken) - queued
    repeated = len(events) - len(taken)
    reason = None
    if not writes and events:
        reason = f"not queued: write-back to {source} is not configured (set " \
                 f"{service.token_setting(source)} and the profile's write_back)"
        log.warning("webhook events not queued", extra={"fields": {
            "source": source, "events": len(events), "reason": reason}})
    for outcome, n in (("queued", queued), ("replayed", repeated), ("skipped", skipped)):
        if n:
            metrics.webhooks.labels(source, outcome).inc(n)
    if skipped and writes:
        reasons: dict[str, int] = {}
        for event in events:
            if event.skip:
                reasons[event.skip] = reasons.get(event.skip, 0) + 1
        log.info("webhook events skipped", extra={"fields": {"source": source,
                                                              "skipped": reasons}})
    if queued:
        service.wake_outbox()
    if inbound.ack is not None:  # Salesforce: its acknowledgement, once all is stored
        return Response(inbound.ack, media_type="text/xml; charset=utf-8")
    return Response(_dumps({"source": source, "events": len(events), "queued": queued,
                            "replayed": repeated, "skipped": skipped, "reason": reason}),
                    media_type=JSON)
