"""What routes depend on, as ``Annotated`` aliases, and the container they come from."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request

from service.logs import LogSetup
from service.metrics import Metrics
from service.scoring import Scorer
from service.security import Keys
from service.settings import Settings
from service.state import Registry
from service.webhooks import Webhooks


@dataclass
class Service:
    """Everything the app holds; one per app, on ``app.state.service``."""

    settings: Settings
    metrics: Metrics
    registry: Registry
    scorer: Scorer
    webhooks: Webhooks
    keys: Keys
    ready: bool = False
    runs: int = 0  # lifespans running (test clients may nest them)
    logs: LogSetup | None = None
    follower: asyncio.Task[None] | None = None  # follows sibling workers' reloads


# Dependencies are ``async def``: FastAPI runs plain ``def`` ones in a thread pool, which
# costs more than the scoring itself.


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_registry(request: Request) -> Registry:
    return (await get_service(request)).registry


async def get_scorer(request: Request) -> Scorer:
    return (await get_service(request)).scorer


async def get_settings(request: Request) -> Settings:
    return (await get_service(request)).settings


ServiceDep = Annotated[Service, Depends(get_service)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

AsOf = Annotated[dt.date | None, Query(
    description="The date date-rules use, YYYY-MM-DD (default: today, UTC). Fix it for "
                "reproducible verdicts.", examples=["2026-01-01"])]
Locale = Annotated[Literal["en", "zh"] | None, Query(
    description="Language of labels and explanation (default: the rule base's).")]
