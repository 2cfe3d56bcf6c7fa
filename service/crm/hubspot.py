"""HubSpot write-back: read records in batches, write the verdict's properties in batches.

The calls (CRM v3 objects API, private-app token as ``Authorization: Bearer``):

    POST /crm/v3/objects/{objectType}/batch/read    {"properties": [...], "inputs": [{"id"}]}
    POST /crm/v3/objects/{objectType}/batch/update  {"inputs": [{"id", "properties"}]}

Each takes at most 100 inputs. A batch answers 200 when every input succeeded, 207
(multi-status) with ``errors`` naming the failed ids in ``context.ids`` otherwise; a whole
batch refused with 400 (one bad value can fail it) is written again one record at a time,
so that only the bad record is dead-lettered. HubSpot limits private apps per 10 s burst
and per day; 429 answers carry ``X-HubSpot-RateLimit-*`` headers and sometimes
``Retry-After``: the jobs wait that long (default: the burst window) without spending an
attempt. Here the burst is also kept below ``burst`` calls per ``window`` seconds per
process, so a busy outbox rarely meets a 429.

HubSpot stores every property as text, so values are written as text and compared as text.

References: https://developers.hubspot.com/docs/api/crm/contacts (batch read and update),
https://developers.hubspot.com/docs/api/usage-details (rate limits, 429),
https://developers.hubspot.com/docs/api/webhooks (event fields, changeSource).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from service.crm import CrmError, message, retry_after, text

BATCH = 100
NOT_FOUND = ("OBJECT_NOT_FOUND", "RESOURCE_NOT_FOUND")


class HubSpot:
    name = "hubspot"
    names_from_api = False

    def __init__(self, token: str, api_url: str, *, timeout: float = 10.0,
                 burst: int = 90, window: float = 10.0,
                 sleep: Callable[[float], Any] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"},
                                  transport=transport)
        self.burst, self.window, self._sleep = burst, window, sleep
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ the calls

    def _pace(self) -> None:
        """At most ``burst`` calls in any ``window`` seconds (this process)."""
        with self._lock:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - self.window:
                self._calls.popleft()
            if len(self._calls) >= self.burst:
                self._sleep(self._calls[0] + self.window - now)
            self._calls.append(time.monotonic())

    def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        self._pace()
        try:
            response = self._http.post(path, json=body)
        except httpx.TimeoutException:
            raise CrmError(f"HubSpot did not answer {path} in time", retry=True) from None
        except httpx.TransportError as e:
            raise CrmError(f"HubSpot unreachable: {type(e).__name__}", retry=True) from None
        status = response.status_code
        if status in (200, 201, 207) or status == 400:
            return response
        problem = f"HubSpot answered {status} to {path}: {message(response)}"
        if status == 429:
            wait = retry_after(response)
            interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
            if wait is None and interval.isdigit():
                wait = int(interval) / 1000
            raise CrmError(problem, retry=True, wait=wait or self.window, status=status)
        if status in (401, 403) or status >= 500 or status == 408:
            raise CrmError(problem, retry=True, status=status)  # a token may be fixed
        raise CrmError(problem, retry=False, status=status)

    def fetch(self, object_type: str, ids: list[str],
              properties: list[str]) -> dict[str, Mapping[str, Any] | None]:
        found: dict[str, Mapping[str, Any] | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            response = self._post(f"/crm/v3/objects/{object_type}/batch/read", {
                "properties": properties, "propertiesWithHistory": [],
                "inputs": [{"id": i} for i in chunk]})
            if response.status_code == 400:
                raise CrmError(f"HubSpot refused the read: {message(response)}",
                               retry=False, status=400)
            for result in response.json().get("results", []):
                if str(result.get("id")) in found:
                    found[str(result["id"])] = result
        return found

    def prepare(self, object_type: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return record  # a workflow webhook's body is read by the profile as it is

    def lacks(self, object_type: str, record: Mapping[str, Any], paths: frozenset[str]) -> bool:
        return False  # a workflow sends the properties it was told to: what there is

    def current(self, record: Mapping[str, Any], names: list[str]) -> dict[str, str]:
        props = record.get("properties") or {}
        return {n: text(props.get(n)) for n in names}

    def write(self, object_type: str,
              updates: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        items = list(updates.items())
        for start in range(0, len(items), BATCH):
            out.update(self._update(object_type, dict(items[start:start + BATCH])))
        return out

    def _update(self, object_type: str,
                updates: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        path = f"/crm/v3/objects/{object_type}/batch/update"
        response = self._post(path, {"inputs": [
            {"id": i, "properties": {k: text(v) for k, v in props.items()}}
            for i, props in updates.items()]})
        if response.status_code == 400:
            if len(updates) == 1:  # this record's values were refused
                return {next(iter(updates)): message(response)}
            out: dict[str, str | None] = {}
            for one, props in updates.items():  # find the bad record: one at a time
                out.update(self._update(object_type, {one: props}))
            return out
        out = dict.fromkeys(updates)
        for error in response.json().get("errors", []) or []:
            ids = (error.get("context") or {}).get("ids") or \
                (error.get("context") or {}).get("id") or []
            for i in ids if isinstance(ids, list) else [ids]:
                if str(i) in out:
                    out[str(i)] = f"{error.get('category', 'error')}: " \
                                  f"{error.get('message', '')}"[:1000]
        return out

