"""The OpenAPI document: FastAPI's, plus the lead schema of the loaded rule base and a
worked example for every operation (the score example is a real verdict, computed once per
rule base). Each webhook source (mapping profile) gets an operation of its own: its CRM's
body, with the fields its profile reads, and its authentication. Rebuilt after a reload
changes the rule base.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from qualify import LeadError, Profile, Rulebook
from qualify.leads import MAX_ID, MAX_ITEMS, MAX_TEXT
from qualify.rulebook import FieldSpec
from service.deps import Service
from service.inbound.base import SECURITY_SCHEMES
from service.schemas import BatchRequest
from service.security import SCHEMES
from service.signatures import GENERIC_SIGNATURE, HUBSPOT_SIGNATURE, HUBSPOT_TIMESTAMP
from service.state import Snapshot

EXAMPLE_AS_OF = dt.date(2026, 1, 1)
EXAMPLE_LEAD: dict[str, Any] = {
    "lead_id": "L-1001", "needs_product": "Yes", "purchase_timeline_days": 21,
    "budget": "25,000", "payment_history": "prompt", "financial_health": "strong",
    "contact_role": "Owner", "sentiment": "positive", "trusts_us": True,
    "understands_offer": True, "value_acknowledged": True, "expected_deal_size": 60000,
    "last_contact_date": "2025-12-20", "company": "Acme Ltd",
}
EXAMPLE_BAD_LEAD: dict[str, Any] = {"lead_id": "L-1002", "budget": "lots"}
HUBSPOT_EXAMPLE: dict[str, Any] = {
    "objectId": 1246965, "properties": {
        "budget": {"value": "25000"}, "contact_role": {"value": "owner"},
        "notes_last_contacted": {"value": "1766188800000"},
        "lifecyclestage": {"value": "salesqualifiedlead"}}}
PIPEDRIVE_EXAMPLE: dict[str, Any] = {
    "data": {"id": "7c0e1d2a-0000-4000-8000-000000000001", "title": "Acme rollout",
             "value": {"amount": 60000, "currency": "USD"},
             "custom_fields": {"budget": 25000, "decision_maker": "Yes"}},
    "previous": {"value": None},
    "meta": {"action": "change", "entity": "lead", "version": "2.0", "attempt": 1,
             "id": "3f5a2d1c-0000-4000-8000-000000000002",
             "timestamp": "2025-12-20T10:00:00.000Z"}}


def _nullable(*options: dict[str, Any], description: str) -> dict[str, Any]:
    return {"anyOf": [*options, {"type": "null"}], "description": description}


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """What a lead field accepts, as JSON Schema (conversion is lenient, like CRMs)."""
    label = spec.label.get("en") or spec.name
    if spec.type in ("number", "integer"):
        number: dict[str, Any] = {"type": spec.type}
        if spec.min is not None:
            number["minimum"] = spec.min
        if spec.max is not None:
            number["maximum"] = spec.max
        return _nullable(number, {"type": "string", "maxLength": 64},
                         description=f"{label}: a number, or text such as \"25,000\"")
    if spec.type == "boolean":
        return _nullable({"type": "boolean"}, {"type": "string", "maxLength": 8},
                         description=f"{label}: true/false, or yes/no, y/n, 1/0, on/off")
    if spec.type == "date":
        return _nullable({"type": "string", "format": "date"},
                         {"type": "string", "format": "date-time"},
                         {"type": "integer", "minimum": 0,
                          "maximum": 253_402_300_799_000},
                         description=f"{label}: YYYY-MM-DD, an ISO time, or epoch ms")
    if spec.type == "enum":
        return _nullable({"type": "string", "enum": list(spec.values)},
                         description=f"{label}: one of {', '.join(spec.values)} (any case)")
    if spec.type == "list":
        return _nullable({"type": "array", "maxItems": MAX_ITEMS,
                          "items": {"type": "string", "maxLength": MAX_TEXT}},
                         {"type": "string", "maxLength": MAX_TEXT},
                         description=f"{label}: a list, or text with items separated by ;")
    if spec.name == "lead_id":
        return {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID},
                          {"type": "integer"}], "description": f"{label} (required)"}
    return _nullable({"type": "string", "maxLength": MAX_TEXT}, description=label)


def record_schema(profile: Profile, rulebook: Rulebook) -> dict[str, Any]:
    """What a source's record holds, from its profile: each ``from`` path (dotted: nested
    objects) with what its field accepts, or one of the profile's labels for it. A field the
    rule base requires needs one of its top-level sources, else its first path."""
    root = _Node()
    for target, mapping in profile.fields.items():
        spec = rulebook.fields.get(target)
        if spec is None:
            continue
        leaf = field_schema(spec)
        if mapping.values:
            leaf = {"anyOf": [{"type": "string", "enum": [str(k) for k in mapping.values]},
                              *leaf.get("anyOf", [leaf])], "description": leaf["description"]}
        sources = mapping.source if isinstance(mapping.source, list) else \
            [mapping.source] if mapping.source else []
        for path in sources:
            root.add(path.split("."), leaf)
        if spec.required and sources:
            flat = [path for path in sources if "." not in path]
            if flat:
                root.one_of.append(flat)
            else:
                root.require(sources[0].split("."))
    if profile.model.passthrough:  # the rule base's own field names are read as they are
        for name, spec in rulebook.fields.items():
            if name not in root.children:
                root.add([name], field_schema(spec))
    out = root.schema()
    out["description"] = f"the record profile '{profile.name}' reads: " + (
        profile.model.description or "its fields")
    return out


class _Node:
    """A key of a record: its value's schema, the keys under it, which of them it needs."""

    def __init__(self) -> None:
        self.leaf: dict[str, Any] | None = None
        self.children: dict[str, _Node] = {}
        self.required: list[str] = []
        self.one_of: list[list[str]] = []  # one key of each list is needed

    def add(self, steps: list[str], leaf: dict[str, Any]) -> None:
        node = self.children.setdefault(steps[0], _Node())
        if len(steps) == 1:
            node.leaf = node.leaf or leaf
        else:
            node.add(steps[1:], leaf)

    def require(self, steps: list[str]) -> None:
        if steps[0] not in self.required:
            self.required.append(steps[0])
        if len(steps) > 1:
            self.children[steps[0]].require(steps[1:])

    def schema(self) -> dict[str, Any]:
        if not self.children:
            return self.leaf or {}
        out: dict[str, Any] = {"type": "object", "properties": {
            name: child.schema() for name, child in self.children.items()},
            "additionalProperties": True}
        if self.required:
            out["required"] = self.required
        if len(self.one_of) == 1 and len(self.one_of[0]) == 1:
            out["required"] = [*self.required, self.one_of[0][0]]
        elif self.one_of:
            out["allOf"] = [{"anyOf": [{"required": [key]} for key in keys]}
                            for keys in self.one_of]
        if self.leaf is None:
            return out
        return {"anyOf": [out, *self.leaf.get("anyOf", [self.leaf])],
                "description": self.leaf.get("description", "")}


