"""End to end: ``qualify serve --workers 2`` as real processes on 127.0.0.1, HubSpot's
stand-in on another port. Signed app-webhook batches in, verdicts written into the contacts.

- the CRM is down, the service is killed with SIGKILL (its whole process group), and
  started again: every queued write is delivered exactly once;
- a retried delivery writes nothing twice;
- two instances (two workers each) sharing one PostgreSQL deliver each job once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.crm.conftest import HUBSPOT_TOKEN
from tests.service.helpers import ADMIN_KEY, API_KEY, HUBSPOT_SECRET, dumps, wait_ready
from tests.standins import HubSpotStandIn, serving

pytestmark = pytest.mark.slow

START = "import sys; from qualify.cli import main; sys.exit(main())"
CONTACT = {"budget": "25000", "jobtitle": "CEO", "needs_product": "true"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One ``qualify serve`` in a session of its own, so SIGKILL reaches its workers."""

    def __init__(self, database_url: str, crm_url: str, log: Path,
                 extra: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUALIFY_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(QUALIFY_API_KEYS=API_KEY, QUALIFY_ADMIN_KEY=ADMIN_KEY,
                   QUALIFY_HUBSPOT_SECRETS=HUBSPOT_SECRET, QUALIFY_HUBSPOT_TOKEN=HUBSPOT_TOKEN,
                   QUALIFY_HUBSPOT_API_URL=crm_url, QUALIFY_DATABASE_URL=database_url,
                   QUALIFY_OUTBOX_POLL="0.1", QUALIFY_OUTBOX_BACKOFF="0.2",
                   QUALIFY_OUTBOX_BACKOFF_MAX="1", QUALIFY_OUTBOX_MAX_ATTEMPTS="100",
                   QUALIFY_CRM_TIMEOUT="2", **(extra or {}))
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", START, "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", "2"],
            stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_ready(self.process, self.url, log)

    def post_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        from service.signatures import hubspot_v3_signature

        body = dumps(events)
        url = f"{self.url}/v1/webhooks/hubspot"
        stamp = str(int(time.time() * 1000))
        signature = hubspot_v3_signature(HUBSPOT_SECRET, "POST", url, body, stamp)
        r = httpx.post(url, content=body, timeout=10, headers={
            "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp,
            "Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def outbox(self, state: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/v1/outbox?state={state}&limit=1000", timeout=10,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        jobs: list[dict[str, Any]] = r.json()["jobs"]
        return jobs

    def kill(self) -> None:
        """SIGKILL to the server and its workers: nothing runs its shutdown."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._out.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(database_url: str, crm_url: str, **extra: str) -> Server:
        server = Server(database_url, crm_url, tmp_path / f"server-{len(started)}.log", extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _events(ids: range, first_event: int = 1) -> list[dict[str, Any]]:
    return [{"objectId": i, "eventId": first_event + n, "subscriptionId": 25, "portalId": 33,
             "appId": 1160452, "occurredAt": 1767225600000, "attemptNumber": 0,
             "subscriptionType": "contact.propertyChange", "propertyName": "budget",
             "propertyValue": "25000", "changeSource": "CRM_UI"}
            for n, i in enumerate(ids)]


def _crm(ids: range) -> HubSpotStandIn:
    crm = HubSpotStandIn(HUBSPOT_TOKEN, burst=10_000)
    for name in ("qualify_score", "qualify_grade", "qualify_status", "qualify_next_step",
                 "qualify_reason", "qualify_rulebook", "qualify_scored_at"):
        crm.define("contacts", name)
    for i in ids:
        crm.add("contacts", str(i), **{**CONTACT, "budget": str(1000 * i)})
    return crm


def _until(done: Callable[[], bool], seconds: float, what: str,
           *servers: Server) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            logs = "\n".join(s.log.read_text(errors="replace")[-4000:] for s in servers)
            pytest.fail(f"timed out waiting for {what}; server logs:\n{logs}")
        time.sleep(0.1)


def test_crm_down_kill_9_restart_delivers_each_write_once(
        servers: Callable[..., Server], tmp_path: Path) -> None:
    """30 contacts queued while HubSpot is unreachable; the service is SIGKILLed and
    started again with HubSpot back: 30 writes, one per contact; a retried delivery then
    writes nothing."""
    ids = range(100, 130)
    database = f"sqlite:///{tmp_path / 'qualify.db'}"
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    first = servers(database, down)
    answers = [first.post_events(_events(ids[i:i + 10], 1 + i)) for i in range(0, 30, 10)]
    assert sum(a["queued"] for a in answers) == 30
    _until(lambda: len([j for j in first.outbox("queued") if j["attempts"] >= 1]) == 30,
           20, "every job to fail once against the unreachable CRM", first)
    first.kill()

    crm = _crm(ids)
    with serving(crm.app) as crm_url:
        second = servers(database, crm_url)
        _until(lambda: len(crm.writes) >= 30, 30, "30 writes", first, second)
        again = second.post_events(_events(ids[:10], 1))  # HubSpot retries batch one
        assert (again["queued"], again["replayed"]) == (0, 10)
        time.sleep(1.5)  # several polls of both workers
    per_contact = Counter(w["id"] for w in crm.writes)
    assert per_contact == Counter({str(i): 1 for i in ids}), second.outbox("delivered")
    assert len(second.outbox("delivered")) == 30


def test_two_instances_on_one_postgresql_deliver_each_job_once(
        servers: Callable[..., Server], postgres_url: str) -> None:
    """Two instances, two workers each, one queue in PostgreSQL: 40 contacts, each batch
    delivered to both instances (as a retry may be): 40 writes, one per contact."""
    ids = range(200, 240)
    crm = _crm(ids)
    with serving(crm.app) as crm_url:
        a = servers(postgres_url, crm_url)
        b = servers(postgres_url, crm_url)
        queued = 0
        for i in range(0, 40, 10):
            batch = _events(ids[i:i + 10], 1000 + i)
            first, second = (a, b) if i % 20 else (b, a)
            queued += first.post_events(batch)["queued"]
            assert second.post_events(batch)["queued"] == 0
        assert queued == 40
        _until(lambda: len(crm.writes) >= 40, 30, "40 writes", a, b)
        time.sleep(1.0)
    per_contact = Counter(w["id"] for w in crm.writes)
    assert per_contact == Counter({str(i): 1 for i in ids})


def test_salesforce_outbound_message_round_trip(servers: Callable[..., Server],
                                                tmp_path: Path) -> None:
    """An Outbound Message in, the Ack out, the fields written by the outbox process; a
    resent message writes nothing twice; a foreign org and a DTD are refused; a token that
    expires mid-run is renewed."""
    from tests.crm.test_salesforce import CLIENT_ID, CLIENT_SECRET, LEAD, ORG, QUALIFY_FIELDS
    from tests.crm.test_salesforce import message as outbound
    from tests.standins.salesforce import SalesforceStandIn

    crm = SalesforceStandIn(CLIENT_ID, CLIENT_SECRET)
    crm.define("Lead", *QUALIFY_FIELDS)
    for i in range(1, 4):
        crm.add("Lead", f"00Q5g00000AB00{i}EAA", Company="Acme")
    with serving(crm.app) as url:
        crm.instance_url = url
        server = servers(f"sqlite:///{tmp_path / 'sf.db'}", url,
                         QUALIFY_SALESFORCE_ORG_IDS=ORG, QUALIFY_SALESFORCE_CLIENT_ID=CLIENT_ID,
                         QUALIFY_SALESFORCE_CLIENT_SECRET=CLIENT_SECRET,
                         QUALIFY_SALESFORCE_LOGIN_URL=url)
        hook = f"{server.url}/v1/webhooks/salesforce"
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        first = outbound([("04l5g000000AB01AAA", "00Q5g00000AB001EAA", LEAD),
                          ("04l5g000000AB02AAA", "00Q5g00000AB002EAA", LEAD)])
        r = httpx.post(hook, content=first, headers=headers, timeout=10)
        assert (r.status_code, b"<Ack>true</Ack>" in r.content) == (200, True)
        _until(lambda: len(crm.writes) == 2, 20, "two leads written", server)
        assert httpx.post(hook, content=first, headers=headers, timeout=10).status_code == 200
        foreign = outbound([("04l5g000000AB09AAA", "00Q5g00000AB003EAA", LEAD)],
                           org="00D000000000001AAA")
        assert httpx.post(hook, content=foreign, headers=headers, timeout=10).status_code == 403
        dtd = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'
        assert httpx.post(hook, content=dtd, headers=headers, timeout=10).status_code == 400
        crm.expire_tokens()
        third = outbound([("04l5g000000AB03AAA", "00Q5g00000AB003EAA", LEAD)])
        assert b"<Ack>true</Ack>" in httpx.post(hook, content=third, headers=headers,
                                                timeout=10).content
        _until(lambda: len(crm.writes) == 3, 20, "the third lead written", server)
        time.sleep(1.0)
    assert Counter(w["id"] for w in crm.writes) == Counter(
        {"00Q5g00000AB001EAA": 1, "00Q5g00000AB002EAA": 1, "00Q5g00000AB003EAA": 1})
    assert crm.tokens_issued == 2
