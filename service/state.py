"""The loaded rule base, its mapping profiles, and atomic hot reload.

A ``Snapshot`` is everything one request needs: an engine, the webhook mapping profiles
checked against its rule base, and when it was loaded. Requests read ``registry.current``
once and use that snapshot throughout, so none sees half a rule base.

Reload builds a complete new snapshot first (off the event loop); if the rule base or a
profile has problems, the old snapshot keeps serving and the problems are raised. Otherwise
one reference assignment swaps it in, and the old engine is closed after a grace period
(``Engine.close`` also waits for calls in flight). Rebuilding is skipped when the files are
unchanged: durable-rules never frees some engine memory, so needless reloads cost memory.
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

from qualify import (
    Engine,
    EngineError,
    Problem,
    Profile,
    QualifyError,
    RulebaseError,
    Rulebook,
    load_profile,
    load_rulebook,
)
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


def fingerprint(rules: Path, mappings: Path) -> str:
    """A digest of the files a snapshot is built from (raises OSError if unreadable)."""
    digest = hashlib.sha256()
    for path in _profile_files(mappings):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hashlib.sha256(rules.read_bytes()).hexdigest() + ":" + digest.hexdigest()[:16]


def load_profiles(directory: Path, rulebook: Rulebook) -> dict[str, Profile]:
    """Every profile in ``directory`` (source name = file stem), checked; all problems."""
    profiles: dict[str, Profile] = {}
    problems: list[Problem] = []
    for path in _profile_files(directory):
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
            profiles[path.stem] = load_profile(path, rulebook)
        except RulebaseError as e:
            problems.extend(e.problems)
    if problems:
        raise RulebaseError(problems)
    return profiles


def build_snapshot(rules: Path, mappings: Path) -> Snapshot:
    """Load, check and compile everything; raises RulebaseError listing every problem."""
    rulebook = load_rulebook(rules)
    profiles = load_profiles(mappings, rulebook)
    try:
        digest = fingerprint(rules, mappings).split(":")[1]
    except OSError as e:
        raise RulebaseError([Problem("file-unreadable", str(e), str(rules))]) from None
    try:
        engine = Engine(rulebook)
    except EngineError as e:
        raise RulebaseError([Problem("engine-rejected", str(e), str(rules), 1, 1,
                                     "simplify the rule named in the message")]) from None
    with contextlib.suppress(QualifyError):  # warm up: the first call pays one-off costs
        engine.score({"lead_id": "warm-up"})
    return Snapshot(engine, profiles, f"{rulebook.sha256}:{digest}",
                    dt.datetime.now(dt.UTC))


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
        """Load at start-up (synchronous); raises RulebaseError."""
        snapshot = build_snapshot(self.settings.rules, self.settings.mappings_dir)
        self._swap(snapshot)
        return snapshot

    def _swap(self, snapshot: Snapshot) -> Snapshot | None:
        old, self._current = self._current, snapshot  # the atomic step
        rb = snapshot.rulebook
        self.metrics.show_rulebook(rb.name, rb.version, rb.sha256)
        return old

    async def reload(self, *, force: bool = False, announce: bool = True) -> ReloadOutcome:
        """Build a new snapshot and swap it in; RulebaseError leaves the old one serving."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        s = self.settings
        async with self._lock:
            old = self._current
            if old is not None and not force:
                try:
                    same = await anyio.to_thread.run_sync(fingerprint, s.rules,
                                                          s.mappings_dir) == old.fingerprint
                except OSError:
                    same = False  # the build reports the problem with its location
                if same:
                    self.metrics.reloads.labels("unchanged").inc()
                    return ReloadOutcome(False, old, old)
            try:
                new = await anyio.to_thread.run_sync(build_snapshot, s.rules, s.mappings_dir)
            except RulebaseError as e:
                self.metrics.reloads.labels("failed").inc()
                log.error("reload failed; still serving the previous rule base",
                          extra={"fields": {"problems": [str(p) for p in e.problems],
                                            "sha256": old.sha256 if old else None}})
                raise
            self._swap(new)
            if old is not None:
                self._retiring[old] = asyncio.create_task(self._retire(old))
            if announce and self.channel is not None:
                await anyio.to_thread.run_sync(self.channel.announce, new.fingerprint)
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
        """Reload when a sibling worker announces a rule base this worker does not run."""
        assert self.channel is not None
        while True:
            await asyncio.sleep(self.settings.reload_poll)
            try:
                announced = await anyio.to_thread.run_sync(self.channel.poll)
                if announced and self._current and announced != self._current.fingerprint:
                    await self.reload(announce=False)
            except RulebaseError:
                pass  # logged by reload; keep following
            except Exception:
                log.exception("following a sibling's reload failed")

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
