"""The READMEs' console blocks run as written: executable documentation.

Each ```console block of README.md and examples/xeducation/{README,ANALYZE}.md is a terminal session
and a test. A line starting with `$ ` is a command (a line ending in `\\` continues it on the
next); the lines after it, up to the next `$ `, are what it prints, stdout and stderr
together as a terminal shows them. The commands run in order with bash from the repository
root, `.venv/bin` first on PATH, with `$?` the status of the command before.

Output is compared line by line, exactly, with two wildcards:

- a line that is just `...` (indented or not) stands for any number of lines, none included;
- `...` inside a line stands for any text within that line (timings, a number of workers).

Trailing spaces and blank lines after a command's output (they separate commands) are
ignored.

Commands a test cannot run are listed in NOT_RUN, each with the reason. A block whose
commands read `../shared`, or that belongs to a document about its data (SHARED_DOCS), runs
only where that folder is beside the checkout and is skipped otherwise. `qualify serve`
starts in the background on a free port; the block's later commands are sent there instead
of 127.0.0.1:8000 (with curl: skipped where curl is not installed), and the server stops
with the block.

Blocks share the repository root, as a reader's terminal does (the `--compare` block reads
the scored.parquet that the block before it wrote). Files the commands create at the top of the
repository are removed at the end, and a command that changes a tracked file fails its block.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from qualify.synthetic import generate
from tests.conftest import ROOT, SHARED

DOCS = ("README.md", "examples/xeducation/README.md", "examples/xeducation/ANALYZE.md")
SHARED_DOCS = {"examples/xeducation/README.md", "examples/xeducation/ANALYZE.md"}  # ../shared
VENV_BIN = ROOT / ".venv" / "bin"
SERVE = "qualify serve"
SERVER = "127.0.0.1:8000"  # where the READMEs' curl commands find `qualify serve`
TIMEOUT = 120  # seconds, for one command
NOT_RUN = {  # a command starting with this is not run, for this reason
    "make ": "installs into .venv, then serves or runs the whole suite, this test included",
    ".venv/bin/python bench/": "a benchmark: its output is measurements of this machine",
}


@dataclass(frozen=True, slots=True)
class Command:
    doc: str
    line: int
    text: str  # as written, continuation lines included (bash joins them)
    expected: tuple[str, ...]

    def not_run(self) -> str | None:
        """Why the test does not run this command, or None."""
        return next((f"`{start}...`: {why}" for start, why in NOT_RUN.items()
                     if self.text.startswith(start)), None)


@dataclass(frozen=True, slots=True)
class Block:
    doc: str
    line: int
    commands: tuple[Command, ...]


def parse(doc: str) -> list[Block]:
    """The console blocks of ``doc`` (a path from the repository root), in order."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks, at = [], 0
    while at < len(lines):
        if lines[at] != "```console":
            at += 1
            continue
        end = lines.index("```", at + 1)
        blocks.append(Block(doc, at + 1, tuple(_commands(doc, at + 2, lines[at + 1:end]))))
        at = end + 1
    return blocks


def _commands(doc: str, first: int, body: Sequence[str]) -> Iterator[Command]:
    text, start, output = "", 0, list[str]()
    for number, line in enumerate(body, first):
        if text.endswith("\\") and not output:
            text += "\n" + line
        elif line.startswith("$ "):
            if text:
                yield Command(doc, start, text, _trimmed(output))
            text, start, output = line[2:], number, []
        elif not text:
            raise ValueError(f"{doc}:{number}: output before the block's first `$ ` command")
        else:
            output.append(line)
    if text:
        yield Command(doc, start, text, _trimmed(output))


def _trimmed(lines: Sequence[str]) -> tuple[str, ...]:
    out = [line.rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return tuple(out)


def matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether ``actual`` is ``expected``, reading `...` as the module docstring says."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if line.strip() == "..." else
                      "[^\n]*".join(map(re.escape, line.split("..."))) + "\n"
                      for line in expected)
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


BLOCKS = [block for doc in DOCS for block in parse(doc)]


