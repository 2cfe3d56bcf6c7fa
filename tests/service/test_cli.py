"""``qualify serve``: checks before starting, loopback without keys, worker scratch files.

uvicorn.run is replaced by a recorder; the real server is started in test_e2e.py.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import service.main as service_main
from qualify.cli import main
from service.security import is_loopback
from service.settings import Settings
from service.transport import FILES_RESERVED, HttpProtocol, connection_limit
from tests.service.helpers import position


@pytest.fixture(autouse=True)
def _restore_env_and_logging() -> Iterator[None]:
    """serve writes QUALIFY_* variables for its workers and configures logging: undo both."""
    saved = dict(os.environ)
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access",
                                              "qualify.cli")]
    state = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    os.environ.clear()
    os.environ.update(saved)
    for lg, handlers, level, propagate in state:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each uvicorn.run call's arguments, and the environment its workers would see."""
    calls: list[dict[str, Any]] = []

    def run(app: str, **kwargs: Any) -> None:
        metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        calls.append({"app": app, **kwargs, "env": dict(os.environ),
                      "metrics_dir_exists": bool(metrics) and Path(str(metrics)).is_dir()})

    monkeypatch.setattr("service.cli.uvicorn.run", run)
    return calls


def test_help_lists_the_options() -> None:
    """serve --help documents its options and the key variables."""
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--rules", "--host", "--port", "--workers", "--decision-log",
                   "QUALIFY_API_KEYS"):
        assert option in result.output


def test_starts_the_factory_on_loopback(runs: list[dict[str, Any]]) -> None:
    """By default: the app factory on 127.0.0.1:8000, one worker, our log format."""
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 0, result.output
    [call] = runs
    assert (call["app"], call["factory"], call["host"], call["port"], call["workers"]) == (
        "service.main:worker_app", True, "127.0.0.1", 8000, 1)
    assert call["access_log"] is False
    assert "service.logs.JsonFormatter" in str(call["log_config"])


def test_no_keys_binds_the_host_and_says_who_is_answered(runs: list[dict[str, Any]]) -> None:
    """Asked to bind 0.0.0.0 without API keys, serve binds it (the app itself answers only
    clients on this machine: test_open_access.py) and says so."""
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert runs[0]["host"] == "0.0.0.0"
    warning = json.loads(result.stderr.strip().splitlines()[-1])
    assert (warning["level"], warning["logger"]) == ("warning", "qualify.cli")
    assert "answer only clients on this machine" in warning["message"]


def test_with_keys_any_host(runs: list[dict[str, Any]]) -> None:
    """With API keys configured the requested host is used."""
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "9000"],
                                env={"QUALIFY_API_KEYS": "k"})
    assert result.exit_code == 0, result.output
    assert (runs[0]["host"], runs[0]["port"]) == ("0.0.0.0", 9000)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.0.1", True),
                                                ("::1", True), ("localhost", True),
                                                ("::ffff:127.0.0.1", True),
                                                ("0.0.0.0", False), ("::", False),
                                                ("10.0.0.5", False), ("example.com", False),
                                                ("::ffff:10.0.0.5", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    """Loopback means 127.0.0.0/8, ::1 (IPv4-mapped too) and localhost."""
    assert is_loopback(host) is loopback


def test_options_reach_the_workers(runs: list[dict[str, Any]], rules_dir: Path) -> None:
    """Options become QUALIFY_* variables (absolute paths) that every worker reads."""
    decisions = rules_dir / "decisions.jsonl"
    result = CliRunner().invoke(main, [
        "serve", "--rules", str(rules_dir / "rules.yaml"), "--log-format", "text",
        "--log-level", "warning", "--decision-log", str(decisions)])
    assert result.exit_code == 0, result.output
    env = runs[0]["env"]
    assert env["QUALIFY_RULES"] == str((rules_dir / "rules.yaml").resolve())
    assert env["QUALIFY_DECISION_LOG"] == str(decisions.resolve())
    assert (env["QUALIFY_LOG_FORMAT"], env["QUALIFY_LOG_LEVEL"]) == ("text", "warning")


def test_several_workers_share_scratch_files(runs: list[dict[str, Any]]) -> None:
    """With workers > 1: Prometheus multi-process files and a reload channel, removed at
    exit."""
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    env = runs[0]["env"]
    assert runs[0]["workers"] == 2
    assert runs[0]["metrics_dir_exists"]
    channel = Path(env["QUALIFY_RELOAD_CHANNEL"])
    assert channel.parent == Path(env["PROMETHEUS_MULTIPROC_DIR"]).parent
    assert not channel.parent.exists()


def test_bad_rule_base_stops_before_starting(runs: list[dict[str, Any]],
                                             rules_dir: Path) -> None:
    """Every problem is printed with its location; exit 2; uvicorn never starts."""
    path = rules_dir / "rules.yaml"
    text = path.read_text(encoding="utf-8").replace("when: needs_product or",
                                                    "when: needs_prodct or")
    path.write_text(text, encoding="utf-8")
    line, column = position(text, "needs_prodct")
    result = CliRunner().invoke(main, ["serve", "--rules", str(path)])
    assert result.exit_code == 2
    assert f"{path}:{line}:{column}: unknown-field: unknown field 'needs_prodct'" \
        in result.output
    assert runs == []


def test_bad_mapping_stops_before_starting(runs: list[dict[str, Any]],
                                           rules_dir: Path) -> None:
    """A mapping profile naming an unknown field also stops start-up."""
    (rules_dir / "mappings" / "generic.yaml").write_text(
        "name: generic\nfields:\n  lead_idd: {from: id}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--rules", str(rules_dir / "rules.yaml")])
    assert result.exit_code == 2
    assert "generic.yaml:3:3: unknown-field" in result.output
    assert runs == []


