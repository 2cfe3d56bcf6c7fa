"""Write-back adapters, one module per CRM: read records, write verdicts, say what failed.

Each adapter turns its CRM's answers into three outcomes the outbox understands:

    a result per record        written, or a per-record error kept with the job (dead)
    CrmError(retry=True)       the call failed as a whole (5xx, timeout, 429, 401): try the
                               jobs again later; ``wait`` is the CRM's own Retry-After
    CrmError(retry=False)      the call can never succeed as sent: dead-letter the jobs
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from qualify import Verdict


class CrmError(Exception):
    """A call to a CRM failed as a whole."""

    def __init__(self, message: str, *, retry: bool, wait: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.wait = wait
        self.status = status


class Client(Protocol):
    """What the outbox needs from a CRM."""

    name: str
    # Records need the CRM's API to be read (Pipedrive: custom fields by hash, options by
    # id): webhooks queue them unscored, and the outbox fetches those that lack fields.
    names_from_api: bool

    def fetch(self, object_type: str, ids: list[str],
              properties: list[str]) -> dict[str, Mapping[str, Any] | None]:
        """The records (None: not found), in the shape the mapping profile reads."""
        ...

    def prepare(self, object_type: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """A record as a webhook carried it, in the shape the profile reads."""
        ...

    def lacks(self, object_type: str, record: Mapping[str, Any], paths: frozenset[str]) -> bool:
        """Whether a prepared webhook record lacks fields the CRM has and ``paths`` read."""
        ...

    def current(self, record: Mapping[str, Any], names: list[str]) -> dict[str, str]:
        """The values of properties ``names`` in a fetched record, as text."""
        ...

    def write(self, object_type: str,
              updates: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        """Write properties per record id; per id None (written) or the CRM's error."""
        ...

    def close(self) -> None: ...


def values(verdict: Verdict, write_back: Mapping[str, str],
           now: dt.datetime) -> dict[str, Any]:
    """CRM property -> value for a verdict, as the profile's ``write_back`` declares."""
    nxt = verdict.next_step
    rb = verdict.rulebook
    items: dict[str, Any] = {
        "score": verdict.score, "grade": verdict.grade, "status": verdict.status,
        "next_step": nxt["label"], "next_step_id": nxt["id"], "reason": nxt["reason"][:1000],
        "weakest_factor": verdict.weakest["label"] if verdict.weakest else "",
        "rulebook": f"{rb['name']} v{rb['version']} {rb['sha256'][:12]}",
        "scored_at": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return {prop: items[item] for item, prop in write_back.items()}


def text(value: Any) -> str:
    """A value as CRMs hold it in text: numbers without a needless .0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def message(response: httpx.Response) -> str:
    """The error text of a CRM's answer, short."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body.get("category")
                   or body)[:500]
    return str(body)[:300]


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header, if it holds a number."""
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
