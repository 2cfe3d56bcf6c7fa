"""The loaded rule base, its mapping profiles, and atomic hot reload.

A ``Snapshot`` is everything one request needs: an engine, the webhook mapping profiles
checked against its rule base, and when it was loaded. Requests read ``registry.current``
once and use that snapshot throughout, so none sees half a rule base.

A snapshot is built from ``Sources``: the bytes of the rule base, its profiles and its test
file (``rules/<name>.test.yaml``), each read once, so what is checked, tested, fingerprinted
and announced to sibling workers is the same text. Reload builds a complete new snapshot
first (off the event loop); if the rule base or a profile has problems, or a case of the
test file fails, the old snapshot keeps serving and the problems are raised. Otherwise one
reference assignment swaps it in, the activation goes to the sibling workers (see
``service.channel``), and the old engine is closed after a grace period (``Engine.close``
also waits for calls in flight). Rebuilding is skipped when the files are unchanged:
durable-rules never frees some engine memory, so needless reloads cost memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from qualify import Engine, EngineError, Problem, Profile, QualifyError, RulebaseError, Rulebook
from qualify.authoring.casefile import tests_path_for
from qualify.authoring.testrun import gate
from qualify.mapping import load_profile_bytes
from qualify.rulebook import load_rulebook_bytes
from qualify.yamlsource import read_bytes
from service.channel import ReloadChannel
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("qualify.service")

SOURCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One consistent rule base with its profiles. Immutable once built."""

    engine: Engine
    profiles: Mapping[str, Profile]
    fingerprint: str  # rule base sha256 + profiles digest: equal means nothing changed
    loaded_at: dt.datetime
    sources: Sources
    cache: dict[str, Any] = field(default_factory=dict)  # derived documents, built lazily

    @property
    def rulebook(self) -> Rulebook:
        return self.engine.rulebook

    @property
    def sha256(self) -> str:
        return self.engine.rulebook.sha256

    def ref(self) -> dict[str, str]:
        rb = self.rulebook
        return {"name": rb.name, "version": rb.version, "sha256": rb.sha256}


@dataclass(frozen=True)
class ReloadOutcome:
    changed: bool
    snapshot: Snapshot
    previous: Snapshot | None


def _profile_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file())


File = tuple[str, bytes]  # where it was read (for messages), and its bytes


@dataclass(frozen=True)
class Sources:
    """The bytes a snapshot is built from, each file read once."""

    rules: File
    profiles: tuple[File, ...]
    tests: File | None  # rules/<name>.test.yaml, if there is one

    @classmethod
    def read(cls, rules: Path, mappings: Path) -> Sources:
        """Read the files; an unreadable one is a RulebaseError naming it."""
        tests = tests_path_for(rules)
        return cls((str(rules), read_bytes(rules)),
                   tuple((str(p), read_bytes(p)) for p in _profile_files(mappings)),
                   (str(tests), read_bytes(tests)) if tests.is_file() else None)

    @property
    def fingerprint(self) -> str:
        """Rule base sha256 and a digest of the profiles: equal means nothing changed."""
        digest = hashlib.sha256()
        for file, raw in self.profiles:
            digest.update(Path(file).name.encode() + b"\0" + raw + b"\0")
        return hashlib.sha256(self.rules[1]).hexdigest() + ":" + digest.hexdigest()[:16]

    def activation(self) -> dict[str, Any]:
        """What sibling workers build from (see service.channel): the files' text."""
        def item(f: File) -> dict[str, str]:
            return {"file": f[0], "text": f[1].decode("utf-8")}  # built, so UTF-8

        return {"fingerprint": self.fingerprint, "rules": item(self.rules),
                "profiles": [item(f) for f in self.profiles],
                "tests": item(self.tests) if self.tests else None}

    @classmethod
    def of_activation(cls, activation: Mapping[str, Any]) -> Sources:
        def item(d: Mapping[str, str]) -> File:
            return d["file"], d["text"].encode("utf-8")

        tests = activation.get("tests")
        return cls(item(activation["rules"]),
                   tuple(item(d) for d in activation["profiles"]),
                   item(tests) if tests else None)


def load_profiles(files: tuple[File, ...], rulebook: Rulebook) -> dict[str, Profile]:
    """Every profile (source name = file stem), checked; all problems."""
    profiles: dict[str, Profile] = {}
    problems: list[Problem] = []
    for file, raw in files:
        path = Path(file)
        if not SOURCE_NAME.match(path.stem):
            problems.append(Problem("bad-source-name", f"'{path.stem}' cannot be a webhook "
                                    "source name", str(path), 1, 1,
                                    "use lower-case letters, digits, - and _"))
            continue
        if path.stem in profiles:
            problems.append(Problem("duplicate-source", f"source '{path.stem}' is defined "
                                    "twice", str(path), 1, 1, "keep one of .yaml and .yml"))
            continue
        try:
            profiles[path.stem] = load_profile_bytes(raw, rulebook, file)
        except RulebaseError as e:
            problems.extend(e.problems)
    if problems:
        raise RulebaseError(problems)
    return profiles


def build_snapshot(rules: Path, mappings: Path) -> Snapshot:
    """Read, check, compile and test everything; raises RulebaseError listing every problem."""
    return build(Sources.read(rules, mappings))


