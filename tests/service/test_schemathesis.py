"""Schemathesis against the service's own OpenAPI document: no 5xx, no undocumented status.

Every operation gets generated requests, valid and invalid (positive and negative modes),
sent with an API key (the admin key for reload). Derandomised, so runs are reproducible.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.main import create_app
from tests.service.helpers import ADMIN_KEY, API_KEY, TestClient, secured

CHECKS = [schemathesis.checks.not_a_server_error,
          schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_schema_conformance,
          schemathesis.checks.response_headers_conformance]


# Built at import: schemathesis's lazy from_fixture does not work with pytest 9.
STORE = tempfile.TemporaryDirectory(prefix="qualify-schemathesis-")  # not the user's
APP = create_app(secured(database_url=f"sqlite:///{STORE.name}/qualify.db"))
# Each source's own webhook operation is run signed in test_schemathesis_webhooks.py.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(
    path_regex=r"^/v1/webhooks/[a-z]+$")


@pytest.fixture(scope="module", autouse=True)
def _started() -> Iterator[None]:
    """Run the app's lifespan around the module: ready, logs, engines closed at the end."""
    with TestClient(APP):
        yield
    STORE.cleanup()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api(case: Any) -> None:
    """Generated requests never get a 5xx, an undocumented status or a wrong shape."""
    key = ADMIN_KEY if case.path == "/v1/rulebook/reload" else API_KEY
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
