"""``POST /v1/webhooks/{source}``: a CRM's own payload, authenticated, mapped, scored."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from service.bodies import parse_json, read_body
from service.deps import OptionsDep, ServiceDep, json_operation
from service.errors import COMMON, ApiError, ErrorBody
from service.middleware import log_fields
from service.schemas import WebhookResult
from service.signatures import SignatureError

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

JSON = "application/json"

Source = Annotated[str, Path(description="a mapping profile's name: hubspot, pipedrive, "
                             "generic, or one you add beside the rule base",
                             examples=["hubspot"], max_length=64)]

def _answer(source: str, delivery_id: str | None, replayed: bool,
            verdict_json: bytes | None = None, reason: str | None = None) -> bytes:
    head = json.dumps({"source": source, "delivery_id": delivery_id, "replayed": replayed,
                       "scored": verdict_json is not None, "reason": reason},
                      ensure_ascii=False, separators=(",", ":")).encode()
    return head[:-1] + b',"verdict":' + (verdict_json or b"null") + b"}"


@router.post(
    "/{source}", summary="Score a CRM's webhook payload", operation_id="webhook",
    response_class=Response,
    responses={200: {"model": WebhookResult, "description": "the verdict for the record "
                     "(a retry of the same delivery gets the same answer)"},
               401: {"model": ErrorBody, "description": "bad signature, stale timestamp "
                     "or wrong credentials: nothing is scored"},
               404: {"model": ErrorBody, "description": "no such source, or its "
                     "credentials are not configured"},
               **COMMON},
    openapi_extra=json_operation("WebhookPayload"))
async def webhook(source: Source, request: Request, service: ServiceDep,
                  options: OptionsDep) -> Response:
    """Authenticate the request, map the payload with the source's profile, score it.

    - `hubspot`: a workflow "Send a webhook" body, signed with `X-HubSpot-Signature-v3`
      and `X-HubSpot-Request-Timestamp` (at most 5 minutes off).
    - `pipedrive`: webhooks v2 `{data, previous, meta}` with HTTP basic auth. A retry
      (same `meta.id`) gets the same answer; `as_of` defaults to the event's date.
    - any other source: a JSON object signed with
      `X-Qualify-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`.
    """
    registry, scorer = service.registry, service.scorer
    snapshot = registry.current
    fields = log_fields(request)
    fields["source"] = source
    profile = snapshot.profiles.get(source)
    webhooks = service.webhooks
    metrics = service.metrics
    if profile is None:
        known = ", ".join(sorted(snapshot.profiles)) or "none"
        raise ApiError(404, "unknown_source", f"no webhook source '{source[:64]}' "
                       f"(sources: {known})", field="source")
    scheme = webhooks.scheme(source)
    if not scheme.enabled():
        raise ApiError(404, "source_disabled", f"webhook source '{source}' is not enabled: "
                       f"set {scheme.setting}", field="source")
    body = await read_body(request, service.settings.max_body_bytes)
    try:
        scheme.authenticate(request, body, time.time())
    except SignatureError as e:
        metrics.webhooks.labels(source, "rejected").inc()
        raise ApiError(401, "unauthorized", str(e)) from None
    delivery = scheme.unwrap(parse_json(body))
    if delivery.delivery_id:
        fields["delivery_id"] = delivery.delivery_id
        answer = webhooks.replays.get(source, delivery.delivery_id)
        if answer is not None:
            metrics.webhooks.labels(source, "replayed").inc()
            return Response(answer, media_type=JSON, headers={"X-Qualify-Replayed": "true"})
    if delivery.skip:
        metrics.webhooks.labels(source, "skipped").inc()
        return Response(_answer(source, delivery.delivery_id, False, reason=delivery.skip),
                        media_type=JSON)
    lead: dict[str, Any] = profile.apply(delivery.record)
    try:
        scored = scorer.score(lead, as_of=options.as_of or delivery.as_of,
                              locale=options.locale, source=source, fields=fields)
    except ApiError:
        metrics.webhooks.labels(source, "invalid").inc()
        raise
    metrics.webhooks.labels(source, "scored").inc()
    if delivery.delivery_id:
        webhooks.replays.put(source, delivery.delivery_id,
                             _answer(source, delivery.delivery_id, True, scored.json))
    return Response(_answer(source, delivery.delivery_id, False, scored.json),
                    media_type=JSON,
                    headers={"X-Qualify-Rulebook": scored.verdict.rulebook["sha256"]})