def _source_operations(doc: dict[str, Any], service: Service,
                       snapshot: Snapshot) -> dict[str, Any]:
    """``POST /v1/webhooks/<name>`` for each mapping profile, from the templated one."""
    template = doc["paths"].get("/v1/webhooks/{source}", {}).get("post")
    if template is None:
        return {}
    out = {}
    for name in sorted(snapshot.profiles):
        profile = snapshot.profiles[name]
        scheme = service.webhooks.scheme(name)
        op = copy.deepcopy(template)
        op["operationId"] = f"webhook_{name}"
        op["summary"] = f"Score a {name} webhook"
        op["description"] = f"{profile.model.description or name}.\n\n" \
            f"{(type(scheme).__doc__ or '').strip()} Enabled by {scheme.setting}."
        op["parameters"] = [p for p in op.get("parameters", []) if p["name"] != "source"]
        op["requestBody"] = {"required": True, "content": copy.deepcopy(scheme.content(
            record_schema(profile, snapshot.rulebook), profile))}
        op["security"] = copy.deepcopy(scheme.security)
        responses = op["responses"]
        responses["200"] = {"description": responses["200"]["description"],
                            "content": copy.deepcopy(scheme.answer())}
        if name != "salesforce":
            responses.pop("403", None)
        out[f"/v1/webhooks/{name}"] = {"post": op}
    return out