def build(sources: Sources) -> Snapshot:
    """Check, compile and test ``sources``; raises RulebaseError listing every problem."""
    file, raw = sources.rules
    rulebook = load_rulebook_bytes(raw, file)
    profiles = load_profiles(sources.profiles, rulebook)
    try:
        engine = Engine(rulebook)
    except EngineError as e:
        raise RulebaseError([Problem("engine-rejected", str(e), file, 1, 1,
                                     "simplify the rule named in the message")]) from None
    if sources.tests is not None:  # a rule base whose own tests fail does not go live
        failed = gate(engine, Path(sources.tests[0]), sources.tests[1])
        if failed:
            engine.close()
            raise RulebaseError(failed)
    with contextlib.suppress(QualifyError):  # warm up: the first call pays one-off costs
        engine.score({"lead_id": "warm-up"})
    return Snapshot(engine, profiles, sources.fingerprint, dt.datetime.now(dt.UTC), sources)


class Registry:
    """Holds the current snapshot; reloads it; retires replaced engines."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.channel = ReloadChannel(settings.reload_channel) if settings.reload_channel \
            else None
        self._current: Snapshot | None = None
        self._retiring: dict[Snapshot, asyncio.Task[None] | None] = {}
        self._lock: asyncio.Lock | None = None

    @property
    def current(self) -> Snapshot:
        snapshot = self._current
        if snapshot is None:
            raise EngineError("no rule base is loaded")
        return snapshot

    @property
    def loaded(self) -> bool:
        return self._current is not None

    def load(self) -> Snapshot:
        """Load at start-up (synchronous); raises RulebaseError. Under a reload channel, a
        worker starts from the last activation, which its siblings serve, not from the files
        (which may have changed, or be broken, since); the first one announces its own."""
        activation = self.channel.latest() if self.channel else None
        if activation is not None:
            snapshot = build(Sources.of_activation(activation))
        else:
            snapshot = build_snapshot(self.settings.rules, self.settings.mappings_dir)
            if self.channel is not None:
                self.channel.announce(snapshot.sources.activation())
        self._swap(snapshot)
        return snapshot

    def _swap(self, snapshot: Snapshot) -> Snapshot | None:
        old, self._current = self._current, snapshot  # the atomic step
        rb = snapshot.rulebook
        self.metrics.show_rulebook(rb.name, rb.version, rb.sha256)
        return old

    async def reload(self, *, force: bool = False) -> ReloadOutcome:
        """Build a new snapshot and swap it in; RulebaseError leaves the old one serving."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        s = self.settings
        async with self._lock:
            old = self._current
            try:
                sources = await anyio.to_thread.run_sync(Sources.read, s.rules,
                                                         s.mappings_dir)
                if old is not None and not force and sources.fingerprint == old.fingerprint:
                    self.metrics.reloads.labels("unchanged").inc()
                    return ReloadOutcome(False, old, old)
                new = await anyio.to_thread.run_sync(build, sources)
            except RulebaseError as e:
                self.metrics.reloads.labels("failed").inc()
                log.error("reload failed; still serving the previous rule base",
                          extra={"fields": {"problems": [str(p) for p in e.problems],
                                            "sha256": old.sha256 if old else None}})
                raise
            self._swap(new)
            if old is not None:
                self._retiring[old] = asyncio.create_task(self._retire(old))
            if self.channel is not None:
                await anyio.to_thread.run_sync(self.channel.announce,
                                               new.sources.activation())
            self.metrics.reloads.labels("ok").inc()
            log.info("rule base reloaded", extra={"fields": {
                "sha256": new.sha256, "previous_sha256": old.sha256 if old else None,
                "rulebook": new.rulebook.name, "version": new.rulebook.version}})
            return ReloadOutcome(True, new, old)

    async def _retire(self, old: Snapshot) -> None:
        await asyncio.sleep(self.settings.reload_grace)
        await anyio.to_thread.run_sync(old.engine.close)  # waits for calls in flight
        self._retiring.pop(old, None)

    async def follow(self) -> None:
        """Adopt the rule base a sibling worker activated, when this worker runs another."""
        assert self.channel is not None
        while True:
            await asyncio.sleep(self.settings.reload_poll)
            try:
                announced = await anyio.to_thread.run_sync(self.channel.poll)
                if announced and self._current \
                        and announced["fingerprint"] != self._current.fingerprint:
                    await self.adopt(announced)
            except RulebaseError:
                pass  # logged by adopt; keep following
            except Exception:
                log.exception("following a sibling's reload failed")

    async def adopt(self, activation: Mapping[str, Any]) -> ReloadOutcome:
        """Build the activated text (not the files: they may have changed since) and swap."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            old = self._current
            try:
                new = await anyio.to_thread.run_sync(build, Sources.of_activation(activation))
            except RulebaseError as e:
                self.metrics.reloads.labels("failed").inc()
                log.error("following a sibling's reload failed; still serving the previous "
                          "rule base", extra={"fields": {
                              "problems": [str(p) for p in e.problems],
                              "sha256": old.sha256 if old else None}})
                raise
            self._swap(new)
            if old is not None:
                self._retiring[old] = asyncio.create_task(self._retire(old))
            self.metrics.reloads.labels("followed").inc()
            log.info("rule base reloaded by a sibling worker", extra={"fields": {
                "sha256": new.sha256, "previous_sha256": old.sha256 if old else None,
                "by_pid": activation.get("pid")}})
            return ReloadOutcome(True, new, old)

    async def close(self) -> None:
        """Close every engine (at shutdown); waits for calls in flight."""
        for task in self._retiring.values():
            if task is not None:
                task.cancel()
        engines = [s.engine for s in self._retiring]
        if self._current is not None:
            engines.append(self._current.engine)
        self._retiring.clear()
        self._current = None
        for engine in engines:
            await anyio.to_thread.run_sync(engine.close)
