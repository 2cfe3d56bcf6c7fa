"""``GET /v1/rulebook`` (what is loaded) and ``POST /v1/rulebook/reload`` (admin)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from qualify import Problem, RulebaseError
from qualify.rulebook import Rule
from service.deps import RegistryDep
from service.errors import AUTH, ErrorBody
from service.middleware import log_fields
from service.schemas import ReloadFailed, ReloadResult, RulebookInfo
from service.security import ADMIN, CLIENT, AdminAuth, ClientAuth
from service.state import Snapshot

router = APIRouter(prefix="/v1/rulebook", tags=["rule base"])

JSON = "application/json"


def problems(items: Iterable[Problem]) -> list[dict[str, Any]]:
    return [{**p.to_dict(), "text": str(p)} for p in items]


def _rule(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.id, "kind": rule.kind, "label": rule.label,
                           "when": rule.text}
    if rule.section == "trait":
        out.update(points=rule.points, factor=rule.factor)
    return out


def info(snapshot: Snapshot) -> dict[str, Any]:
    """The rule base as UIs and CRMs read it."""
    rb = snapshot.rulebook
    return {
        **snapshot.ref(),
        "loaded_at": snapshot.loaded_at.isoformat(),
        "locale": rb.locale, "currency": rb.currency,
        "score": {"base": rb.score_base, "min": rb.score_min, "max": rb.score_max},
        "fields": {name: {"type": f.type, "label": f.label, "values": list(f.values) or None,
                          "min": f.min, "max": f.max, "required": f.required}
                   for name, f in rb.fields.items()},
        "factors": dict(rb.factors),
        "qualifiers": [_rule(r) for r in rb.qualifiers],
        "traits": [_rule(r) for r in rb.traits],
        "grades": [{"id": g.id, "min_score": g.min_score, "label": g.label}
                   for g in rb.grades],
        "next_steps": [_rule(r) for r in rb.next_steps],
        "sources": sorted(snapshot.profiles),
        "warnings": problems(rb.warnings),
    }


@router.get("", summary="The rule base in use", operation_id="rulebook",
            response_class=Response, openapi_extra=CLIENT,
            responses={200: {"model": RulebookInfo}, **AUTH})
async def rulebook(_: ClientAuth, registry: RegistryDep) -> Response:
    """Name, version, sha256 and load time; every field (type, label, allowed values) and
    every rule (its condition as written), grades, next steps and webhook sources."""
    snapshot = registry.current
    body = snapshot.cache.get("info")
    if body is None:
        body = snapshot.cache["info"] = json.dumps(info(snapshot), ensure_ascii=False,
                                                   separators=(",", ":"))
    return Response(body, media_type=JSON, headers={"X-Qualify-Rulebook": snapshot.sha256})


@router.post(
    "/reload", summary="Reload the rule base (admin)", operation_id="reload",
    response_class=Response, openapi_extra=ADMIN,
    responses={200: {"model": ReloadResult, "description": "swapped in (or unchanged)"},
               401: {"model": ErrorBody, "description": "missing or wrong admin key"},
               403: {"model": ErrorBody, "description": "no admin key is configured "
                     "(without API keys either: the client is not on the service's machine)"},
               422: {"model": ReloadFailed | ErrorBody, "description": "the new rule base "
                     "has problems (the old one keeps serving), or `force` is not a boolean"}})
async def reload(request: Request, _: AdminAuth, registry: RegistryDep,
                 force: Annotated[bool, Query(description="rebuild even if the files are "
                                              "unchanged")] = False) -> Response:
    """Re-read the rule base file and its mapping profiles, check them, and swap them in
    atomically. On any problem the old rule base keeps serving and the answer lists every
    problem with its file, line and column. Other worker processes follow within a second.
    """
    old = registry.current
    try:
        outcome = await registry.reload(force=force)
    except RulebaseError as e:
        found = problems(e.problems)
        return Response(json.dumps({
            "error": "invalid_rulebook",
            "message": f"the rule base has {len(found)} problem(s); still serving "
                       f"{old.rulebook.name} {old.sha256[:12]}",
            "problems": found, "serving": old.ref()}, ensure_ascii=False,
            separators=(",", ":")),
            status_code=422, media_type=JSON)
    new = outcome.snapshot
    log_fields(request).update(sha256=new.sha256, changed=outcome.changed)
    body = {"status": "reloaded" if outcome.changed else "unchanged",
            "rulebook": new.ref(), "loaded_at": new.loaded_at.isoformat(),
            "previous": outcome.previous.ref() if outcome.previous else None,
            "sources": sorted(new.profiles), "warnings": problems(new.rulebook.warnings)}
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                    media_type=JSON,
                    headers={"X-Qualify-Rulebook": new.sha256})
