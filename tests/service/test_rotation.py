"""A rotated secret, key or token is accepted in every position of its configured list
(first, middle, last), through the service, by every check: API keys, HubSpot v3 and v1/v2
signatures, the generic signature, Pipedrive's basic auth, Zoho's and Dataverse's tokens.

Issue 16: a check that tried only the last secret passed the tests, which configured the
valid one last. ``tests/mutate.py`` breaks each check that way and expects a failure here
or in ``test_signatures.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest

from service.main import create_app
from service.signatures import hubspot_legacy_signature
from tests.service.helpers import (
    API_KEY,
    GENERIC_SECRET,
    HUBSPOT_SECRET,
    LEAD,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_USER,
    TestClient,
    bearer,
    dumps,
    generic_headers,
    hubspot_headers,
    pipedrive_headers,
    secured,
)
from tests.service.test_static_token_webhooks import DYNAMICS, DYNAMICS_TOKEN, ZOHO_FORM, ZOHO_TOKEN
from tests.service.test_webhooks import HUBSPOT_FLAT, PIPEDRIVE

HOOK = "/v1/webhooks"


def ring(valid: str, position: int, retired: str = "retired") -> list[str]:
    """Three configured values, the valid one at ``position``."""
    others = [f"{retired}-1", f"{retired}-2"]
    return [*others[:position], valid, *others[position:]]


@pytest.fixture(params=[0, 1, 2], ids=["first", "middle", "last"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The service with every list of secrets holding the valid one at one position."""
    at: int = request.param
    app = create_app(secured(
        api_keys=ring(API_KEY, at), hubspot_secrets=ring(HUBSPOT_SECRET, at),
        generic_secrets=ring(GENERIC_SECRET, at),
        pipedrive_credentials=ring(f"{PIPEDRIVE_USER}:{PIPEDRIVE_PASSWORD}", at, "old:pw"),
        zoho_tokens=ring(ZOHO_TOKEN, at), dynamics_tokens=ring(DYNAMICS_TOKEN, at)))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _legacy(version: str) -> Callable[[str], dict[str, str]]:
    def headers(secret: str) -> dict[str, str]:
        signature = hubspot_legacy_signature(version, secret, "POST",
                                             f"http://testserver{HOOK}/hubspot", HUBSPOT_BODY)
        return {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version}
    return headers


HUBSPOT_BODY, LEAD_BODY, FORM = dumps(HUBSPOT_FLAT), dumps(LEAD), urlencode(ZOHO_FORM).encode()
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
# check: (url, body, the headers that carry a credential, the valid credential)
CHECKS: dict[str, tuple[str, bytes, Callable[[str], dict[str, str]], str]] = {
    "api-key": ("/v1/score", LEAD_BODY, bearer, API_KEY),
    "hubspot-v3": (f"{HOOK}/hubspot", HUBSPOT_BODY,
                   lambda s: hubspot_headers(HUBSPOT_BODY, secret=s), HUBSPOT_SECRET),
    "hubspot-v1": (f"{HOOK}/hubspot", HUBSPOT_BODY, _legacy("v1"), HUBSPOT_SECRET),
    "hubspot-v2": (f"{HOOK}/hubspot", HUBSPOT_BODY, _legacy("v2"), HUBSPOT_SECRET),
    "generic": (f"{HOOK}/generic", LEAD_BODY,
                lambda s: generic_headers(LEAD_BODY, secret=s), GENERIC_SECRET),
    "pipedrive": (f"{HOOK}/pipedrive", dumps(PIPEDRIVE),
                  lambda p: pipedrive_headers(password=p), PIPEDRIVE_PASSWORD),
    "zoho": (f"{HOOK}/zoho", FORM, lambda t: {"X-Qualify-Token": t, **FORM_TYPE}, ZOHO_TOKEN),
    "dynamics": (f"{HOOK}/dynamics", dumps(DYNAMICS), bearer, DYNAMICS_TOKEN),
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_valid_credential_in_every_position(client: TestClient, check: str) -> None:
    """The credential is accepted (200) wherever it stands in its list; one that is not
    configured is refused (401)."""
    url, body, headers, valid = CHECKS[check]
    for credential, status in ((valid, 200), ("not-configured", 401)):
        r = client.post(url, content=body, headers=headers(credential))
        assert r.status_code == status, r.text
