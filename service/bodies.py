"""Strict JSON request bodies, parsed by the service itself.

Bodies are read raw (webhooks must verify signatures over the exact bytes) and parsed as
strict JSON whatever the Content-Type says (CRMs are careless with it): UTF-8, no NaN or
Infinity, no number that overflows. Each failure is a 400 that says where and why.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from qualify.leads import kind_of
from qualify.leads import parse_json as parse_lead_json
from service.errors import ApiError


def parse_json(body: bytes) -> Any:
    """The JSON value in ``body``, or ApiError 400 naming the problem and its position."""
    if not body.strip():
        raise ApiError(400, "malformed_json", "the request body is empty: send JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "malformed_json",
                       f"the body is not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        return parse_lead_json(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, "malformed_json", f"malformed JSON at line {e.lineno} column "
                       f"{e.colno}: {e.msg}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON is nested too deeply") from None
    except ValueError as e:  # NaN, 1e999, 41-digit integers, a key given twice
        raise ApiError(400, "malformed_json", f"malformed JSON: {e}") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is over the limit of {limit:,} bytes")


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, refused (413) as soon as it is known to exceed ``limit`` bytes, and
    408 if it has not all arrived within ``timeout`` seconds (a slow client held a
    connection and a task for as long as it liked)."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except ClientDisconnect:  # the client's doing, not a server error: no 500, no trace
        raise ApiError(499, "client_closed_request", "the client closed the connection "
                       "before sending the whole body") from None
    except TimeoutError:  # the rest of the body is not read: the connection is closed
        raise ApiError(408, "request_timeout", f"the request body did not arrive within "
                       f"{timeout:g} s ({size:,} bytes came): send it faster",
                       headers={"Connection": "close"}) from None
    return b"".join(chunks)


async def read_json(request: Request, limit: int, timeout: float) -> Any:
    """Read (at most ``limit`` bytes, within ``timeout`` seconds) and parse the body."""
    return parse_json(await read_body(request, limit, timeout))


def require_object(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else a 422 naming the body."""
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_request",
                       f"the body must be a JSON object ({what}), got {kind_of(value)}",
                       field="body")
    return value
