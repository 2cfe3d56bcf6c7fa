"""Schemathesis on each webhook source's own operation, every request authenticated as its CRM
would: HubSpot v3 signature over the final URL and body, Pipedrive basic auth, Zoho and
Dataverse tokens, a Salesforce organisation allowed, the generic X-Qualify-Signature.

Bodies come from the OpenAPI document (the CRM's shape around the fields each mapping
profile reads), valid and invalid. No answer may be a 5xx, a 401 (the credentials are
valid), a status, type or shape the document does not give, or carry a stack trace.
Derandomised, so runs are reproducible.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from service.main import create_app
from service.signatures import (
    HUBSPOT_SIGNATURE,
    HUBSPOT_TIMESTAMP,
    basic_header,
    generic_header,
    hubspot_uri,
    hubspot_v3_signature,
)
from tests.service.helpers import (
    GENERIC_SECRET,
    HUBSPOT_SECRET,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_USER,
    TestClient,
    secured,
)

ZOHO_TOKEN, DYNAMICS_TOKEN = "zoho-static-token", "dataverse-webhook-key"
SALESFORCE_ORG = "00D5g000004AbCdEAA"
BASE_URL = "http://testserver"  # the host schemathesis's ASGI client sends
ANSWERED: Counter[tuple[str, str]] = Counter()  # valid deliveries: (source, outcome)
TRACE = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+')


def no_stack_trace(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                   case: schemathesis.Case) -> bool | None:
    """No answer shows a Python stack trace."""
    if TRACE.search(response.text):
        raise AssertionError(f"a stack trace in the answer: {response.text[:500]}")
    return None


def credentials_accepted(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                         case: schemathesis.Case) -> bool | None:
    """A valid request is authenticated: a 401 means a valid signature was refused. (An
    invalid one may lack the header on purpose.)"""
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if response.status_code == 401 and not negative:
        raise AssertionError(f"valid credentials refused: {response.text[:500]}")
    return None


CHECKS = [schemathesis.checks.not_a_server_error,
          schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_schema_conformance,
          schemathesis.checks.response_headers_conformance,
          no_stack_trace, credentials_accepted]

# Built at import: schemathesis's lazy from_fixture does not work with pytest 9.
STORE = tempfile.TemporaryDirectory(prefix="qualify-schemathesis-")  # deliveries seen
APP = create_app(secured(zoho_tokens=[ZOHO_TOKEN], dynamics_tokens=[DYNAMICS_TOKEN],
                         salesforce_org_ids=[SALESFORCE_ORG],
                         database_url=f"sqlite:///{STORE.name}/qualify.db"))
# The coverage phase sends 1,000-1,500 boundary cases per operation (bodies of 30 fields):
# fuzzing alone keeps the run to about a minute.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG).include(
    path_regex=r"^/v1/webhooks/[a-z]+$")


@pytest.fixture(scope="module", autouse=True)
def _started() -> Iterator[None]:
    """Run the app's lifespan around the module: ready, logs, engines closed at the end."""
    with TestClient(APP):
        yield
    STORE.cleanup()


def _from_allowed_org(body: Any) -> None:
    """Salesforce's authentication is the organisation id in the message: an allowed one."""
    notifications = body.get("Body") if isinstance(body, dict) else None
    notifications = notifications.get("notifications") if isinstance(notifications,
                                                                      dict) else None
    if isinstance(notifications, dict):
        notifications["OrganizationId"] = SALESFORCE_ORG


def authenticate(source: str, url: str, body: bytes) -> dict[str, str]:
    """The headers ``source``'s CRM sends with ``body`` posted to ``url``."""
    if source == "hubspot":
        stamp = str(int(time.time() * 1000))
        return {HUBSPOT_SIGNATURE: hubspot_v3_signature(
            HUBSPOT_SECRET, "POST", hubspot_uri(url), body, stamp), HUBSPOT_TIMESTAMP: stamp}
    if source == "pipedrive":
        return {"Authorization": basic_header(PIPEDRIVE_USER, PIPEDRIVE_PASSWORD)}
    if source in ("zoho", "dynamics"):
        return {"X-Qualify-Token": ZOHO_TOKEN if source == "zoho" else DYNAMICS_TOKEN}
    if source == "salesforce":
        return {}
    return {"X-Qualify-Signature": generic_header(GENERIC_SECRET, body, int(time.time()))}


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=100, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_webhooks(case: schemathesis.Case) -> None:
    """Generated deliveries, authenticated, never get a 5xx, a 401, an undocumented answer
    or a stack trace."""
    source = case.path.rsplit("/", 1)[-1]
    if source == "salesforce":
        _from_allowed_org(case.body)
    # The request as it will go out, so that the signature covers its exact URL and bytes.
    sent = case.as_transport_kwargs(base_url=BASE_URL)
    prepared = requests.Request(method=sent["method"], url=sent["url"],
                                params=sent.get("params"), headers=sent["headers"],
                                data=sent.get("data"), json=sent.get("json")).prepare()
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    response = case.call_and_validate(base_url=BASE_URL, data=body, checks=CHECKS,
                                      headers=authenticate(source, str(prepared.url), body))
    if case.meta is not None and not case.meta.generation.mode.is_negative:
        scored = response.status_code == 200 and b'"scored":true' in response.content
        ANSWERED[source, "scored" if scored else str(response.status_code)] += 1


@pytest.mark.slow
def test_the_run_reached_the_engine() -> None:
    """The valid deliveries above were taken: every source answered 200, and records were
    scored (not all refused for a body the document made wrong)."""
    if not ANSWERED:
        pytest.skip("runs after test_webhooks")
    sources = {source for source, _ in ANSWERED}
    assert sources == {"dynamics", "generic", "hubspot", "pipedrive", "salesforce", "zoho"}
    for source in sources:
        assert ANSWERED[source, "200"] + ANSWERED[source, "scored"] > 0, source
    for source in ("generic", "hubspot", "pipedrive", "zoho"):
        assert ANSWERED[source, "scored"] > 0, source
