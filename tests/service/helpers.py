"""Constants and builders shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from service.signatures import basic_header, generic_header, hubspot_v3_signature

with warnings.catch_warnings():  # starlette asks for httpx2; plain httpx still works
    warnings.filterwarnings("ignore", message=".*install `httpx2`")
    from starlette.testclient import TestClient

__all__ = ["Server", "TestClient"]

API_KEY = "test-api-key"
ADMIN_KEY = "test-admin-key"
HUBSPOT_SECRET = "hubspot-client-secret"
PIPEDRIVE_USER, PIPEDRIVE_PASSWORD = "pipedrive", "s3cret:with:colons"
GENERIC_SECRET = "generic-signing-secret"
AS_OF = "2026-01-01"

LEAD: dict[str, Any] = {
    "lead_id": "L-1001", "needs_product": "Yes", "purchase_timeline_days": 21,
    "budget": "25,000", "contact_role": "Owner", "sentiment": "positive",
    "expected_deal_size": 60000, "last_contact_date": "2025-12-20", "company": "Acme Ltd",
}


def settings(**overrides: Any) -> Settings:
    """Settings from explicit values (the environment is cleared by an autouse fixture)."""
    base: dict[str, Any] = {"access_log": False, "reload_grace": 0.0}
    base.update(overrides)
    return Settings(**base)


def secured(**overrides: Any) -> Settings:
    """Settings with every key and secret configured (two HubSpot secrets: rotation)."""
    values: dict[str, Any] = {
        "api_keys": [API_KEY], "admin_key": ADMIN_KEY,
        "hubspot_secrets": ["old-secret", HUBSPOT_SECRET],
        "pipedrive_credentials": [f"{PIPEDRIVE_USER}:{PIPEDRIVE_PASSWORD}"],
        "generic_secrets": [GENERIC_SECRET]}
    return settings(**{**values, **overrides})


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of ``needle`` in ``text``: expected error locations."""
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def bearer(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def hubspot_headers(body: bytes, *, url: str = "http://testserver/v1/webhooks/hubspot",
                    secret: str = HUBSPOT_SECRET, skew: float = 0) -> dict[str, str]:
    """Signed as HubSpot does, ``skew`` seconds away from now."""
    stamp = str(int((time.time() + skew) * 1000))
    return {"X-HubSpot-Signature-v3": hubspot_v3_signature(secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}


def generic_headers(body: bytes, *, secret: str = GENERIC_SECRET,
                    skew: float = 0) -> dict[str, str]:
    """Signed with the generic scheme, ``skew`` seconds away from now."""
    stamp = int(time.time() + skew)
    return {"X-Qualify-Signature": generic_header(secret, body, stamp),
            "Content-Type": "application/json"}


def pipedrive_headers(user: str = PIPEDRIVE_USER,
                      password: str = PIPEDRIVE_PASSWORD) -> dict[str, str]:
    return {"Authorization": basic_header(user, password), "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``qualify serve --workers N`` as a real process on 127.0.0.1, in a session of its
    own; ``args`` and ``env`` add options and QUALIFY_* variables."""

    START = "import sys; from qualify.cli import main; sys.exit(main())"

    def __init__(self, rules: Path, log: Path, *, workers: int = 2, args: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("QUALIFY_")}
        environ.update(QUALIFY_API_KEYS=API_KEY, QUALIFY_ADMIN_KEY=ADMIN_KEY,
                       QUALIFY_RELOAD_POLL="0.2", QUALIFY_RELOAD_GRACE="1", **(env or {}))
        environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.START, "serve", "--rules", str(rules), "--host",
             "127.0.0.1", "--port", str(self.port), "--workers", str(workers), *args],
            stdout=self._out, stderr=subprocess.STDOUT, env=environ, start_new_session=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited: {self.log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail("the server did not become ready")

    def workers(self) -> list[int]:
        """The uvicorn worker processes' ids (children started by multiprocessing)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == self.process.pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # our own child's session
                self.process.wait(timeout=5)
        self._out.close()
        return self.process.returncode
