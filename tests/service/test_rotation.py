"""A rotated secret, key or token is accepted in every position of its configured list
(first, middle, last), through the service, by every check: API keys, HubSpot v3 and v1/v2
signatures, the generic signature, Pipedrive's basic auth, Zoho's and Dataverse's tokens.

Issue 16: a check that tried only the last secret passed the tests, which configured the
valid one last. ``tests/mutate.py`` breaks each check that way and expects a failure here
or in ``test_signatures.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

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


class TestEveryPosition:
    def test_api_key(self, client: TestClient) -> None:
        """The API key scores a lead wherever it stands among QUALIFY_API_KEYS."""
        assert client.post("/v1/score", json=LEAD, headers=bearer()).status_code == 200
        assert client.post("/v1/score", json=LEAD, headers=bearer("nope")).status_code == 401

    def test_hubspot_v3(self, client: TestClient) -> None:
        """A v3 signature made with the secret at any position is accepted."""
        body = dumps(HUBSPOT_FLAT)
        r = client.post(f"{HOOK}/hubspot", content=body, headers=hubspot_headers(body))
        assert r.status_code == 200, r.text
        wrong = hubspot_headers(body, secret="not-configured")
        assert client.post(f"{HOOK}/hubspot", content=body, headers=wrong).status_code == 401

    @pytest.mark.parametrize("version", ["v1", "v2"])
    def test_hubspot_legacy(self, client: TestClient, version: str) -> None:
        """A v1 or v2 signature made with the secret at any position is accepted."""
        body = dumps(HUBSPOT_FLAT)
        url = f"http://testserver{HOOK}/hubspot"
        for secret, status in ((HUBSPOT_SECRET, 200), ("not-configured", 401)):
            signature = hubspot_legacy_signature(version, secret, "POST", url, body)
            r = client.post(f"{HOOK}/hubspot", content=body, headers={
                "X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version})
            assert r.status_code == status, r.text

    def test_generic(self, client: TestClient) -> None:
        """An X-Qualify-Signature made with the secret at any position is accepted."""
        body = dumps(LEAD)
        r = client.post(f"{HOOK}/generic", content=body, headers=generic_headers(body))
        assert r.status_code == 200, r.text
        wrong = generic_headers(body, secret="not-configured")
        assert client.post(f"{HOOK}/generic", content=body, headers=wrong).status_code == 401

    def test_pipedrive(self, client: TestClient) -> None:
        """The user:password pair at any position is accepted."""
        r = client.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE),
                        headers=pipedrive_headers())
        assert r.status_code == 200, r.text
        r = client.post(f"{HOOK}/pipedrive", content=dumps(PIPEDRIVE),
                        headers=pipedrive_headers(password="wrong"))
        assert r.status_code == 401

    def test_zoho_and_dynamics_tokens(self, client: TestClient) -> None:
        """The Zoho and Dataverse tokens at any position are accepted."""
        zoho = client.post(f"{HOOK}/zoho", data=ZOHO_FORM, headers={"X-Qualify-Token": ZOHO_TOKEN})
        dynamics = client.post(f"{HOOK}/dynamics?code={DYNAMICS_TOKEN}", content=dumps(DYNAMICS))
        assert (zoho.status_code, dynamics.status_code) == (200, 200), (zoho.text, dynamics.text)
        wrong = client.post(f"{HOOK}/zoho", data=ZOHO_FORM, headers={"X-Qualify-Token": "x"})
        assert wrong.status_code == 401
