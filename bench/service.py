"""Load test of the HTTP service over loopback, next to a trivial FastAPI app.

    .venv/bin/python bench/service.py                 # defaults below, about 2 minutes
    .venv/bin/python bench/service.py --requests 5000 --reload-seconds 10 --reloads 6

Starts ``qualify serve --workers 2`` and, for comparison, a trivial FastAPI app under the
same uvicorn settings (2 workers, uvloop, httptools, no access log). Both bind 127.0.0.1
only. A keep-alive HTTP/1.1 client on asyncio (cheap per request, so it takes less of the
CPU the servers share with it) sends a bounded number of requests at concurrency 32:

1. throughput: realistic leads (qualify.synthetic) to POST /v1/score, the same bodies to
   the trivial app's POST /score (parses the JSON, returns {"ok": true}), and GET /ping;
   req/s, p50 and p99 for each. ``--leads`` distinct bodies are cycled (default 2,000):
   the engine's memos learn repeated leads, so ``--leads 62000`` (more than the warm-up
   and three rounds send) measures all-new leads.
   ``--batch N`` adds POST /v1/score/batch with N of those leads per request;
   ``--decision-log`` has the service append every decision to a file; ``--qualify-only``
   leaves the trivial app out.
2. reload: POST /v1/score for ``--reload-seconds`` while the rule base file is switched
   between two versions and reloaded ``--reloads`` times; failed requests are counted.

Every process is ours and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
API_KEY = "bench-api-key"
ADMIN_KEY = "bench-admin-key"
START = "import sys; from qualify.cli import main; sys.exit(main())"

# ----------------------------------------------------------------------------- trivial app

trivial_app = FastAPI()


@trivial_app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@trivial_app.post("/score")
async def trivial_score(request: Request) -> dict[str, bool]:
    await request.json()
    return {"ok": True}


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server process of ours on 127.0.0.1, stopped by its handle."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int,
                 log: Path) -> None:
        self.name = name
        self.port = port
        self._log = log.open("wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=ROOT)

    async def wait_ready(self, path: str, timeout: float = 60,
                         ok: tuple[int, ...] = (200,)) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}")
            try:
                status, _ = await request_once(self.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                                               "Connection: close\r\n\r\n".encode())
                if status in ok:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise SystemExit(f"{self.name} did not become ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


# ----------------------------------------------------------------------------- client


_WORKER_ID = len("4e57") + 12  # qualify's request ids start with a per-process prefix


async def read_response(reader: asyncio.StreamReader,
                        workers: dict[str, int] | None = None) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif workers is not None and name == b"x-request-id":
            worker = value.strip()[:_WORKER_ID].decode()
            workers[worker] = workers.get(worker, 0) + 1
    body = await reader.readexactly(length) if length else b""
    return status, body


async def request_once(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(raw)
        return await read_response(reader)
    finally:
        writer.close()


def post(path: str, port: int, body: bytes, key: str | None = API_KEY) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def get(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    shas: dict[str, int] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)  # requests per qualify worker

    @property
    def done(self) -> int:
        return len(self.latencies)

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
        rate = self.done / self.seconds if self.seconds else 0.0
        split = "/".join(str(n) for n in sorted(self.workers.values(), reverse=True))
        return (f"{self.name:<38} {self.done:>7} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f} "
                f"{self.failed:>7}" + (f"   per worker {split}" if split else ""))

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def p99_ms(self) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")


_SHA = b'"sha256":"'


async def load(name: str, port: int, requests: list[bytes], *, concurrency: int,
               total: int | None = None, seconds: float | None = None,
               track_sha: bool = False) -> Result:
    """Send requests on ``concurrency`` keep-alive connections: ``total`` of them, or for
    ``seconds``. Anything but a 200 (or a broken connection) is a failure."""
    result = Result(name)
    counter = itertools.count()
    deadline = time.perf_counter() + seconds if seconds else None

    async def connection(number: int) -> None:
        # Connect one by one: a worker's accept loop takes every connection pending at
        # once, and 32 simultaneous connects would all land on one worker.
        await asyncio.sleep(number * 0.005)
        reader = writer = None
        while True:
            i = next(counter)
            if (total is not None and i >= total) or (
                    deadline is not None and time.perf_counter() >= deadline):
                break
            raw = requests[i % len(requests)]
            start = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(raw)
                assert reader is not None
                status, body = await read_response(reader, result.workers)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.failed += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status != 200:
                result.failed += 1
            elif track_sha:
                at = body.find(_SHA)
                sha = body[at + 10:at + 22].decode() if at >= 0 else "?"
                result.shas[sha] = result.shas.get(sha, 0) + 1
        if writer is not None:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


# ----------------------------------------------------------------------------- the run


async def main(args: argparse.Namespace) -> int:
    from qualify.rulebook import default_rules_path
    from qualify.synthetic import generate

    scratch = Path(tempfile.mkdtemp(prefix="qualify-bench-"))
    rules = scratch / "rules.yaml"
    shutil.copy(default_rules_path(), rules)
    shutil.copytree(default_rules_path().parent / "mappings", scratch / "mappings")
    versions = [rules.read_text(encoding="utf-8")]
    versions.append(versions[0].replace("version: 1", "version: 2", 1))
    shas = [hashlib.sha256(v.encode()).hexdigest()[:12] for v in versions]

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QUALIFY_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(QUALIFY_API_KEYS=API_KEY, QUALIFY_ADMIN_KEY=ADMIN_KEY)
    py = sys.executable
    qport, tport = free_port(), free_port()
    decisions = ["--decision-log", str(scratch / "decisions.jsonl")] if args.decision_log \
        else []
    servers = [
        Server("qualify", [py, "-c", START, "serve", "--rules", str(rules), "--host", HOST,
                           "--port", str(qport), "--workers", str(args.workers), *decisions],
               env, qport, scratch / "qualify.log"),
    ]
    if not args.qualify_only:
        servers.append(
            Server("trivial", [py, "-m", "uvicorn", "bench.service:trivial_app", "--app-dir",
                               str(ROOT), "--host", HOST, "--port", str(tport), "--workers",
                               str(args.workers), "--no-access-log", "--log-level",
                               "warning"], env, tport, scratch / "trivial.log"))
    try:
        await servers[0].wait_ready("/readyz")
        if not args.qualify_only:
            await servers[1].wait_ready("/ping")
        generated = list(generate(args.leads, seed=1))
        leads = [json.dumps(lead, ensure_ascii=False).encode() for lead in generated]
        targets = [] if args.qualify_only else [
            ("trivial FastAPI GET /ping", tport, [get("/ping", tport)]),
            ("trivial FastAPI POST /score (parse)", tport,
             [post("/score", tport, b, None) for b in leads]),
        ]
        targets.append(("qualify POST /v1/score", qport,
                        [post("/v1/score", qport, b) for b in leads]))
        if args.batch:
            batches = [json.dumps({"leads": generated[i:i + args.batch]},
                                  ensure_ascii=False).encode()
                       for i in range(0, len(generated) - args.batch + 1, args.batch)]
            targets.append((f"qualify POST /v1/score/batch ({args.batch})", qport,
                            [post("/v1/score/batch", qport, b) for b in batches]))
        print(f"qualify service bench: {args.workers} workers each, concurrency "
              f"{args.concurrency}, {args.requests} requests per endpoint and round "
              f"(cycling {len(leads):,} distinct leads), "
              f"{args.rounds} round(s) interleaved, decision log "
              f"{'on' if args.decision_log else 'off'}, {HOST}, {os.cpu_count()} CPUs "
              f"(shared with this client), load average before "
              f"{os.getloadavg()[0]:.2f}")
        print(f"{'endpoint':<38} {'done':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'failed':>7}")
        for name, port, reqs in targets:  # warm up every server first
            await load(name, port, reqs, concurrency=args.concurrency, total=args.warmup)
        ratios = []
        for round_ in range(args.rounds):
            results: dict[str, Result] = {}
            for name, port, reqs in targets:
                results[name] = r = await load(name, port, reqs,
                                               concurrency=args.concurrency,
                                               total=args.requests)
                print(r.line(), flush=True)
            if args.qualify_only:
                continue
            score, trivial = results[targets[2][0]], results[targets[1][0]]
            ratios.append(score.rate / trivial.rate)
            print(f"round {round_ + 1}: score/trivial POST {ratios[-1]:.0%} of the req/s "
                  f"(target >= 50%), score/trivial GET "
                  f"{score.rate / results[targets[0][0]].rate:.0%}; score p99 "
                  f"{score.p99_ms:.1f} ms (target <= 20 ms)", flush=True)
        if args.rounds > 1 and ratios:
            print(f"score/trivial POST over {args.rounds} rounds: median "
                  f"{statistics.median(ratios):.0%}, best {max(ratios):.0%}")

        if args.reload_seconds > 0:
            reloads: list[int] = []

            async def reloader() -> None:
                gap = args.reload_seconds / (args.reloads + 1)
                for i in range(args.reloads):
                    await asyncio.sleep(gap)
                    rules.write_text(versions[(i + 1) % 2], encoding="utf-8")
                    status, _ = await request_once(
                        qport, post("/v1/rulebook/reload", qport, b"", ADMIN_KEY)
                        .replace(b"Content-Length: 0\r\n",
                                 b"Content-Length: 0\r\nConnection: close\r\n"))
                    reloads.append(status)

            name = f"qualify POST /v1/score + {args.reloads} reloads"
            reqs = next(r for n, _, r in targets if n == "qualify POST /v1/score")
            run, _ = await asyncio.gather(
                load(name, qport, reqs, concurrency=args.concurrency,
                     seconds=args.reload_seconds, track_sha=True),
                reloader())
            print(run.line())
            ok = sum(1 for s in reloads if s == 200)
            final = versions[args.reloads % 2]
            final_sha = hashlib.sha256(final.encode()).hexdigest()[:12]
            await asyncio.sleep(1.5)  # the sibling worker follows within a poll
            tail = await load("after", qport, reqs, concurrency=4, total=200, track_sha=True)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            print(f"reload run: {run.seconds:.1f} s, {ok}/{len(reloads)} reloads answered "
                  f"200, {run.done} requests, {run.failed} failed "
                  f"(statuses {dict(sorted(run.statuses.items()))}); verdicts by rule base "
                  f"{ {shas.index(k) + 1 if k in shas else k: v for k, v in run.shas.items()} }"
                  f"; after the run every worker serves version "
                  f"{versions.index(final) + 1}: {set(tail.shas) == {final_sha}}")
            if run.failed or tail.failed:
                return 1
        return 0
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000,
                        help="requests per endpoint (default 20,000)")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--leads", type=int, default=2_000,
                        help="distinct lead bodies, cycled (the memos learn repeated "
                        "leads: give more than the requests sent for all-new leads)")
    parser.add_argument("--reload-seconds", type=float, default=30.0,
                        help="length of the reload run (0: skip it)")
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2,
                        help="throughput rounds, endpoints interleaved (default 2)")
    parser.add_argument("--batch", type=int, default=0, metavar="N",
                        help="also POST /v1/score/batch with N leads a request (default: no)")
    parser.add_argument("--decision-log", action="store_true",
                        help="serve with --decision-log (a file in the scratch directory)")
    parser.add_argument("--qualify-only", action="store_true",
                        help="leave the trivial FastAPI app out")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the plain asyncio loop is slower but fine
        pass
    return asyncio.run(main(args))


if __name__ == "__main__":
    raise SystemExit(cli())
