"""Fixtures for the service tests: started apps, and an editable copy of the rule base."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from qualify.rulebook import default_rules_path
from service.main import create_app
from tests.service.helpers import TestClient, secured, settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test inherits QUALIFY_* or Prometheus settings from the shell; each has a store
    of its own (a SQLite file in its temporary directory)."""
    for name in list(os.environ):
        if name.startswith("QUALIFY_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUALIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'qualify.db'}")


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of the default rule base (rules.yaml) and its mappings/, free to edit."""
    shutil.copy(default_rules_path(), tmp_path / "rules.yaml")
    shutil.copytree(default_rules_path().parent / "mappings", tmp_path / "mappings")
    return tmp_path


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The service with no keys configured (open, loopback-only mode), started."""
    with TestClient(create_app(settings())) as c:
        yield c


@pytest.fixture
def secure_client() -> Iterator[TestClient]:
    """The service with every key and secret configured, started."""
    with TestClient(create_app(secured()), raise_server_exceptions=False) as c:
        yield c