def test_bad_setting_is_named(runs: list[dict[str, Any]]) -> None:
    """A malformed environment variable is reported by name; exit 2 (nothing started)."""
    result = CliRunner().invoke(main, ["serve"], env={"QUALIFY_MAX_BATCH": "many"})
    assert result.exit_code == 2
    assert "QUALIFY_MAX_BATCH" in result.output
    assert runs == []


def test_worker_app_tunes_the_collector_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker freezes its imported modules out of the cycle collector's sight before
    it builds the app (qualify/tuning.py)."""
    calls: list[str] = []
    monkeypatch.setattr(service_main, "tune_gc", lambda: calls.append("tune_gc"))
    real = service_main.create_app
    monkeypatch.setattr(service_main, "create_app",
                        lambda: calls.append("create_app") or real())
    app = service_main.worker_app()
    assert calls == ["tune_gc", "create_app"]
    assert app.state.service.registry.loaded


class TestOutboxProcess:
    def test_two_quick_sigterms_stop_it(self, tmp_path: Path) -> None:
        """`qualify outbox` stops on SIGTERM even when a second one arrives at once (as when
        its parent dies and also terminates it): a handler that took a lock deadlocked."""
        import signal
        import subprocess
        import sys
        import time

        env = {k: v for k, v in os.environ.items() if not k.startswith("QUALIFY_")}
        env["QUALIFY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'q.db'}"
        log = tmp_path / "outbox.log"
        with log.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-c", "import sys; from qualify.cli import main; "
                 "sys.exit(main())", "outbox"], stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                deadline = time.monotonic() + 30
                while b"outbox running" not in log.read_bytes():
                    assert time.monotonic() < deadline, log.read_text()
                    assert child.poll() is None, log.read_text()
                    time.sleep(0.05)
                for _ in range(3):
                    child.send_signal(signal.SIGTERM)
                assert child.wait(timeout=15) == 0
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        assert b"outbox stopped" in log.read_bytes()

    def test_serve_leaves_no_outbox_behind(self, runs: list[dict[str, Any]],
                                           tmp_path: Path) -> None:
        """When serve returns (uvicorn.run is recorded here, so at once), its outbox process
        is gone too, however early."""
        import time

        before = _outbox_processes()
        result = CliRunner().invoke(main, ["serve"], env={
            "QUALIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'q.db'}"})
        assert result.exit_code == 0, result.output
        deadline = time.monotonic() + 10
        while _outbox_processes() - before:
            assert time.monotonic() < deadline, "an outbox process outlived serve"
            time.sleep(0.1)


def _outbox_processes() -> set[int]:
    out = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"outbox" in argv and any(b"qualify.cli" in a for a in argv):
            out.add(int(cmdline.parent.name))
    return out


class TestBlankKeys:
    @pytest.mark.parametrize("value", ['[""]', '["  "]', '["key", ""]'])
    def test_an_empty_api_key_is_a_settings_error(self, runs: list[dict[str, Any]],
                                                  value: str) -> None:
        """QUALIFY_API_KEYS='[""]' once served all interfaces with scoring open (the CLI
        saw a key, the key ring none): now serve refuses to start, naming the variable."""
        result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"],
                                    env={"QUALIFY_API_KEYS": value})
        assert result.exit_code != 0
        assert "QUALIFY_API_KEYS" in result.output
        assert "empty" in result.output
        assert runs == []


def test_connection_settings_reach_uvicorn(runs: list[dict[str, Any]]) -> None:
    """The connection options become uvicorn's settings (the protocol with header limits,
    the keep-alive timeout, the connection limit) and QUALIFY_* variables for the workers,
    and one line says what they are."""
    result = CliRunner().invoke(main, [
        "serve", "--max-connections", "50", "--keep-alive-timeout", "7",
        "--header-timeout", "3", "--body-timeout", "4", "--max-header-bytes", "8192"])
    assert result.exit_code == 0, result.output
    [call] = runs
    assert (call["http"], call["timeout_keep_alive"], call["limit_concurrency"]) == (
        HttpProtocol, 7, 50)
    assert {k: call["env"][f"QUALIFY_{k}"] for k in (
        "HEADER_TIMEOUT", "BODY_TIMEOUT", "MAX_HEADER_BYTES")} == {
        "HEADER_TIMEOUT": "3.0", "BODY_TIMEOUT": "4.0", "MAX_HEADER_BYTES": "8192"}
    line = next(json.loads(x) for x in result.stderr.splitlines() if "connections:" in x)
    assert line["message"].startswith("connections: at most 50 per worker (open-file limit ")
    assert "headers within 3 s and 8192 bytes, bodies within 4 s" in line["message"]


def test_the_connection_limit_leaves_files_for_the_rest() -> None:
    """The connection limit stays below the open-file limit, so that requests beyond it
    are answered 503 before accept() runs out of files and resets them unseen."""
    settings = Settings()
    assert connection_limit(settings, 1 << 20) == settings.max_connections
    assert connection_limit(settings, 1024) == 1024 - FILES_RESERVED
    assert connection_limit(settings, 10) == 1
