"""A real, throwaway PostgreSQL server for the tests.

How it works
------------
`PostgresServer` makes a cluster of its own in a fresh temp directory with the server binaries
of the machine (`find_bin`: the newest ``/usr/lib/postgresql/<N>/bin``, where Debian's
``postgresql`` package puts them, else ``initdb`` on PATH):

* ``initdb -A trust -U postgres --no-sync -E UTF8``: no passwords, superuser ``postgres``;
* ``pg_ctl start`` with the server listening on 127.0.0.1 only, at a free port, with its unix
  socket in the temp directory (so it never meets a system cluster on 5432 or its socket in
  /var/run/postgresql), and with ``fsync``, ``synchronous_commit`` and ``full_page_writes``
  off: nothing here needs to survive a crash, and it makes every write much faster;
* ``pg_isready`` until it accepts connections; ``createdb`` for each database asked for;
* on close, ``pg_ctl stop -m immediate`` and the directory is removed.

The system cluster that a Debian install may create is never used, and need not run.
``tests/install-postgres.sh`` installs the binaries (Debian's package, needs root and apt).

Why the ``postgres`` user
-------------------------
PostgreSQL refuses to run as root (``initdb``, ``pg_ctl`` and ``postgres`` all stop with
"cannot be run as root"), and the tests here run as root. So as root the temp directory is
handed to the ``postgres`` OS user that the Debian package creates, and the server binaries run
as that user (``subprocess``'s ``user=``/``group=``, which sets the ids in the child, like
``runuser -u postgres --``). Without such a user the fixture skips. As any other user, everything
runs as that user. The clients (``pg_isready``, ``createdb``, ``psql``) connect over TCP as the
database user ``postgres`` with trust authentication, so they run as whoever runs the tests.

Fixtures
--------
``postgres_server`` (session): the running `PostgresServer`, or a skip with the reason.
``postgres_url`` (function): a fresh database per test, as a SQLAlchemy URL for psycopg 3,
``postgresql+psycopg://postgres@127.0.0.1:PORT/NAME``; dropped after the test.

Only the standard library and pytest are used here.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

__all__ = [
    "PostgresError",
    "PostgresServer",
    "PostgresUnavailable",
    "find_bin",
    "postgres_server",
    "postgres_url",
]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
OS_USER = "postgres"  # the user Debian's package creates; the server runs as it under root
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_TOOLS = ("initdb", "pg_ctl")
CLIENT_TOOLS = ("pg_isready", "createdb", "dropdb", "psql")

# Seconds. Generous: CI machines have 2 cores and may be busy.
INITDB_TIMEOUT = 120.0
START_TIMEOUT = 60
READY_TIMEOUT = 30.0
CLIENT_TIMEOUT = 30.0
STOP_TIMEOUT = 30
START_ATTEMPTS = 5  # a free port can be taken between choosing it and binding it
LOG_TAIL_LINES = 30
MAX_BASE_LEN = 60  # unix socket paths are limited to ~107 bytes, so keep the temp dir short

SKIP_NO_BINARIES = (
    "PostgreSQL server binaries not found: run tests/install-postgres.sh (needs root and apt)"
)
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PORT_IN_USE = ("could not bind", "Address already in use", "could not create any TCP/IP sockets")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run on this machine; the fixtures skip with this message."""


class PostgresError(RuntimeError):
    """A step of starting, using or stopping the server failed; the message has the log tail."""


def _version_key(path: Path) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return None


def _has_server_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in SERVER_TOOLS)


def find_bin() -> Path | None:
    """The directory of the server binaries (initdb and pg_ctl), or None if there is none.

    The newest ``/usr/lib/postgresql/<N>/bin`` (Debian's layout) wins; else the directory
    of ``initdb`` on PATH (symlinks followed, so /usr/local/bin links find the real dir).
    """
    versions: list[tuple[tuple[int, ...], Path]] = []
    if DEBIAN_ROOT.is_dir():
        for child in DEBIAN_ROOT.iterdir():
            key = _version_key(child)
            if key is not None and _has_server_tools(child / "bin"):
                versions.append((key, child / "bin"))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    if initdb is None:
        return None
    for candidate in (Path(initdb).resolve().parent, Path(initdb).parent):
        if _has_server_tools(candidate):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _base_parent(as_root: bool) -> str:
    """Where to make the temp dir: the usual temp dir, unless the server user can't reach it
    or the socket path would be too long, then /tmp."""
    base = Path(tempfile.gettempdir())
    if len(str(base)) > MAX_BASE_LEN or (as_root and not _traversable_by_others(base)):
        return "/tmp"
    return str(base)