def lead_schema(rulebook: Rulebook) -> dict[str, Any]:
    return {
        "title": "Lead", "type": "object",
        "description": f"A lead for rule base '{rulebook.name}' version {rulebook.version}. "
                       "Missing or null fields are unknown; keys that are not fields are "
                       "ignored.",
        "properties": {name: field_schema(spec) for name, spec in rulebook.fields.items()},
        "required": [name for name, spec in rulebook.fields.items() if spec.required],
        "additionalProperties": True,
    }


def _examples(snapshot: Snapshot) -> dict[str, Any]:
    engine = snapshot.engine
    out: dict[str, Any] = {"lead": EXAMPLE_LEAD, "verdict": None, "error": None}
    with contextlib.suppress(LeadError):  # a rule base whose fields differ: no example
        out["verdict"] = engine.score(EXAMPLE_LEAD, as_of=EXAMPLE_AS_OF).model_dump(
            mode="json")
    try:
        engine.score(EXAMPLE_BAD_LEAD, as_of=EXAMPLE_AS_OF)
    except LeadError as e:
        out["error"] = {"error": "invalid_lead", **e.to_dict()}
    return out


def _json(example: Any, summary: str | None = None) -> dict[str, Any]:
    return {"summary": summary, "value": example} if summary else {"value": example}


