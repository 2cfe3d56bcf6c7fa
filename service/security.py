"""API keys (bearer) for scoring and a separate admin key for reload.

Keys are kept as SHA-256 digests and compared in constant time against every configured
key. With no API key configured, scoring is open and ``qualify serve`` binds loopback only.
With no admin key, reload is open only in that same loopback-only mode.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request

from service.errors import ApiError

# Declared in the OpenAPI document (service.openapi); read here without FastAPI's
# HTTPBearer, whose nested dependency costs about 0.1 ms a request.
SCHEMES = {
    "ApiKey": {"type": "http", "scheme": "bearer",
               "description": "An API key from QUALIFY_API_KEYS."},
    "AdminKey": {"type": "http", "scheme": "bearer",
                 "description": "The admin key, QUALIFY_ADMIN_KEY."},
}
CLIENT: dict[str, Any] = {"security": [{"ApiKey": []}]}  # openapi_extra: needs a key
ADMIN: dict[str, Any] = {"security": [{"AdminKey": []}]}


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """A set of secret keys, checked without revealing which (if any) nearly matched."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in keys if k]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def check(self, key: str) -> bool:
        given = _digest(key)
        ok = False
        for digest in self._digests:
            ok |= hmac.compare_digest(digest, given)
        return ok


class Keys:
    """The service's keys: clients (scoring, rule base info) and admin (reload)."""

    def __init__(self, clients: Iterable[str], admin: str | None) -> None:
        self.clients = KeyRing(clients)
        self.admin = KeyRing([admin] if admin else [])

    @property
    def open_access(self) -> bool:
        return not self.clients


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _keys(request: Request) -> Keys:
    keys: Keys = request.app.state.service.keys
    return keys


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def require_client(request: Request) -> None:
    """An API key (or the admin key), unless no API key is configured."""
    keys = _keys(request)
    if keys.open_access:
        return
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not (keys.clients.check(token) or keys.admin.check(token)):
        raise _unauthorized("the API key is not valid")


async def require_admin(request: Request) -> None:
    """The admin key. Without one configured, only an open (loopback) service allows it."""
    keys = _keys(request)
    if not keys.admin:
        if keys.open_access:
            return
        raise ApiError(403, "forbidden", "admin endpoints are disabled: set QUALIFY_ADMIN_KEY")
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not keys.admin.check(token):
        raise _unauthorized("the admin key is not valid")


ClientAuth = Annotated[None, Depends(require_client)]
AdminAuth = Annotated[None, Depends(require_admin)]
