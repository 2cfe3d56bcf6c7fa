"""Fixtures for the write-back tests: CRM stand-ins on 127.0.0.1 and an outbox that drives
the real store, engine and clients against them, one round at a time."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.crm.clients import crm_clients
from service.metrics import Metrics
from service.outbox import Outbox
from service.settings import Settings
from service.state import Registry
from service.store import Store
from tests.standins import HubSpotStandIn, PipedriveStandIn, serving

HUBSPOT_TOKEN = "pat-na1-test"
PIPEDRIVE_TOKEN = "pipedrive-api-token"
AS_OF = "2026-01-01"


def wait_until(done: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``done`` until true; fail after ``seconds`` (the outbox runs in the background)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail("the outbox did not get there in time")
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("QUALIFY_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUALIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'qualify.db'}")


@pytest.fixture
def hubspot() -> Iterator[tuple[HubSpotStandIn, str]]:
    stand_in = HubSpotStandIn(HUBSPOT_TOKEN, burst=1000)
    for name in ("qualify_score", "qualify_grade", "qualify_status", "qualify_next_step",
                 "qualify_reason", "qualify_rulebook", "qualify_scored_at"):
        stand_in.define("contacts", name)
    with serving(stand_in.app) as url:
        yield stand_in, url


@pytest.fixture
def pipedrive() -> Iterator[tuple[PipedriveStandIn, str]]:
    stand_in = PipedriveStandIn(PIPEDRIVE_TOKEN, burst=1000)
    for entity in ("person", "deal"):
        stand_in.add_field(entity, "Qualify score", "double")
        for name in ("Qualify grade", "Qualify status", "Qualify next step", "Qualify reason",
                     "Qualify rule base", "Qualify scored at"):
            stand_in.add_field(entity, name, "varchar")
    with serving(stand_in.app) as url:
        yield stand_in, url


@dataclass
class Rig:
    """An outbox over a real store, registry and CRM clients."""

    store: Store
    registry: Registry
    outbox: Outbox
    metrics: Metrics
    settings: Settings

    def jobs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.store.jobs(**filters)

    def state(self, job_id: int) -> dict[str, Any]:
        (job,) = [j for j in self.store.jobs(limit=10_000) if j["id"] == job_id]
        return job


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**overrides: Any) -> Rig:
        values: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'rig.db'}",
                                  "access_log": False, "outbox_backoff": 1.0,
                                  "crm_timeout": 2.0}
        values.update(overrides)
        settings = Settings(**values)
        metrics = Metrics()
        registry = Registry(settings, metrics)
        registry.load()
        store = Store(str(settings.database_url))
        store.migrate()
        outbox = Outbox(store, registry, settings, metrics, crm_clients(settings))
        made.append(r := Rig(store, registry, outbox, metrics, settings))
        return r

    yield make
    for r in made:
        r.outbox.stop()
        r.store.close()
        for snapshot in [r.registry.current]:
            snapshot.engine.close()
