"""The write-back outbox under load, next to POST /v1/score in the same run.

    .venv/bin/python bench/outbox.py                 # about 2 minutes
    .venv/bin/python bench/outbox.py --jobs 4000 --requests 10000 --no-postgres

Starts HubSpot's stand-in (tests/standins, answering at once, no rate limit; a process of
its own, so that it takes no time from this client) and ``qualify serve --workers 2``
processes on 127.0.0.1, and measures:

1. outbox throughput, per store (SQLite file; PostgreSQL when its server binaries are
   installed: tests/install-postgres.sh): ``--jobs`` contacts sent as signed app-webhook
   batches of 100 events, then the time until the stand-in holds every write: jobs/s
   (fetch + score + write, batched by 100), and the webhook ingest rate;
2. the request path, write-back on against off, interleaved rounds at concurrency 32:
   POST /v1/score on a server without a CRM token, POST /v1/score and a HubSpot workflow
   webhook (signed, scored, its job stored) on a server with one: req/s, p50 and p99.

Every process is ours and stopped at the end; the load loops are bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.service import (  # noqa: E402
    API_KEY,
    HOST,
    START,
    Result,
    Server,
    free_port,
    load,
    post,
    request_once,
)
from service.signatures import hubspot_v3_signature  # noqa: E402

TOKEN = "bench-hubspot-token"
SECRET = "bench-hubspot-secret"
PROPERTIES = ("qualify_score", "qualify_grade", "qualify_status", "qualify_next_step",
              "qualify_reason", "qualify_rulebook", "qualify_scored_at")


def signed(port: int, body: bytes) -> bytes:
    """A HubSpot-signed POST /v1/webhooks/hubspot (valid for 5 minutes)."""
    url = f"http://{HOST}:{port}/v1/webhooks/hubspot"
    stamp = str(int(time.time() * 1000))
    signature = hubspot_v3_signature(SECRET, "POST", url, body, stamp)
    return (f"POST /v1/webhooks/hubspot HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"X-HubSpot-Signature-v3: {signature}\r\nX-HubSpot-Request-Timestamp: {stamp}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def contact(i: int, lead: dict[str, Any]) -> dict[str, str]:
    """A generated lead as HubSpot contact properties (text values)."""
    out = {k: (";".join(v) if isinstance(v, list) else str(v)) for k, v in lead.items()
           if v is not None and k != "lead_id"}
    out["hs_object_id"] = str(i)
    return out


def stand_in(port: int, contacts: int) -> None:
    """The HubSpot stand-in with ``contacts`` generated contacts, served until killed."""
    import uvicorn

    from qualify.synthetic import generate
    from tests.standins import HubSpotStandIn

    os.nice(19)  # a remote system: its CPU is not ours to measure against
    crm = HubSpotStandIn(TOKEN, burst=10**9, window=1.0)
    for name in PROPERTIES:
        crm.define("contacts", name)
    for i, lead in enumerate(generate(contacts, seed=3)):
        crm.add("contacts", str(i), **contact(i, lead))
    uvicorn.run(crm.app, host=HOST, port=port, log_level="warning")


async def jobs(port: int, state: str) -> int:
    """Jobs in ``state``, from the service's /metrics (the store's count)."""
    _, body = await request_once(port, f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\n"
                                 "Connection: close\r\n\r\n".encode())
    for line in body.decode().splitlines():
        if line.startswith(f'qualify_outbox_jobs{{crm="hubspot",state="{state}"}}'):
            return int(float(line.split()[-1]))
    return 0


async def delivered(port: int) -> int:
    return await jobs(port, "delivered")


async def queued(port: int) -> int:
    return await jobs(port, "queued") + await jobs(port, "running")


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of ``root``'s process tree, per command: the uvicorn
    workers and the outbox process of a ``qualify serve``."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        kind = "outbox" if b"outbox" in argv else "serve" if pid == root else "workers"
        times[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    out: dict[str, float] = {}
    for pid, (kind, seconds) in times.items():
        p = pid
        while p in parents and p != root:
            p = parents[p]
        if p == root:
            out[kind] = out.get(kind, 0.0) + seconds
    return out


def serve(name: str, env: dict[str, str], scratch: Path) -> Server:
    port = free_port()
    return Server(name, [sys.executable, "-c", START, "serve", "--host", HOST, "--port",
                         str(port), "--workers", "2"], env, port, scratch / f"{name}.log")


async def throughput(label: str, base: dict[str, str], database: str, crm_url: str, *,
                     jobs: int, first: int, scratch: Path) -> None:
    env = {**base, "QUALIFY_DATABASE_URL": database, "QUALIFY_HUBSPOT_TOKEN": TOKEN,
           "QUALIFY_HUBSPOT_API_URL": crm_url}
    server = serve(f"outbox-{label}", env, scratch)
    try:
        await server.wait_ready("/readyz")
        ids = list(range(first, first + jobs))
        began = time.perf_counter()
        for at in range(0, jobs, 100):
            events = [{"objectId": i, "eventId": i, "subscriptionId": 1, "portalId": 1,
                       "occurredAt": 1767225600000, "propertyName": "budget",
                       "subscriptionType": "contact.propertyChange", "changeSource": "CRM_UI"}
                      for i in ids[at:at + 100]]
            status, body = await request_once(server.port, signed(
                server.port, json.dumps(events).encode()).replace(
                    b"Content-Type", b"Connection: close\r\nContent-Type", 1))
            assert status == 200 and json.loads(body)["queued"] == len(events), body
        ingested = time.perf_counter() - began
        deadline = time.perf_counter() + 600
        while (done := await delivered(server.port)) < jobs and \
                time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        drained = time.perf_counter() - began
        print(f"outbox, {label:<10} {jobs:>6} jobs: ingest {jobs / ingested:>8,.0f} events/s; "
              f"written {done:>6} in {drained:5.1f} s = {done / drained:>7,.0f} jobs/s "
              f"end to end (2 workers, batches of 100)", flush=True)
    finally:
        server.stop()


async def main(args: argparse.Namespace) -> int:
    from qualify.synthetic import generate

    scratch = Path(tempfile.mkdtemp(prefix="qualify-bench-outbox-"))
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("QUALIFY_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    base.update(QUALIFY_API_KEYS=API_KEY, QUALIFY_HUBSPOT_SECRETS=SECRET,
                QUALIFY_ACCESS_LOG="false", QUALIFY_OUTBOX_POLL="0.2")
    leads = list(generate(max(args.jobs, args.leads) * 2, seed=3))
    postgres = None
    crm_port = free_port()
    crm = Server("stand-in", [sys.executable, str(Path(__file__).resolve()), "--stand-in",
                              str(crm_port), "--contacts", str(len(leads))],
                 base, crm_port, scratch / "stand-in.log")
    crm_url = f"http://{HOST}:{crm_port}"
    try:
        await crm.wait_ready("/crm/v3/objects/contacts/0", timeout=120, ok=(200, 401))
        print(f"outbox bench: {os.cpu_count()} CPUs shared by the servers, the stand-in "
              f"and this client; load average {os.getloadavg()[0]:.2f}")
        await throughput("sqlite", base, f"sqlite:///{scratch / 'q.db'}", crm_url,
                         jobs=args.jobs, first=0, scratch=scratch)
        if args.postgres:
            from tests.postgres import PostgresServer, find_bin

            if find_bin() is None:
                print("outbox, postgresql: skipped (no server binaries: run "
                      "tests/install-postgres.sh)")
            else:
                postgres = PostgresServer().start()
                url = postgres.create_database("bench")
                await throughput("postgresql", base, url, crm_url, jobs=args.jobs,
                                 first=args.jobs, scratch=scratch)

        off = serve("writeback-off", {**base, "QUALIFY_DATABASE_URL":
                                      f"sqlite:///{scratch / 'off.db'}"}, scratch)
        on = serve("writeback-on", {**base, "QUALIFY_DATABASE_URL":
                                    f"sqlite:///{scratch / 'on.db'}",
                                    "QUALIFY_HUBSPOT_TOKEN": TOKEN,
                                    "QUALIFY_HUBSPOT_API_URL": crm_url}, scratch)
        try:
            await off.wait_ready("/readyz")
            await on.wait_ready("/readyz")
            bodies = [json.dumps(lead).encode() for lead in leads[:args.leads]]
            hooks = [json.dumps(contact(i, lead)).encode()
                     for i, lead in enumerate(leads[:args.leads])]
            targets = [
                ("POST /v1/score, write-back off", off.port,
                 [post("/v1/score", off.port, b) for b in bodies]),
                ("POST /v1/score, write-back on", on.port,
                 [post("/v1/score", on.port, b) for b in bodies]),
                ("HubSpot workflow webhook, queued", on.port,
                 [signed(on.port, b) for b in hooks]),
                ("HubSpot workflow webhook, write-back off", off.port,
                 [signed(off.port, b) for b in hooks]),
            ]
            print(f"{'endpoint':<38} {'done':>7} {'req/s':>9} {'p50 ms':>8} "
                  f"{'p99 ms':>8} {'failed':>7}")
            for name, port, reqs in targets:
                await load(name, port, reqs, concurrency=32, total=args.warmup)
            for round_ in range(args.rounds):
                results: list[Result] = []
                for name, port, reqs in targets:
                    server = on if port == on.port else off
                    before = cpu_seconds(server.process.pid)
                    results.append(r := await load(name, port, reqs, concurrency=32,
                                                   total=args.requests))
                    if "queued" in name:  # let the outbox catch up, to count its work
                        began = time.perf_counter()
                        while await queued(on.port) and time.perf_counter() - began < 120:
                            await asyncio.sleep(0.1)
                    after = cpu_seconds(server.process.pid)
                    cpu = ", ".join(f"{k} {(after[k] - before.get(k, 0)) / r.done * 1e6:.0f}"
                                    for k in sorted(after) if after[k] > before.get(k, 0))
                    print(f"{r.line()}   CPU us a request: {cpu}", flush=True)
                score_off, score_on, hook, hook_off = results
                print(f"round {round_ + 1}: /v1/score req/s with write-back on "
                      f"{score_on.rate / score_off.rate:.0%} of off; webhook p99 "
                      f"{hook.p99_ms / score_on.p99_ms:.2f}x /v1/score's "
                      f"(target <= 2x); webhook req/s {hook.rate / hook_off.rate:.0%} of "
                      f"the same webhook with write-back off", flush=True)
        finally:
            off.stop()
            on.stop()
        return 0
    finally:
        crm.stop()
        if postgres is not None:
            postgres.close()
        shutil.rmtree(scratch, ignore_errors=True)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="contacts written back")
    parser.add_argument("--requests", type=int, default=10_000,
                        help="requests per endpoint and round")
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--leads", type=int, default=2_000, help="distinct bodies, cycled")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--stand-in", type=int, help=argparse.SUPPRESS)  # port: serve it
    parser.add_argument("--contacts", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stand_in:
        stand_in(args.stand_in, args.contacts)
        return 0
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main(args))


if __name__ == "__main__":
    raise SystemExit(cli())