def _clean_env(home: Path) -> dict[str, str]:
    """The environment without PG* variables (PGHOST, PGOPTIONS, ... would redirect the tools)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # English messages, which the port-in-use retry looks for
    env["HOME"] = str(home)
    return env


def _log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _shutdown(pg_ctl: list[str], data: Path, base: Path, run_kwargs: dict[str, Any]) -> None:
    """Stop the server (immediate mode) and remove its directory; kill it if pg_ctl can't.

    A plain function, not a method, so that weakref.finalize can run it at exit too.
    """
    failure = ""
    try:
        if (data / "postmaster.pid").exists():
            stop = ["stop", "-D", str(data), "-m", "immediate", "-w", "-t", str(STOP_TIMEOUT)]
            result = subprocess.run(
                [*pg_ctl, *stop],
                check=False,
                timeout=STOP_TIMEOUT + 10,
                **run_kwargs,
            )
            if result.returncode != 0:
                failure = f"pg_ctl stop exited {result.returncode}: {result.stdout.strip()}"
    except subprocess.TimeoutExpired:
        failure = f"pg_ctl stop took over {STOP_TIMEOUT + 10} s"
    finally:
        if failure:
            _kill_postmaster(data)
            failure += "\n--- server log tail ---\n" + _log_tail(base / "server.log")
        shutil.rmtree(base, ignore_errors=True)
    if failure:
        raise PostgresError(f"stopping PostgreSQL failed (server killed): {failure}")


def _kill_postmaster(data: Path) -> None:
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp directory, on 127.0.0.1 at a free port.

    Use as a context manager (``with PostgresServer() as server:``), or call `start` and
    `close`. Construction raises `PostgresUnavailable` when there are no binaries, or when
    running as root without a ``postgres`` OS user to run the server as.
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir if bin_dir is not None else find_bin()
        if found is None or not _has_server_tools(found):
            raise PostgresUnavailable(SKIP_NO_BINARIES)
        self.bin_dir: Path = found
        self.as_root = os.geteuid() == 0
        self._user: pwd.struct_passwd | None = None
        if self.as_root:
            try:
                self._user = pwd.getpwnam(OS_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL "
                    "as (it refuses to run as root): run tests/install-postgres.sh, "
                    "whose package creates that user"
                ) from None
        self._tools = {tool: self._tool(tool) for tool in (*SERVER_TOOLS, *CLIENT_TOOLS)}
        self.host = HOST
        self.port = 0
        self.base: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _tool(self, name: str) -> str:
        path = self.bin_dir / name
        if os.access(path, os.X_OK):
            return str(path)
        on_path = shutil.which(name)
        if on_path is None:
            raise PostgresUnavailable(f"PostgreSQL tool {name!r} not found in {self.bin_dir}")
        return on_path

    # -- paths -----------------------------------------------------------------------------

    def _base(self) -> Path:
        if self.base is None:
            raise PostgresError("the server is not started")
        return self.base

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self._base()

    # -- running things --------------------------------------------------------------------

    def _run_kwargs(self, *, as_server: bool) -> dict[str, Any]:
        base = self._base()
        kwargs: dict[str, Any] = {
            "cwd": base,  # the postgres user must be able to enter the working directory
            "env": _clean_env(base),
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
            "errors": "replace",
        }
        if as_server and self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return kwargs

    def _run(
        self, args: Sequence[str], *, what: str, timeout: float, as_server: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run one binary with a timeout; raise PostgresError with the log tail on failure."""
        try:
            kwargs = self._run_kwargs(as_server=as_server)
            result = subprocess.run(list(args), check=False, timeout=timeout, **kwargs)
        except subprocess.TimeoutExpired as exc:
            raise self._error(what, f"timed out after {timeout} s", args, exc.output) from None
        if result.returncode != 0:
            raise self._error(what, f"exited {result.returncode}", args, result.stdout)
        return result

    def _error(self, what: str, how: str, args: Sequence[str], output: object) -> PostgresError:
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        text = str(output or "").strip() or "(no output)"
        log = _log_tail(self.log_path) if self.base is not None else "(no server log)"
        return PostgresError(
            f"{what} {how}: {shlex.join(args)}\n--- output ---\n{text}\n"
            f"--- server log tail ({self.log_path if self.base else '-'}) ---\n{log}"
        )

    def client_args(self, dbname: str) -> list[str]:
        """Connection options for the client tools (psql, createdb, ...)."""
        return ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", dbname]

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """initdb, start, and wait until the server accepts connections."""
        if self.base is not None:
            raise PostgresError("the server is already started")
        self.base = Path(tempfile.mkdtemp(prefix="qualify-pg-", dir=_base_parent(self.as_root)))
        self._finalizer = weakref.finalize(
            self,
            _shutdown,
            [self._tools["pg_ctl"]],
            self.data_dir,
            self.base,
            self._run_kwargs(as_server=True),
        )
        try:
            if self._user is not None:
                os.chown(self.base, self._user.pw_uid, self._user.pw_gid)
            self._initdb()
            self._start_server()
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _initdb(self) -> None:
        locale = "C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "C"
        self._run(
            [
                self._tools["initdb"],
                "-D", str(self.data_dir),
                "-A", "trust",
                "-U", SUPERUSER,
                "--no-sync",
                "-E", "UTF8",
                f"--locale={locale}",
                "--no-instructions",
            ],
            what="initdb",
            timeout=INITDB_TIMEOUT,
            as_server=True,
        )  # fmt: skip

    def _start_server(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = _free_port()
            options = [
                "-c", f"listen_addresses={self.host}",
                "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.socket_dir}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ]  # fmt: skip
            try:
                self._run(
                    [
                        self._tools["pg_ctl"], "start",
                        "-D", str(self.data_dir),
                        "-l", str(self.log_path),
                        "-w", "-t", str(START_TIMEOUT),
                        "-o", shlex.join(options),
                    ],
                    what="pg_ctl start",
                    timeout=START_TIMEOUT + 10,
                    as_server=True,
                )  # fmt: skip
                return
            except PostgresError as exc:
                if attempt == START_ATTEMPTS or not any(s in str(exc) for s in _PORT_IN_USE):
                    raise
                self.log_path.unlink(missing_ok=True)  # the next attempt's log starts clean

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        args = [self._tools["pg_isready"], *self.client_args("postgres"), "-t", "2"]
        while True:
            try:
                self._run(args, what="pg_isready", timeout=10)
                return
            except PostgresError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the server (immediate mode) and remove the temp directory. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- databases -------------------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of a database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database `name` (lower-case letters, digits, underscores); return its URL."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"bad database name {name!r}: use [a-z_][a-z0-9_]*, 63 at most")
        conn = ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-w"]
        self._run([self._tools["createdb"], *conn, name], what="createdb", timeout=CLIENT_TIMEOUT)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, ending any connections still open to it."""
        conn = ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-w"]
        self._run(
            [self._tools["dropdb"], *conn, "--if-exists", "--force", name],
            what="dropdb",
            timeout=CLIENT_TIMEOUT,
        )

    def psql(self, dbname: str, sql: str) -> str:
        """Run `sql` with psql in `dbname`; return its unaligned, tuples-only output."""
        args = [self._tools["psql"], *self.client_args(dbname), "-X", "-w", "-A", "-t"]
        args += ["-v", "ON_ERROR_STOP=1", "-c", sql]
        return self._run(args, what="psql", timeout=CLIENT_TIMEOUT).stdout.strip()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session; skips when it can't run on this machine."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test, as a postgresql+psycopg:// URL; dropped after."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
