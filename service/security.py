"""API keys (bearer) for scoring and a separate admin key for reload.

Keys are kept as SHA-256 digests and compared in constant time against every configured
key. With no API key configured (open access), scoring answers only clients on this
machine, however the app was started (``qualify serve``, ``uvicorn --factory``, any host):
a loopback peer that relays for no one. Everyone else gets a 403 that says to set
QUALIFY_API_KEYS. With no admin key, reload and the outbox are open in that same mode only.

The peer is the ASGI scope's client. uvicorn replaces it with the X-Forwarded-For address
only for the proxies it trusts (``--forwarded-allow-ips``, default 127.0.0.1 and ::1), so
a remote client cannot pass for loopback that way; and a request that carries X-Forwarded-For,
Forwarded or X-Real-IP counts as relayed, hence not local, even from 127.0.0.1: a proxy on
this machine would otherwise open the service to whoever it serves, and with
``--forwarded-allow-ips '*'`` anyone could claim 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
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


# Headers a proxy adds for the client it relays for.
RELAYED = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and localhost."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def is_local(request: Request) -> bool:
    """The client is on this machine: a loopback peer, relaying for no one."""
    client = request.scope.get("client")
    if not client or not is_loopback(str(client[0])):
        return False  # no peer (a Unix socket, a test without one) is not known to be local
    return not any(name in RELAYED for name, _ in request.scope["headers"])


def _local_only(request: Request) -> None:
    """Open access: a 403 for any client not on this machine."""
    if not is_local(request):
        raise ApiError(403, "forbidden", "no API keys are configured, so only clients on "
                       "the service's own machine are answered (loopback, not through a "
                       "proxy): set QUALIFY_API_KEYS and send 'Authorization: Bearer <key>'")


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
        _local_only(request)
        return
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not (keys.clients.check(token) or keys.admin.check(token)):
        raise _unauthorized("the API key is not valid")


async def require_admin(request: Request) -> None:
    """The admin key. Without one configured, only an open service allows it, to clients
    on its own machine."""
    keys = _keys(request)
    if not keys.admin:
        if keys.open_access:
            _local_only(request)
            return
        raise ApiError(403, "forbidden", "admin endpoints are disabled: set QUALIFY_ADMIN_KEY")
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not keys.admin.check(token):
        raise _unauthorized("the admin key is not valid")


ClientAuth = Annotated[None, Depends(require_client)]
AdminAuth = Annotated[None, Depends(require_admin)]
