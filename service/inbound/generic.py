"""Any JSON object, signed with X-Qualify-Signature (the Stripe scheme)."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import Request

from qualify import Profile
from service.inbound.base import Event, Inbound, JsonBody, as_object
from service.settings import Settings
from service.signatures import GENERIC_SIGNATURE, verify_generic


class Generic(JsonBody):
    """Any JSON object, signed with X-Qualify-Signature (the Stripe scheme)."""

    setting = "QUALIFY_GENERIC_SECRETS"
    security: ClassVar[list[dict[str, list[str]]]] = [{"QualifySignature": []}]

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.secrets = [s.get_secret_value() for s in settings.generic_secrets]
        self.tolerance = settings.signature_tolerance

    def enabled(self) -> bool:
        return bool(self.secrets)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        verify_generic(self.secrets, body=body, header=request.headers.get(GENERIC_SIGNATURE),
                       now=now, tolerance=self.tolerance)

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        return Inbound([Event(as_object(payload, f"a '{self.name}' webhook body"))])


