"""Engine calls shared by the routes, with their metrics, log fields and decision log.

A single lead takes about 0.3 ms, so it is scored on the event loop. Measured with 32
concurrent calls: inline 0.36-0.40 ms CPU per lead, p99 33-38 ms; through
``anyio.to_thread`` 0.59-0.65 ms CPU, p99 91-99 ms (the engine holds the GIL, so a thread
adds hand-offs, not parallelism). Batches larger than ``inline_batch`` leads run in a worker
thread so that one batch cannot hold the loop for long. If a reload retires the engine between
reading the snapshot and calling it, the call is retried once on the new snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qualify import EngineClosedError, EngineError, LeadError, Verdict
from qualify.verdict import verdict_json
from service.errors import ApiError, lead_error
from service.logs import DecisionLog
from service.metrics import Metrics
from service.state import Registry, Snapshot

log = logging.getLogger("qualify.service")
T = TypeVar("T")

UNSCORABLE = "the rule engine could not evaluate this lead"
_COMPACT = (",", ":")


@dataclass(frozen=True)
class Scored:
    verdict: Verdict
    json: bytes  # the verdict, serialised once


@dataclass(frozen=True)
class BatchOutcome:
    json: bytes  # the whole response body
    sha256: str
    ok: int
    failed: int


class Scorer:
    """Scores leads with the registry's current snapshot."""

    def __init__(self, registry: Registry, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self.decisions: DecisionLog | None = None

    def _with_snapshot(self, call: Callable[[Snapshot], T]) -> T:
        snapshot = self.registry.current
        try:
            return call(snapshot)
        except EngineClosedError:
            if self.registry.current is snapshot:
                raise  # not a reload: shutting down
            return call(self.registry.current)

    def score(self, raw: Any, *, as_of: dt.date | None, locale: str | None, source: str,
              fields: MutableMapping[str, Any]) -> Scored:
        """One lead's verdict; ApiError 422 for a bad lead."""
        try:
            verdict = self._with_snapshot(
                lambda s: s.engine.score(raw, as_of=as_of, locale=locale))
        except LeadError as e:
            fields.update(lead_id=_lead_id(raw), field=e.field)
            if self.decisions:
                self.decisions.write(source=source, lead=raw, error=e.to_dict())
            raise lead_error(e) from None
        except EngineClosedError:
            raise
        except EngineError as e:
            log.error("engine error: %s", e, extra={"fields": {"lead_id": _lead_id(raw)}})
            raise ApiError(422, "unscorable_lead", UNSCORABLE) from None
        text = verdict_json(verdict)
        self.metrics.verdict(verdict.grade, verdict.status, source)
        fields.update(lead_id=verdict.lead_id, sha256=verdict.rulebook["sha256"],
                      grade=verdict.grade, score=verdict.score,
                      verdict_status=verdict.status)
        if self.decisions:
            self.decisions.write(source=source, lead=raw, verdict_json=text)
        return Scored(verdict, text)

    def batch(self, leads: Sequence[Any], *, as_of: dt.date | None,
              locale: str | None) -> BatchOutcome:
        """Every lead's result with one snapshot; a bad lead never fails the others."""
        return self._with_snapshot(lambda s: self._batch(s, leads, as_of, locale))

    def _batch(self, snapshot: Snapshot, leads: Sequence[Any], as_of: dt.date | None,
               locale: str | None) -> BatchOutcome:
        engine = snapshot.engine
        decisions = self.decisions
        lines: list[str | None] = []  # the decision log's, written at once at the end
        parts: list[bytes] = []
        ok = 0
        for raw in leads:
            try:
                verdict = engine.score(raw, as_of=as_of, locale=locale)
            except LeadError as e:
                parts.append(_dumps({"ok": False, "error": e.to_dict()}))
                if decisions:
                    lines.append(decisions.line(source="batch", lead=raw, error=e.to_dict()))
                continue
            except EngineClosedError:
                raise
            except EngineError as e:
                log.error("engine error: %s", e, extra={"fields": {"lead_id": _lead_id(raw)}})
                parts.append(_dumps({"ok": False, "error": {"field": None,
                                                            "message": UNSCORABLE}}))
                continue
            text = verdict_json(verdict)
            parts.append(b'{"ok":true,"verdict":' + text + b"}")
            ok += 1
            self.metrics.verdict(verdict.grade, verdict.status, "batch")
            if decisions:
                lines.append(decisions.line(source="batch", lead=raw, verdict_json=text))
        if decisions and lines:
            decisions.append(lines)
        head = _dumps({"rulebook": snapshot.ref(), "count": len(leads), "ok": ok,
                       "failed": len(leads) - ok})
        body = head[:-1] + b',"results":[' + b",".join(parts) + b"]}"
        return BatchOutcome(body, snapshot.sha256, ok, len(leads) - ok)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=_COMPACT).encode()


def _lead_id(raw: Any) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("lead_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:256]
    return None
