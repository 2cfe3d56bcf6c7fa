"""Constants and builders shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

from service.settings import Settings
from service.signatures import basic_header, generic_header, hubspot_v3_signature

with warnings.catch_warnings():  # starlette asks for httpx2; plain httpx still works
    warnings.filterwarnings("ignore", message=".*install `httpx2`")
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

API_KEY = "test-api-key"
ADMIN_KEY = "test-admin-key"
HUBSPOT_SECRET = "hubspot-client-secret"
PIPEDRIVE_USER, PIPEDRIVE_PASSWORD = "pipedrive", "s3cret:with:colons"
GENERIC_SECRET = "generic-signing-secret"
AS_OF = "2026-01-01"

LEAD: dict[str, Any] = {
    "lead_id": "L-1001", "needs_product": "Yes", "purchase_timeline_days": 21,
    "budget": "25,000", "contact_role": "Owner", "sentiment": "positive",
    "expected_deal_size": 60000, "last_contact_date": "2025-12-20", "company": "Acme Ltd",
}


def settings(**overrides: Any) -> Settings:
    """Settings from explicit values (the environment is cleared by an autouse fixture)."""
    base: dict[str, Any] = {"access_log": False, "reload_grace": 0.0}
    base.update(overrides)
    return Settings(**base)


def secured(**overrides: Any) -> Settings:
    """Settings with every key and secret configured (two HubSpot secrets: rotation)."""
    values: dict[str, Any] = {
        "api_keys": [API_KEY], "admin_key": ADMIN_KEY,
        "hubspot_secrets": ["old-secret", HUBSPOT_SECRET],
        "pipedrive_credentials": [f"{PIPEDRIVE_USER}:{PIPEDRIVE_PASSWORD}"],
        "generic_secrets": [GENERIC_SECRET]}
    return settings(**{**values, **overrides})


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of ``needle`` in ``text``: expected error locations."""
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def bearer(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def hubspot_headers(body: bytes, *, url: str = "http://testserver/v1/webhooks/hubspot",
                    secret: str = HUBSPOT_SECRET, skew: float = 0) -> dict[str, str]:
    """Signed as HubSpot does, ``skew`` seconds away from now."""
    stamp = str(int((time.time() + skew) * 1000))
    return {"X-HubSpot-Signature-v3": hubspot_v3_signature(secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}


def generic_headers(body: bytes, *, secret: str = GENERIC_SECRET,
                    skew: float = 0) -> dict[str, str]:
    """Signed with the generic scheme, ``skew`` seconds away from now."""
    stamp = int(time.time() + skew)
    return {"X-Qualify-Signature": generic_header(secret, body, stamp),
            "Content-Type": "application/json"}


def pipedrive_headers(user: str = PIPEDRIVE_USER,
                      password: str = PIPEDRIVE_PASSWORD) -> dict[str, str]:
    return {"Authorization": basic_header(user, password), "Content-Type": "application/json"}