def _set(doc: dict[str, Any], path: str, method: str, status: str | None,
         examples: dict[str, Any]) -> None:
    op = doc["paths"].get(path, {}).get(method)
    if op is None:
        return
    if status is None:
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
    else:
        content = op.get("responses", {}).get(status, {}).get("content", {}).get(
            "application/json")
    if content is not None:
        content["examples"] = examples


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document for the current rule base (cached per snapshot)."""
    service: Service = app.state.service
    snapshot = service.registry.current
    cached: dict[str, Any] | None = snapshot.cache.get("openapi")
    if cached is not None:
        return cached
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, tags=app.openapi_tags)
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {**SCHEMES, **SECURITY_SCHEMES}
    schemas = components.setdefault("schemas", {})
    schemas["Lead"] = lead_schema(snapshot.rulebook)
    batch = copy.deepcopy(BatchRequest.model_json_schema())
    batch["properties"]["leads"]["items"] = {"$ref": "#/components/schemas/Lead"}
    batch["properties"]["leads"]["maxItems"] = service.settings.max_batch
    schemas["BatchRequest"] = batch
    schemas["WebhookPayload"] = {
        "title": "WebhookPayload", "type": "object", "additionalProperties": True,
        "description": "The CRM's own payload; the source's mapping profile turns it into "
                       f"a lead. Signed with {HUBSPOT_SIGNATURE} + {HUBSPOT_TIMESTAMP} "
                       f"(hubspot), HTTP basic auth (pipedrive), a token (zoho, dynamics), "
                       f"the organisation id (salesforce) or {GENERIC_SIGNATURE}; each "
                       "source's own operation describes its body."}

    ex = _examples(snapshot)
    ok = ex["verdict"]
    _set(doc, "/v1/score", "post", None, {
        "lead": _json(EXAMPLE_LEAD, "a lead as a CRM sends it"),
        "bad": _json(EXAMPLE_BAD_LEAD, "a lead with a value that is not a number")})
    if ok:
        _set(doc, "/v1/score", "post", "200", {"verdict": _json(ok, "its verdict")})
        _set(doc, "/v1/score/batch", "post", "200", {"results": _json({
            "rulebook": snapshot.ref(), "count": 2, "ok": 1, "failed": 1,
            "results": [{"ok": True, "verdict": ok},
                        {"ok": False, "error": {"field": "budget",
                                                "message": (ex["error"] or {}).get(
                                                    "message", "expected a number")}}]})})
        _set(doc, "/v1/webhooks/{source}", "post", "200", {"scored": _json({
            "source": "pipedrive", "delivery_id": PIPEDRIVE_EXAMPLE["meta"]["id"],
            "replayed": False, "scored": True, "reason": None, "verdict": ok})})
    if ex["error"]:
        _set(doc, "/v1/score", "post", "422", {"bad lead": _json(ex["error"])})
    _set(doc, "/v1/score/batch", "post", None, {"two leads": _json(
        {"leads": [EXAMPLE_LEAD, EXAMPLE_BAD_LEAD]})})
    _set(doc, "/v1/webhooks/{source}", "post", None, {
        "hubspot": _json(HUBSPOT_EXAMPLE, "hubspot: a workflow 'Send a webhook' body"),
        "pipedrive": _json(PIPEDRIVE_EXAMPLE, "pipedrive: a webhooks v2 lead change"),
        "generic": _json(EXAMPLE_LEAD, "generic: a lead, signed with X-Qualify-Signature")})
    _set(doc, "/v1/webhooks/{source}", "post", "401", {"stale": _json({
        "error": "unauthorized",
        "message": "stale timestamp: more than 300 s from the server's clock"})})
    paths = doc["paths"]
    sources = _source_operations(doc, service, snapshot)
    doc["paths"] = {}  # each source's operation after the templated one
    for path, item in paths.items():
        doc["paths"][path] = item
        if path == "/v1/webhooks/{source}":
            doc["paths"].update(sources)
    for name, example in (("hubspot", HUBSPOT_EXAMPLE), ("pipedrive", PIPEDRIVE_EXAMPLE),
                          ("generic", EXAMPLE_LEAD)):
        _set(doc, f"/v1/webhooks/{name}", "post", None, {name: _json(example)})
    _set(doc, "/v1/rulebook/reload", "post", "200", {"reloaded": _json({
        "status": "reloaded", "rulebook": snapshot.ref(),
        "loaded_at": snapshot.loaded_at.isoformat(), "previous": snapshot.ref(),
        "sources": sorted(snapshot.profiles), "warnings": []})})
    _set(doc, "/v1/rulebook/reload", "post", "422", {"invalid": _json({
        "error": "invalid_rulebook",
        "message": "the rule base has 1 problem(s); still serving default d419ea80b5a5",
        "problems": [{"file": "rules/default.yaml", "line": 42, "column": 7,
                      "code": "unknown-field", "message": "'job_tilte' is not a field",
                      "hint": "did you mean 'job_title'?", "severity": "error",
                      "text": "rules/default.yaml:42:7: unknown-field: 'job_tilte' is not "
                              "a field (did you mean 'job_title'?)"}],
        "serving": snapshot.ref()})})
    from service.routes.rulebook import info  # the real answer, for this rule base

    _set(doc, "/v1/rulebook", "get", "200", {"default": _json(info(snapshot))})
    _set(doc, "/healthz", "get", "200", {"alive": _json({"status": "ok"})})
    _set(doc, "/readyz", "get", "200", {"ready": _json({"status": "ready",
                                                        "rulebook": snapshot.ref()})})
    _set(doc, "/readyz", "get", "503", {"stopping": _json({"status": "not_ready",
                                                           "rulebook": None})})
    metrics = doc["paths"].get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"]["text/plain"]["example"] = (
            '# TYPE qualify_verdicts_total counter\n'
            'qualify_verdicts_total{grade="A",source="api",status="qualified"} 12.0\n')
    snapshot.cache["openapi"] = doc
    return doc