def _git_status() -> set[str] | None:
    """``git status --porcelain`` lines, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.splitlines())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The commands' environment. Afterwards, the new untracked files at the top of the
    repository (where the commands write: scored.parquet, report.html, ...) are removed; files
    elsewhere are left alone, as a developer may be creating them meanwhile."""
    if not (VENV_BIN / "qualify").exists():
        pytest.skip("the READMEs' commands use .venv/bin/qualify: run `make install` first")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUALIFY_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1",
               XDG_STATE_HOME=str(tmp_path_factory.mktemp("state")))  # serve's SQLite store
    before = _git_status()
    yield env
    after = _git_status()
    if before is not None and after is not None:
        for entry in sorted(after - before):
            if entry.startswith("?? ") and "/" not in entry:
                (ROOT / entry[3:]).unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Server:
    """`qualify serve` in the background, its output in a file."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.port, self.log = _free_port(), log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(["bash", "-c", f"{command} --port {self.port}"],
                                         cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"`{command}` did not answer /healthz:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM, as a service manager sends; 2 s after it is gone, SIGKILL to what is left of
        its process group (its outbox ends with it, but takes its time)."""
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        deadline = time.monotonic() + 2
        with contextlib.suppress(ProcessLookupError):
            while time.monotonic() < deadline:
                os.killpg(self.proc.pid, 0)
                time.sleep(0.1)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _run(command: str, status: int, env: dict[str, str]) -> tuple[tuple[str, ...], int]:
    """What ``command`` prints and its exit status, run after a command that exited ``status``."""
    with subprocess.Popen(["bash", "-c", f"(exit {status}); {command}"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            out += f"\n[killed by the test after {TIMEOUT} s]\n".encode()
    return _trimmed(out.decode("utf-8", "replace").splitlines()), proc.returncode


def _failure(c: Command, text: str, actual: Sequence[str], status: int) -> str:
    def indent(lines: Sequence[str]) -> str:
        return "".join(f"    {line}\n" for line in lines) or "    (nothing)\n"
    return (f"{c.doc}:{c.line}: $ {text}\n  expected:\n{indent(c.expected)}"
            f"  actual (exit status {status}):\n{indent(actual)}")


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.doc}:{b.line}" for b in BLOCKS])
def test_console_block(block: Block, workspace: dict[str, str], tmp_path: Path) -> None:
    """Each command of the block prints what the block shows (see the module docstring)."""
    to_run = [c for c in block.commands if not c.not_run()]
    if not to_run:
        pytest.skip("; ".join(sorted({f"{c.not_run()}" for c in block.commands})))
    if not SHARED.is_dir() and (block.doc in SHARED_DOCS
                                or any("../shared" in c.text for c in to_run)):
        pytest.skip("reads ../shared (or what a block reading it wrote), which is not beside "
                    "the checkout")
    if any(c.text.startswith("curl ") for c in to_run) and not shutil.which("curl"):
        pytest.skip("curl is not installed")
    git_before, server, failures, status = _git_status(), None, [], 0
    try:
        for c in to_run:
            if SERVE in c.text:
                assert not c.expected, f"{c.doc}:{c.line}: `{SERVE}` output is not compared"
                server = _Server(c.text, workspace, tmp_path / "serve.log")
                continue
            text = c.text.replace(SERVER, f"127.0.0.1:{server.port}") if server else c.text
            actual, status = _run(text, status, workspace)
            if not matches(c.expected, actual):
                failures.append(_failure(c, text, actual, status))
    finally:
        if server:
            server.stop()
    if server and failures:
        failures.append(f"{SERVE} printed:\n{server.output()}")
    git_after = _git_status()
    if git_before is not None and git_after is not None:
        changed = sorted(e for e in git_after - git_before if not e.startswith("?? "))
        if changed:
            failures.append(f"the commands changed tracked files: {changed}")
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


class TestTheRunner:
    """The parser and the matcher that the block tests rely on."""

    def test_every_not_run_entry_is_used(self) -> None:
        """Each NOT_RUN entry names a command of the READMEs, so none outlives its reason."""
        texts = [c.text for b in BLOCKS for c in b.commands]
        for start in NOT_RUN:
            assert any(t.startswith(start) for t in texts), start

    def test_parse(self, tmp_path: Path) -> None:
        """Commands with continuations, their output, blank lines between them."""
        doc = tmp_path / "doc.md"
        doc.write_text("text\n```console\n$ echo a \\\n    b\na b\n\n$ true\n```\n"
                       "```python\n$ not a command\n```\n", encoding="utf-8")
        [block] = parse(str(doc))  # an absolute path wins over ROOT
        assert block.line == 2
        assert block.commands == (
            Command(str(doc), 3, "echo a \\\n    b", ("a b",)),
            Command(str(doc), 7, "true", ()))

    @pytest.mark.parametrize(("expected", "actual", "result"), [
        (["a", "b"], ["a", "b"], True),
        (["a", "b"], ["a", "b", "c"], False),
        (["a", "...", "d"], ["a", "b", "c", "d"], True),
        (["a", "...", "b"], ["a", "b"], True),
        (["a", "..."], ["a"], True),
        (["in ... s (... leads/s)"], ["in 0.3 s (34,448 leads/s)"], True),
        (["in ... s"], ["in 0.3 s", "more"], False),
        (["a.b"], ["axb"], False),  # the rest is literal
    ])
    def test_matches(self, expected: list[str], actual: list[str], result: bool) -> None:
        """`...` alone is any lines, inside a line any text; everything else is literal."""
        assert matches(expected, actual) is result


class TestExampleFiles:
    """The files the READMEs' examples read, where they come from."""

    def test_leads_are_generated(self) -> None:
        """examples/leads.jsonl (for `rules diff --leads`) is 1,000 leads of
        qualify.synthetic.generate, seed 1, one in a hundred with a bad value. Regenerate with
        QUALIFY_REGEN_GOLDEN=1, then update the README's `rules diff` block."""
        path = ROOT / "examples" / "leads.jsonl"
        text = "".join(json.dumps(lead, ensure_ascii=False) + "\n"
                       for lead in generate(1000, seed=1, bad_rate=0.01))
        if os.environ.get("QUALIFY_REGEN_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
        assert path.read_text(encoding="utf-8") == text
