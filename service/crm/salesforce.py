"""Salesforce write-back: OAuth 2.0 client credentials, records written with the composite API.

The calls:

    POST {login}/services/oauth2/token              grant_type=client_credentials, client_id,
                                                    client_secret (a connected app with the
                                                    client credentials flow enabled) ->
                                                    {access_token, instance_url, ...}
    PATCH {instance}/services/data/vXX.X/composite/sobjects
                                                    {"allOrNone": false, "records": [{
                                                    "attributes": {"type": "Lead"}, "id",
                                                    "Qualify_Score__c": 72, ...}]}: at most
                                                    200 records; one result per record, in
                                                    order: {id, success, errors: [{statusCode,
                                                    message, fields}]}
    GET  {instance}/services/data/vXX.X/composite/sobjects/{type}?ids=..&fields=..

The token is cached and renewed when a call answers 401 (``INVALID_SESSION_ID``: expired or
revoked), then the call is made once more. ``REQUEST_LIMIT_EXCEEDED`` (the org's daily API
limit) waits. Outbound Messages carry the fields chosen in Setup, so records are not
fetched before scoring.

References: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx

from service.crm import CrmError, message, retry_after, text

BATCH = 200


class Salesforce:
    name = "salesforce"
    names_from_api = False

    def __init__(self, client_id: str, client_secret: str, login_url: str, *,
                 api_version: str = "v60.0", timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._form = {"grant_type": "client_credentials", "client_id": client_id,
                      "client_secret": client_secret}
        self.login_url = login_url.rstrip("/")
        self.version = api_version if api_version.startswith("v") else f"v{api_version}"
        self._token: tuple[str, str] | None = None  # (access token, instance URL)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ the token

    def _login(self) -> tuple[str, str]:
        try:
            response = self._http.post(f"{self.login_url}/services/oauth2/token",
                                       data=self._form)
        except httpx.TransportError as e:
            raise CrmError(f"Salesforce login unreachable: {type(e).__name__}",
                           retry=True) from None
        if response.status_code != 200:
            body = _json(response)
            reason = body.get("error_description") or body.get("error") \
                if isinstance(body, dict) else message(response)
            # A wrong secret may be fixed while jobs wait: retried, then dead.
            raise CrmError(f"Salesforce refused the client credentials "
                           f"({response.status_code}): {reason}", retry=True,
                           status=response.status_code)
        body = response.json()
        token, instance = body.get("access_token"), body.get("instance_url")
        if not isinstance(token, str) or not isinstance(instance, str):
            raise CrmError("Salesforce's token answer has no access_token or instance_url",
                           retry=True)
        return token, instance.rstrip("/")

    def _session(self, renew: bool) -> tuple[str, str]:
        with self._lock:
            if self._token is None or renew:
                self._token = self._login()
            return self._token

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An API call with the cached token; renewed once on INVALID_SESSION_ID."""
        for renew in (False, True):
            token, instance = self._session(renew)
            try:
                response = self._http.request(
                    method, f"{instance}/services/data/{self.version}{path}",
                    headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except httpx.TimeoutException:
                raise CrmError(f"Salesforce did not answer {path} in time",
                               retry=True) from None
            except httpx.TransportError as e:
                raise CrmError(f"Salesforce unreachable: {type(e).__name__}",
                               retry=True) from None
            if response.status_code != 401:
                break
        status = response.status_code
        if status < 300:
            return response
        problem = f"Salesforce answered {status} to {method} {path}: {_errors(response)}"
        if "REQUEST_LIMIT_EXCEEDED" in problem:
            raise CrmError(problem, retry=True, wait=retry_after(response) or 600.0,
                           status=status)
        if status in (401, 408, 429) or status >= 500:
            raise CrmError(problem, retry=True, status=status)
        raise CrmError(problem, retry=False, status=status)

    # ------------------------------------------------------------------ records

    def fetch(self, object_type: str, ids: list[str],
              properties: list[str]) -> dict[str, Mapping[str, Any] | None]:
        found: dict[str, Mapping[str, Any] | None] = dict.fromkeys(ids)
        fields = sorted({"Id", *properties})
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            response = self._call("GET", f"/composite/sobjects/{object_type}",
                                  params={"ids": ",".join(chunk), "fields": ",".join(fields)})
            for record in response.json() or []:
                if isinstance(record, dict) and str(record.get("Id", ""))[:15]:
                    for i in chunk:
                        if i[:15] == str(record["Id"])[:15]:
                            found[i] = record
        return found

    def prepare(self, object_type: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return record

    def lacks(self, object_type: str, record: Mapping[str, Any], paths: frozenset[str]) -> bool:
        return False  # an Outbound Message carries the fields chosen in Setup

    def current(self, record: Mapping[str, Any], names: list[str]) -> dict[str, str]:
        return {n: text(record.get(n)) for n in names}

    def write(self, object_type: str,
              updates: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        items = list(updates.items())
        for start in range(0, len(items), BATCH):
            out.update(self._update(object_type, items[start:start + BATCH]))
        return out

    def _update(self, object_type: str,
                chunk: list[tuple[str, dict[str, Any]]]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        try:
            response = self._call("PATCH", "/composite/sobjects", json={
                "allOrNone": False,
                "records": [{"attributes": {"type": object_type}, "id": i, **props}
                            for i, props in chunk]})
        except CrmError as e:
            if e.status != 400:
                raise
            if len(chunk) == 1:  # this record's request was refused (INVALID_FIELD, ...)
                return {chunk[0][0]: str(e)[:1000]}
            for one in chunk:  # a whole call refused: find the bad record, one at a time
                out.update(self._update(object_type, [one]))
            return out
        results = response.json()
        if not isinstance(results, list) or len(results) != len(chunk):
            raise CrmError("Salesforce's composite answer does not match the records sent",
                           retry=True)
        for (record_id, _), result in zip(chunk, results, strict=True):
            if isinstance(result, dict) and result.get("success") is True:
                out[record_id] = None
            else:
                errors = result.get("errors") if isinstance(result, dict) else None
                out[record_id] = "; ".join(
                    f"{e.get('statusCode')}: {e.get('message')}"
                    + (f" ({', '.join(e['fields'])})" if e.get("fields") else "")
                    for e in errors or [] if isinstance(e, dict))[:1000] or "failed"
        return out


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _errors(response: httpx.Response) -> str:
    body = _json(response)
    if isinstance(body, list):
        return "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in body
                         if isinstance(e, dict))[:500]
    return message(response)
