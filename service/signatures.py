"""Webhook authentication: HubSpot signatures v1, v2 and v3, the generic ``t=,v1=`` scheme,
HTTP basic, and static tokens (for CRMs that cannot sign: Zoho CRM, Dataverse).

Pure functions over bytes and strings with the clock passed in, so known-answer vectors test
them exactly. Comparisons are constant-time and try every configured secret (rotation).
A failure raises ``SignatureError`` saying what was wrong, never which secret came close.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

HUBSPOT_SIGNATURE = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP = "X-HubSpot-Request-Timestamp"
HUBSPOT_LEGACY_SIGNATURE = "X-HubSpot-Signature"  # v1 and v2
HUBSPOT_SIGNATURE_VERSION = "X-HubSpot-Signature-Version"
GENERIC_SIGNATURE = "X-Qualify-Signature"
DEFAULT_TOLERANCE = 300  # seconds, either direction

# HubSpot signs the URI with these escapes decoded (its "validating requests" guide).
_HUBSPOT_ESCAPES = {"3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$",
                    "27": "'", "28": "(", "29": ")", "2A": "*", "2C": ",", "3B": ";"}
_ESCAPE = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


class SignatureError(Exception):
    """A webhook request is not authentic: missing, malformed, stale or wrong credentials."""


def _same(a: bytes, b: bytes) -> bool:
    # Digests first: constant time whatever the lengths.
    return hmac.compare_digest(hashlib.sha256(a).digest(), hashlib.sha256(b).digest())


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _check_time(stamp_seconds: float, now: float, tolerance: float) -> None:
    if abs(now - stamp_seconds) > tolerance:
        raise SignatureError(f"stale timestamp: more than {tolerance:g} s from the server's "
                             "clock")


# ----------------------------------------------------------------------------- HubSpot v3


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the escapes of ``: / ? @ ! $ ' ( ) * , ;`` decoded."""
    return _ESCAPE.sub(lambda m: _HUBSPOT_ESCAPES[m.group(1).upper()], uri)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes,
                         timestamp: str) -> str:
    """base64(HMAC-SHA256(client secret, method + URI + raw body + timestamp))."""
    message = _bytes(method.upper()) + _bytes(uri) + body + _bytes(timestamp)
    digest = hmac.new(_bytes(secret), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_hubspot_v3(secrets: Sequence[str], *, method: str, uri: str, body: bytes,
                      signature: str | None, timestamp: str | None, now: float,
                      tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Accept a HubSpot v3 request or raise SignatureError. ``now`` is in seconds."""
    if not signature:
        raise SignatureError(f"missing {HUBSPOT_SIGNATURE} header")
    if not timestamp:
        raise SignatureError(f"missing {HUBSPOT_TIMESTAMP} header")
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 16:
        raise SignatureError(f"{HUBSPOT_TIMESTAMP} is not a time in milliseconds")
    _check_time(int(stamp) / 1000, now, tolerance)
    # A proxy that form-decodes headers turns "+" into " "; base64 has no spaces.
    given = _bytes(signature.strip().replace(" ", "+"))
    signed_uri = hubspot_uri(uri)
    ok = False
    for secret in secrets:  # no early exit: the time does not tell which secret matched
        ok |= _same(_bytes(hubspot_v3_signature(secret, method, signed_uri, body, stamp)),
                    given)
    if not ok:
        raise SignatureError("the signature does not match")


def hubspot_legacy_signature(version: str, secret: str, method: str, uri: str,
                             body: bytes) -> str:
    """HubSpot v1: hex(SHA-256(client secret + body)); v2: hex(SHA-256(client secret +
    method + URI + body)). No timestamp: a captured request can be replayed, which the
    delivery store makes harmless (a retry writes nothing twice)."""
    if version == "v1":
        message = _bytes(secret) + body
    elif version == "v2":
        message = _bytes(secret) + _bytes(method.upper()) + _bytes(uri) + body
    else:
        raise SignatureError(f"{HUBSPOT_SIGNATURE_VERSION} {version[:10]!r} is not v1 or v2")
    return hashlib.sha256(message).hexdigest()


def verify_hubspot_legacy(secrets: Sequence[str], *, version: str | None, method: str,
                          uri: str, body: bytes, signature: str | None) -> None:
    """Accept a HubSpot v1 or v2 request (``X-HubSpot-Signature``) or raise SignatureError."""
    if not signature:
        raise SignatureError(f"missing {HUBSPOT_SIGNATURE} or {HUBSPOT_LEGACY_SIGNATURE} "
                             "header")
    version = (version or "v1").strip().lower()
    given = _bytes(signature.strip().lower())
    ok = False
    for secret in secrets:
        ok |= _same(_bytes(hubspot_legacy_signature(version, secret, method, uri, body)),
                    given)
    if not ok:
        raise SignatureError("the signature does not match")


# ----------------------------------------------------------------------------- generic


def generic_signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex(HMAC-SHA256(secret, "<timestamp>." + raw body))."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def generic_header(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Qualify-Signature`` value a sender puts on ``body``."""
    return f"t={timestamp},v1={generic_signature(secret, timestamp, body)}"


def parse_generic_header(header: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>...]`` -> (t, [v1, ...]). Unknown keys are ignored."""
    stamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise SignatureError(f"{GENERIC_SIGNATURE}: t is not a unix time")
            stamp = int(value)
        elif key == "v1":
            signatures.append(value.strip().lower())
    if stamp is None:
        raise SignatureError(f"{GENERIC_SIGNATURE} has no t=<unix time>")
    if not signatures:
        raise SignatureError(f"{GENERIC_SIGNATURE} has no v1=<signature>")
    return stamp, signatures


def verify_generic(secrets: Sequence[str], *, body: bytes, header: str | None, now: float,
                   tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Accept a request signed with the generic scheme or raise SignatureError."""
    if not header:
        raise SignatureError(f"missing {GENERIC_SIGNATURE} header")
    stamp, given = parse_generic_header(header)
    _check_time(stamp, now, tolerance)
    ok = False
    for secret in secrets:
        expected = _bytes(generic_signature(secret, stamp, body))
        for candidate in given:
            ok |= _same(expected, _bytes(candidate))
    if not ok:
        raise SignatureError("the signature does not match")


# ----------------------------------------------------------------------------- basic auth


def basic_header(user: str, password: str) -> str:
    """The ``Authorization`` value for HTTP basic auth."""
    return "Basic " + base64.b64encode(_bytes(f"{user}:{password}")).decode("ascii")


def verify_basic(credentials: Sequence[str], authorization: str | None) -> str:
    """Accept HTTP basic auth matching one ``user:password`` pair; returns the user."""
    if not authorization:
        raise SignatureError("missing Authorization header (HTTP basic auth)")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise SignatureError("the Authorization header is not HTTP basic auth")
    try:
        pair = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SignatureError("malformed basic credentials") from None
    if ":" not in pair:
        raise SignatureError("malformed basic credentials")
    ok = False
    for credential in credentials:
        ok |= _same(_bytes(credential), _bytes(pair))
    if not ok:
        raise SignatureError("wrong user or password")
    return pair.partition(":")[0]


# ----------------------------------------------------------------------------- static tokens


def verify_token(tokens: Sequence[str], given: str | None, where: str) -> None:
    """Accept a request carrying one of ``tokens`` (compared in constant time, every token
    tried: rotation) or raise SignatureError. ``where`` says where to send it."""
    if not given:
        raise SignatureError(f"missing token: send it as {where}")
    ok = False
    for token in tokens:
        ok |= _same(_bytes(token), _bytes(given.strip()))
    if not ok:
        raise SignatureError("the token is not valid")
