"""What routes depend on, as ``Annotated`` aliases, and the container they come from."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from qualify import Profile
from service.crm import Client
from service.errors import ApiError
from service.inbound import Webhooks
from service.intake import Deliveries
from service.logs import LogSetup
from service.metrics import Metrics
from service.outbox import Outbox
from service.scoring import Scorer
from service.security import Keys, require_client
from service.settings import Settings
from service.state import Registry
from service.store import Store

TOKENS = {"hubspot": "QUALIFY_HUBSPOT_TOKEN",
          "pipedrive": "QUALIFY_PIPEDRIVE_API_TOKEN and QUALIFY_PIPEDRIVE_API_URL",
          "salesforce": "QUALIFY_SALESFORCE_CLIENT_ID and QUALIFY_SALESFORCE_CLIENT_SECRET"}


@dataclass
class Service:
    """Everything the app holds; one per app, on ``app.state.service``."""

    settings: Settings
    metrics: Metrics
    registry: Registry
    scorer: Scorer
    webhooks: Webhooks
    keys: Keys
    store: Store
    deliveries: Deliveries
    outbox: Outbox
    clients: Mapping[str, Client]
    ready: bool = False
    runs: int = 0  # lifespans running (test clients may nest them)
    logs: LogSetup | None = None
    follower: asyncio.Task[None] | None = None  # follows sibling workers' reloads

    def writes_back(self, source: str, profile: Profile) -> bool:
        """Whether verdicts of ``source`` are written back: a CRM client and a profile
        that says what to write."""
        return source in self.clients and bool(profile.write_back)

    def token_setting(self, source: str) -> str:
        return TOKENS.get(source, "a CRM token")

    def wake_outbox(self) -> None:
        self.outbox.wake()


# Dependencies are ``async def``: FastAPI runs plain ``def`` ones in a thread pool, which
# costs more than the scoring itself.


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_registry(request: Request) -> Registry:
    return (await get_service(request)).registry


ServiceDep = Annotated[Service, Depends(get_service)]
RegistryDep = Annotated[Registry, Depends(get_registry)]


# ----------------------------------------------------------------------------- scoring options


@dataclass(frozen=True)
class Options:
    """The query parameters of every scoring endpoint: ``as_of`` and ``locale``."""

    as_of: dt.date | None = None
    locale: str | None = None


LOCALES = ("en", "zh")
AS_OF_HELP = ("The date date-rules use, YYYY-MM-DD (default: today, UTC; for a Pipedrive "
              "webhook, the event's date). Fix it for reproducible verdicts.")
LOCALE_HELP = "Language of labels and explanation (default: the rule base's)."
# Documented here, parsed by ``options``: FastAPI's own query parameters cost about 0.05 ms
# a request, a sixth of the engine's time.
OPTION_PARAMETERS: list[dict[str, Any]] = [
    {"name": "as_of", "in": "query", "required": False, "description": AS_OF_HELP,
     "schema": {"type": "string", "format": "date"}, "example": "2026-01-01"},
    {"name": "locale", "in": "query", "required": False, "description": LOCALE_HELP,
     "schema": {"type": "string", "enum": list(LOCALES)}},
]


def json_operation(schema: str) -> dict[str, Any]:
    """OpenAPI for a route that reads its JSON body itself: the body's schema, by name, and
    the ``as_of``/``locale`` options."""
    return {"parameters": OPTION_PARAMETERS, "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


async def options(request: Request) -> Options:
    """``as_of`` and ``locale`` from the query string; 422 naming each bad one."""
    query = request.query_params
    if not query:
        return Options()
    errors = []
    as_of = None
    raw = query.get("as_of")
    if raw is not None:
        with contextlib.suppress(ValueError):  # only YYYY-MM-DD, not other ISO forms
            as_of = dt.date.fromisoformat(raw) if len(raw) == 10 else None
        if as_of is None:
            errors.append({"field": "as_of", "location": "query",
                           "message": f"expected a date as YYYY-MM-DD, got {raw[:40]!r}"})
    locale = query.get("locale")
    if locale is not None and locale not in LOCALES:
        errors.append({"field": "locale", "location": "query",
                       "message": f"expected en or zh, got {locale[:40]!r}"})
    if errors:
        first = errors[0]
        raise ApiError(422, "invalid_request", f"{first['field']}: {first['message']}",
                       field=first["field"], extra={"errors": errors})
    return Options(as_of, locale)


OptionsDep = Annotated[Options, Depends(options)]


async def scoring(request: Request) -> tuple[Service, Options]:
    """What a scoring endpoint needs, the API key checked: the service and the options.

    Called by the routes themselves, not through ``Depends``: FastAPI's dependency solving
    cost about 10 % of a scored request's CPU (cProfile of a loaded worker); security and
    parameters are documented through ``CLIENT`` and ``json_operation`` instead."""
    await require_client(request)
    return await get_service(request), await options(request)
