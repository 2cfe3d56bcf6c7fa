"""Assembles the app. ``create_app`` is the factory uvicorn calls in each worker:

    uvicorn --factory service.main:create_app          (or: qualify serve)

``qualify serve`` gives uvicorn ``worker_app``, which also tunes the worker's cycle
collector first (qualify/tuning.py).

The rule base is loaded when the app is created, so a bad rule base stops start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

import anyio
from fastapi import FastAPI

from qualify.tuning import tune_gc
from service import errors, openapi
from service.crm.clients import crm_clients
from service.crm.pipedrive import Pipedrive
from service.deps import Service
from service.direct import DirectApp
from service.inbound import Webhooks
from service.inbound.pipedrive import Pipedrive as PipedriveHooks
from service.intake import Deliveries
from service.lifetime import die_with_parent
from service.logs import DecisionLog, LogSetup
from service.metrics import Metrics
from service.middleware import Observe
from service.outbox import Outbox
from service.routes import health, outbox, rulebook, score, webhooks
from service.scoring import Scorer
from service.security import Keys
from service.settings import Settings
from service.state import Registry
from service.store import Store, default_url, describe
from service.transport import raise_file_limit

log = logging.getLogger("qualify.service")

DESCRIPTION = """\
Rules-based lead qualification. Send a lead, get a verdict: qualified or not, a score and
grade, every rule that fired with the facts that made it fire, what is still unknown, the
weakest factor and the next step. Every verdict names the SHA-256 of the rule base it used.

Scoring needs an API key (`Authorization: Bearer <key>`) when `QUALIFY_API_KEYS` is set;
without one it answers only clients on the service's own machine. Reload needs the admin
key. Errors are `{error, message, field}`.
"""

TAGS = [
    {"name": "score", "description": "Score leads sent as JSON."},
    {"name": "webhooks", "description": "Score records that CRMs post in their own shapes."},
    {"name": "rule base", "description": "What is loaded; hot reload."},
    {"name": "outbox", "description": "Write-back jobs to the CRMs (admin)."},
    {"name": "operations", "description": "Health, readiness and metrics."},
]


def _version() -> str:
    try:
        return version("qualify")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up and shutdown. Nested runs (test clients) share one start and one stop."""
    service: Service = app.state.service
    service.runs += 1
    if service.runs == 1:
        await _start(service)
    try:
        yield
    finally:
        service.runs -= 1
        if service.runs == 0:
            await _stop(service)


async def _start(service: Service) -> None:
    settings = service.settings
    service.logs = LogSetup(settings)
    if settings.decision_log:
        service.scorer.decisions = DecisionLog(settings.decision_log,
                                               lost=service.metrics.decisions_lost.inc)
    registry = service.registry
    if not registry.loaded:  # the app is being started again
        registry.load()
    if service.keys.open_access:
        log.warning("no API keys configured (QUALIFY_API_KEYS): scoring and admin endpoints "
                    "answer only clients on this machine (loopback, not through a proxy)")
    snapshot = registry.current
    log.info("serving rule base", extra={"fields": {
        **snapshot.ref(), "sources": sorted(snapshot.profiles),
        "decision_log": str(settings.decision_log) if settings.decision_log else None,
        "database": describe(service.store.url), "write_back": sorted(service.clients),
        "open_files": raise_file_limit()}})  # each connection is one
    if settings.outbox_in_app:
        service.outbox.start()
    if registry.channel:
        service.follower = asyncio.create_task(registry.follow())
    service.ready = True


async def _stop(service: Service) -> None:
    service.ready = False
    if service.follower is not None:
        service.follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service.follower
        service.follower = None
    await anyio.to_thread.run_sync(service.outbox.stop)
    service.store.close()
    await service.registry.close()
    if service.scorer.decisions is not None:
        service.scorer.decisions.close()
        service.scorer.decisions = None
    service.metrics.process_exit()
    log.info("stopped")
    if service.logs is not None:
        service.logs.close()
        service.logs = None


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from QUALIFY_* environment variables)."""
    settings = settings or Settings()
    metrics = Metrics()
    registry = Registry(settings, metrics)
    registry.load()
    store = Store(settings.database_url or default_url())
    store.migrate()  # `qualify serve` has done it already: then this finds nothing to do
    metrics.outbox_stats = store.stats
    clients = crm_clients(settings)
    webhooks_ = Webhooks(settings)
    service = Service(
        settings=settings, metrics=metrics, registry=registry,
        scorer=Scorer(registry, metrics), webhooks=webhooks_,
        keys=Keys((k.get_secret_value() for k in settings.api_keys),
                  settings.admin_key.get_secret_value() if settings.admin_key else None),
        store=store, deliveries=Deliveries(store), clients=clients,
        outbox=Outbox(store, registry, settings, metrics, clients))
    pipedrive = clients.get("pipedrive")
    if isinstance(pipedrive, Pipedrive):
        scheme = webhooks_.scheme("pipedrive")
        assert isinstance(scheme, PipedriveHooks)
        service.outbox.warm_ups.append(lambda: _learn_own_writes(pipedrive, scheme, service))
    otel = settings.opentelemetry
    app = DirectApp(title="qualify", version=_version(), description=DESCRIPTION,
                  openapi_tags=TAGS, lifespan=lifespan, redirect_slashes=False,
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel,
                             "operation_spans": otel})
    app.state.service = service
    errors.install(app)
    app.add_middleware(Observe, metrics=metrics, access_log=settings.access_log,
                       logs=lambda: service.logs)
    for module in (score, webhooks, outbox, rulebook, health):
        app.include_router(module.router)
    if not otel:  # FastAPI's telemetry wraps its whole stack: every request goes through it
        for direct in (score.router, webhooks.router):
            app.serve_directly(direct, lambda inner: Observe(
                inner, metrics=metrics, access_log=settings.access_log,
                logs=lambda: service.logs))
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    return app


def _learn_own_writes(client: Pipedrive, scheme: PipedriveHooks, service: Service) -> None:
    """The Pipedrive loop guard's facts: our token's user, the fields we write."""
    user = client.user_id()
    scheme.own_user = str(user) if user is not None else None
    profile = service.registry.current.profiles.get("pipedrive")
    if profile is not None and profile.write_back:
        names = list(profile.write_back.values())
        scheme.own_keys = frozenset(
            key for entity in sorted(profile.objects or {"person", "deal"})
            for key in client.keys(entity, names))


def worker_app() -> FastAPI:
    """The app of a ``qualify serve`` worker process, which dies with serve (a ``kill -9``
    of serve left its workers holding the port). The modules it imported are frozen
    out of the cycle collector's sight before the rule base is built: a full collection
    over all of them took 40-48 ms, a pause every request in flight waited for."""
    die_with_parent()
    tune_gc()
    return create_app()
