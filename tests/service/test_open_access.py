"""Without API keys, scoring and admin endpoints answer only clients on the service's own
machine, however the app is started: at the ASGI level with other peers, and a real
``uvicorn --factory`` on a non-loopback address of this machine."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.main import create_app
from tests.service.helpers import (
    API_KEY,
    AS_OF,
    GENERIC_SECRET,
    LEAD,
    Serve,
    TestClient,
    bearer,
    dumps,
    generic_headers,
    settings,
)

REMOTE = ("203.0.113.7", 50000)
# What the keys guard: scoring, the rule base, reload and the outbox (no admin key either).
GUARDED = [("POST", "/v1/score", LEAD), ("POST", "/v1/score/batch", {"leads": [LEAD]}),
           ("GET", "/v1/rulebook", None), ("POST", "/v1/rulebook/reload", None),
           ("GET", "/v1/outbox", None)]


@pytest.fixture
def app_without_keys() -> Iterator[TestClient]:
    """The service without keys (its lifespan run by a loopback client)."""
    with TestClient(create_app(settings())) as c:
        yield c


def _as(app_client: TestClient, peer: tuple[str, int]) -> TestClient:
    return TestClient(app_client.app, client=peer, raise_server_exceptions=False)


class TestWithoutKeys:
    @pytest.mark.parametrize(("method", "path", "body"), GUARDED)
    def test_a_remote_client_gets_403_saying_what_to_set(
            self, app_without_keys: TestClient, method: str, path: str,
            body: object) -> None:
        """A peer that is not loopback gets 403, told to set QUALIFY_API_KEYS."""
        r = _as(app_without_keys, REMOTE).request(method, path, json=body)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        assert "QUALIFY_API_KEYS" in r.json()["message"]

    @pytest.mark.parametrize("peer", [("127.0.0.1", 50000), ("127.8.0.1", 1), ("::1", 2),
                                      ("::ffff:127.0.0.1", 3)])
    @pytest.mark.parametrize(("method", "path", "body"), GUARDED)
    def test_a_loopback_client_is_served(self, app_without_keys: TestClient, method: str,
                                         path: str, body: object,
                                         peer: tuple[str, int]) -> None:
        """127.0.0.0/8 and ::1 (also IPv4-mapped) are this machine: served as before."""
        r = _as(app_without_keys, peer).request(method, path, json=body)
        assert r.status_code == 200, r.text

    @pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
    def test_a_request_relayed_by_a_local_proxy_gets_403(
            self, app_without_keys: TestClient, header: str) -> None:
        """From 127.0.0.1 but relayed for someone (a proxy on this machine, or a client of
        one that trusts every forwarder): not local."""
        r = app_without_keys.post("/v1/score", json=LEAD, headers={header: "127.0.0.1"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")

    def test_probes_and_signed_webhooks_stay_open(self, app_without_keys: TestClient) -> None:
        """Health and readiness carry no key in any mode, and a webhook has credentials of
        its own: neither depends on the API keys."""
        remote = _as(app_without_keys, REMOTE)
        assert remote.get("/healthz").status_code == 200
        with TestClient(create_app(settings(generic_secrets=[GENERIC_SECRET])),
                        client=REMOTE) as c:
            body = dumps(LEAD)
            r = c.post(f"/v1/webhooks/generic?as_of={AS_OF}", content=body,
                       headers=generic_headers(body))
        assert (r.status_code, r.json()["scored"]) == (200, True)


class TestWithKeys:
    def test_a_remote_client_with_a_key_is_served(self) -> None:
        """With API keys the peer does not matter: the key does."""
        with TestClient(create_app(settings(api_keys=[API_KEY])), client=REMOTE) as c:
            assert c.post("/v1/score", json=LEAD, headers=bearer()).status_code == 200
            assert c.post("/v1/score", json=LEAD).status_code == 401


def _external_address() -> str | None:
    """An IPv4 address of this machine that is not loopback and can be bound, or None."""
    if shutil.which("hostname") is None:
        return None
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    for word in out.stdout.split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback:
            try:
                with socket.socket() as s:
                    s.bind((word, 0))
            except OSError:
                continue
            return word
    return None


@pytest.mark.slow
def test_uvicorn_factory_on_a_non_loopback_address(tmp_path: Path) -> None:
    """`uvicorn service.main:create_app --factory` on this machine's own non-loopback
    address, no keys: a client reaching it there gets 403 from scoring (it scored before:
    the check lived in `qualify serve` only), while readiness answers."""
    address = _external_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this machine (hostname -I)")
    server = Serve(tmp_path, command=("-m", "uvicorn", "service.main:create_app",
                                      "--factory"), host=address)
    try:
        server.wait_ready()
        r = httpx.post(f"{server.url}/v1/score", json=LEAD, timeout=10)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden"), r.text
        assert "QUALIFY_API_KEYS" in r.json()["message"]
    finally:
        server.stop()
    assert "answer only clients on this machine" in server.output()
