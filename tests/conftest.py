"""Fixtures shared by every test area. Area-specific fixtures live in the area's folder."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from qualify import Engine, Rulebook, load_rulebook
from qualify.rulebook import default_rules_path

pytest_plugins = ["tests.postgres"]  # postgres_server, postgres_url: a real server

# tests/mutate.py asks only whether a test fails: a failing example is not shrunk
settings.register_profile("mutate", phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          database=None)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # material beside the checkout; tests using it skip without it
AS_OF = dt.date(2026, 1, 1)  # a fixed date, so verdicts are reproducible


@pytest.fixture(scope="session")
def default_rulebook() -> Rulebook:
    return load_rulebook(default_rules_path())


@pytest.fixture(scope="session")
def engine(default_rulebook: Rulebook) -> Iterator[Engine]:
    e = Engine(default_rulebook)
    yield e
    e.close()


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside the checkout")
    return SHARED
