"""``qualify serve``: check the rule base, then run the service under uvicorn.

Options become ``QUALIFY_*`` environment variables, so every worker process reads the same
settings. With several workers, a scratch directory holds the Prometheus multi-process
files and the reload channel, and is removed at exit.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from qualify import RulebaseError
from qualify.exits import CannotStart, Exit
from service.channel import ReloadChannel
from service.lifetime import SERVE_PID
from service.logs import uvicorn_log_config
from service.security import is_loopback
from service.settings import Settings
from service.state import Sources, build_snapshot
from service.store import Store, default_url, describe
from service.transport import raise_file_limit, uvicorn_options

log = logging.getLogger("qualify.cli")

APP = "service.main:worker_app"


@contextlib.contextmanager
def _worker_scratch(sources: Sources) -> Iterator[None]:
    """Files the workers and the outbox process share: metrics and the reload channel (a
    fresh one unless QUALIFY_RELOAD_CHANNEL names one), which holds ``sources`` before any
    worker starts: they all start from the very bytes checked."""
    scratch = Path(tempfile.mkdtemp(prefix="qualify-serve-"))
    try:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            (scratch / "metrics").mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(scratch / "metrics")
        if not os.environ.get("QUALIFY_RELOAD_CHANNEL"):
            os.environ["QUALIFY_RELOAD_CHANNEL"] = str(scratch / "reload.json")
        ReloadChannel(Path(os.environ["QUALIFY_RELOAD_CHANNEL"])).announce(
            sources.activation())
        yield
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _settings(**options: object) -> Settings:
    """Options as QUALIFY_* variables (every worker process reads the same), then the
    settings; a bad one is a one-line error naming the variable."""
    for name, value in options.items():
        if value is not None:
            os.environ[f"QUALIFY_{name}"] = str(value)
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"QUALIFY_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}"
                             for err in e.errors())
        raise CannotStart(f"bad settings: {problems}") from None


def _migrate(settings: Settings) -> None:
    """Bring the store's schema up to date once, before workers start."""
    url = settings.database_url or default_url()
    store = Store(url)
    try:
        store.migrate()
    except SQLAlchemyError as e:
        raise CannotStart(f"the database {describe(url)} cannot be used: "
                                   f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        store.close()


@contextlib.contextmanager
def _outbox_process() -> Iterator[None]:
    """``qualify outbox`` beside the workers, started again if it dies; the workers then do
    no CRM work (a thread of theirs would take the GIL from requests: webhook p99 was
    0.4-0.5 s at 550 webhooks/s with the outbox in the workers)."""
    os.environ["QUALIFY_OUTBOX_IN_APP"] = "false"
    argv = [sys.executable, "-c", "import sys; from qualify.cli import main; "
            "sys.exit(main())", "outbox"]
    stopping = threading.Event()
    lock = threading.Lock()  # no child is started once stopping is set
    current: list[subprocess.Popen[bytes]] = []

    def supervise() -> None:
        while True:
            with lock:
                if stopping.is_set():
                    return
                child = subprocess.Popen(argv)  # it dies with serve (service.lifetime)
                current[:] = [child]
            code = child.wait()
            if not stopping.is_set():
                log.error("the outbox process exited with %s; starting it again", code)
                stopping.wait(1.0)

    thread = threading.Thread(target=supervise, name="qualify-outbox-supervisor",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        with lock:
            stopping.set()
        for child in current:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
        thread.join(5)


RULES_OPTION = click.option(
    "--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The rule base (default: QUALIFY_RULES, else the bundled rules/default.yaml).")
MAPPINGS_OPTION = click.option(
    "--mappings", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Webhook mapping profiles (default: mappings/ beside the rule base).")


@click.command()
@RULES_OPTION
@MAPPINGS_OPTION
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Without API keys, scoring answers only clients on "
              "this machine.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (the engine is CPU-bound: about one per core).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Default: QUALIFY_LOG_LEVEL, else info.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default=None,
              help="Default: QUALIFY_LOG_FORMAT, else json.")
@click.option("--decision-log", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Append each input and verdict to this JSON-lines file.")
@click.option("--forwarded-allow-ips", default=None, metavar="IPS",
              help="Proxies trusted for X-Forwarded-For/-Proto (uvicorn's option).")
@click.option("--max-connections", type=click.IntRange(1), default=None,
              help="Connections a worker serves at once; a request beyond them gets 503 "
              "(default: QUALIFY_MAX_CONNECTIONS, else 10000; lowered to fit the open-file "
              "limit).")
@click.option("--header-timeout", type=click.FloatRange(0, min_open=True), default=None,
              metavar="SECONDS", help="Time for a request's line and headers; then 408 and "
              "the connection is closed (default: QUALIFY_HEADER_TIMEOUT, else 10).")
@click.option("--body-timeout", type=click.FloatRange(0, min_open=True), default=None,
              metavar="SECONDS", help="Time for a request's body; then 408 (default: "
              "QUALIFY_BODY_TIMEOUT, else 30).")
@click.option("--keep-alive-timeout", type=click.IntRange(1), default=None,
              metavar="SECONDS", help="An idle kept-alive connection is closed after this; "
              "keep it above a proxy's idle timeout (default: QUALIFY_KEEP_ALIVE_TIMEOUT, "
              "else 5).")
@click.option("--max-header-bytes", type=click.IntRange(1024), default=None,
              help="Request line and headers at most; more gets 431 (default: "
              "QUALIFY_MAX_HEADER_BYTES, else 16384).")
def serve(*, rules_path: Path | None, mappings: Path | None, host: str, port: int,
          workers: int, log_level: str | None, log_format: str | None,
          decision_log: Path | None, forwarded_allow_ips: str | None,
          max_connections: int | None, header_timeout: float | None,
          body_timeout: float | None, keep_alive_timeout: int | None,
          max_header_bytes: int | None) -> None:
    """Serve the HTTP API: scoring, CRM webhooks, rule base reload, health and metrics.

    Keys and secrets come from the environment: QUALIFY_API_KEYS, QUALIFY_ADMIN_KEY,
    QUALIFY_HUBSPOT_SECRETS, QUALIFY_PIPEDRIVE_CREDENTIALS, QUALIFY_GENERIC_SECRETS,
    QUALIFY_SALESFORCE_ORG_IDS, QUALIFY_ZOHO_TOKENS, QUALIFY_DYNAMICS_TOKENS; the CRM
    write-back credentials QUALIFY_HUBSPOT_TOKEN, QUALIFY_PIPEDRIVE_API_TOKEN (with
    QUALIFY_PIPEDRIVE_API_URL), QUALIFY_SALESFORCE_CLIENT_ID and _SECRET; the store
    QUALIFY_DATABASE_URL (default: a SQLite file). `qualify outbox` runs beside it.
    """
    settings = _settings(RULES=rules_path and rules_path.resolve(),
                         MAPPINGS=mappings and mappings.resolve(), LOG_LEVEL=log_level,
                         LOG_FORMAT=log_format,
                         DECISION_LOG=decision_log and decision_log.resolve(),
                         MAX_CONNECTIONS=max_connections, HEADER_TIMEOUT=header_timeout,
                         BODY_TIMEOUT=body_timeout, KEEP_ALIVE_TIMEOUT=keep_alive_timeout,
                         MAX_HEADER_BYTES=max_header_bytes)
    logging.config.dictConfig(uvicorn_log_config(settings))

    try:  # check (and test) before forking workers: every problem, with its location
        snapshot = build_snapshot(settings.rules, settings.mappings_dir)
    except RulebaseError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(Exit.CANNOT_START) from None
    snapshot.engine.close()
    _migrate(settings)
    connections = _connections(settings)

    if settings.open_access and not is_loopback(host):
        log.warning("no API keys configured (QUALIFY_API_KEYS): on %s, scoring and admin "
                    "endpoints answer only clients on this machine (403 for the others)",
                    host)

    os.environ[SERVE_PID] = str(os.getpid())  # its workers and outbox die with it
    with _worker_scratch(snapshot.sources), _outbox_process():
        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers,
                    log_config=uvicorn_log_config(settings), access_log=False,
                    server_header=False, forwarded_allow_ips=forwarded_allow_ips,
                    timeout_graceful_shutdown=15, **connections)


def _connections(settings: Settings) -> dict[str, Any]:
    """uvicorn's connection settings, the open-file limit raised first (workers inherit
    it), and both logged."""
    files = raise_file_limit()
    options = uvicorn_options(settings, files)
    limit = options["limit_concurrency"]
    if limit < settings.max_connections:
        log.warning("at most %d connections per worker, not %d (QUALIFY_MAX_CONNECTIONS): "
                    "the open-file limit is %d; raise it (ulimit -n, systemd LimitNOFILE=)",
                    limit, settings.max_connections, files)
    log.info("connections: at most %d per worker (open-file limit %d); request headers "
             "within %g s and %d bytes, bodies within %g s; idle connections closed after "
             "%d s", limit, files, settings.header_timeout, settings.max_header_bytes,
             settings.body_timeout, settings.keep_alive_timeout)
    return options


@click.command()
@RULES_OPTION
@MAPPINGS_OPTION
def outbox(*, rules_path: Path | None, mappings: Path | None) -> None:
    """Run the write-back outbox: fetch, score and write back the CRM records that webhooks
    queued. `qualify serve` starts one; run it alone to scale it apart from the service.
    Settings as for serve: QUALIFY_DATABASE_URL, QUALIFY_HUBSPOT_TOKEN, ..."""
    from service.outbox import run_process

    settings = _settings(RULES=rules_path and rules_path.resolve(),
                         MAPPINGS=mappings and mappings.resolve())
    try:
        run_process(settings)
    except RulebaseError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(Exit.CANNOT_START) from None
