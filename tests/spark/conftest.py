"""A real standalone Spark cluster on 127.0.0.1 for the session: one master and one worker,
started from pyspark's own ``bin/spark-class``, and a driver (SparkSession) connected to it.

Ports are picked free, web UIs are on free ports too (the master's JSON tells when the
worker has registered), logs go to a temporary folder, and everything is killed by process
group at the end. Without ``java`` the tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from qualify.spark import SparkError, check_java
from tests.service.helpers import free_port

WORKER_CORES = 2
READY_SECONDS = 90
# small jobs on a cold JVM: the quick compiler only (C1) halves the time of these tests
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@dataclass
class Cluster:
    """The running cluster: its master URL, log folder and processes."""

    url: str
    ui: str
    logs: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``spark-class ARGS`` in a session of its own, its output in ``logs/NAME.log``."""
        spark_home = Path(__import__("pyspark").__file__).parent
        with (self.logs / f"{name}.log").open("ab") as out:
            p = subprocess.Popen([str(spark_home / "bin" / "spark-class"), *args],
                                 stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                 start_new_session=True, cwd=self.logs)
        self.processes.append(p)
        return p

    def log(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("*.log")))

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = httpx.get(f"{self.ui}/json/", timeout=2).json()
        return state

    def wait_workers(self, n: int, timeout: float = READY_SECONDS) -> None:
        """Until ``n`` workers are alive; fails with the logs if the master or a worker
        exits, or if they are slow."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                pytest.fail(f"a Spark process exited ({dead[0].args}):\n{self.log()}")
            with contextlib.suppress(httpx.TransportError, ValueError):
                if self.state().get("aliveworkers", 0) >= n:
                    return
            time.sleep(0.5)
        pytest.fail(f"the Spark cluster was not ready in {timeout:.0f} s:\n{self.log()}")

    def worker(self, name: str, cores: int = WORKER_CORES) -> subprocess.Popen[bytes]:
        return self.start(name, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                          "--port", str(free_port()), "--webui-port", str(free_port()),
                          "--cores", str(cores), "--memory", "3g",
                          "--work-dir", str(self.logs / f"{name}-work"), self.url)

    def stop(self) -> None:
        for p in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # our own children's sessions
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A master and one worker (2 cores) on 127.0.0.1."""
    try:
        check_java()
    except SparkError as e:
        pytest.skip(str(e))
    logs = tmp_path_factory.mktemp("spark")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(logs),
           "SPARK_WORKER_DIR": str(logs / "work"), "PYSPARK_PYTHON": sys.executable,
           "SPARK_NO_DAEMONIZE": "1", "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM}
    port, ui = free_port(), free_port()
    c = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", logs, env)
    try:
        c.start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                "--port", str(port), "--webui-port", str(ui))
        c.worker("worker-1")
        c.wait_workers(1)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def spark(cluster: Cluster) -> Iterator[Any]:
    """The driver: a SparkSession on the cluster, one executor per core (so one can be
    killed while the other goes on), small file splits (so small inputs have several
    partitions)."""
    from pyspark.sql import SparkSession

    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}
    os.environ.update(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    session = (SparkSession.builder.master(cluster.url).appName("qualify tests")
               .config("spark.executor.cores", "1").config("spark.executor.memory", "1g")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.log.level", "ERROR")
               .config("spark.sql.files.maxPartitionBytes", "64k")
               .config("spark.sql.files.openCostInBytes", "0")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.extraJavaOptions", QUICK_JVM)
               .config("spark.executor.extraJavaOptions", QUICK_JVM)
               .config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    try:
        yield session
    finally:
        session.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
