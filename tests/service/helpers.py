"""Constants and builders shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from service.signatures import basic_header, generic_header, hubspot_v3_signature

with warnings.catch_warnings():  # starlette asks for httpx2; plain httpx still works
    warnings.filterwarnings("ignore", message=".*install `httpx2`")
    from starlette.testclient import TestClient as StarletteTestClient

__all__ = ["Server", "TestClient"]

LOOPBACK = ("127.0.0.1", 50000)


class TestClient(StarletteTestClient):
    """Starlette's test client, as a client on the service's machine (127.0.0.1:50000, not
    starlette's "testclient"): without API keys the service answers only those."""

    def __init__(self, app: Any, *args: Any, client: tuple[str, int] = LOOPBACK,
                 **kwargs: Any) -> None:
        super().__init__(app, *args, client=client, **kwargs)

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


# ----------------------------------------------------------------------------- real servers

START = "import sys; from qualify.cli import main; sys.exit(main())"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path,
               timeout: float = 40) -> None:
    """Until ``url``/readyz answers 200; fails with the server's log if it exits or is slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not become ready: {log.read_text(errors='replace')}")


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
        wait_ready(self.process, self.url, self.log, timeout)

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


class Serve:
    """A real server process (``qualify serve`` unless ``command`` says otherwise) on
    ``host`` and a free port, in a session of its own: ``stop`` ends every process in it.
    Its environment has no QUALIFY_* variable but ``env`` and a store in ``tmp``."""

    def __init__(self, tmp: Path, *options: str, env: Mapping[str, str] | None = None,
                 command: Sequence[str] = ("-c", START, "serve"),
                 host: str = "127.0.0.1") -> None:
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith("QUALIFY_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        environment.update(QUALIFY_DATABASE_URL=f"sqlite:///{tmp / 'serve.db'}",
                           QUALIFY_ACCESS_LOG="false", **(env or {}))
        self.log = tmp / "serve.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *command, "--host", host, "--port", str(self.port),
                 *options], stdout=out, stderr=subprocess.STDOUT, env=environment,
                start_new_session=True)

    def wait_ready(self, timeout: float = 40) -> Serve:
        wait_ready(self.process, self.url, self.log, timeout)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT to the session, then SIGKILL if it has not ended in 20 s; SIGKILL to any
        process of it that outlived the server."""
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait)
        for pid in session(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def session(sid: int) -> dict[int, str]:
    """The live processes of session ``sid`` (zombies are dead) and their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found[int(stat.parent.name)] = command.decode(errors="replace")
    return found
