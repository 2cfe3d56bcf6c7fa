"""Static tokens, for CRMs that cannot sign a webhook: Zoho CRM and Dataverse.

The token travels as a header or a URL parameter, however the CRM can be told to send it:

    X-Qualify-Token: <token>        a custom header (Zoho, Dataverse "HttpHeader")
    Authorization: Bearer <token>
    ?token=<token>                  a URL parameter (Zoho, Dataverse "HttpQueryString")
    ?code=<token>                   Dataverse "WebhookKey"

Tokens are compared in constant time against every configured one (rotation). Use HTTPS:
a token, unlike a signature, is worth stealing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from fastapi import Request
from pydantic import SecretStr

from service.inbound.base import TOKEN_SECURITY
from service.signatures import verify_token

TOKEN_HEADER = "X-Qualify-Token"
WHERE = f"{TOKEN_HEADER}, Authorization: Bearer, or ?token= / ?code="


def given_token(request: Request) -> str | None:
    """The token a request carries, wherever it is."""
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = request.query_params
    return query.get("token") or query.get("code")


def check_token(tokens: list[str], request: Request) -> None:
    """Accept a request carrying one of ``tokens`` or raise SignatureError."""
    verify_token(tokens, given_token(request), WHERE)


class TokenAuth:
    """The authentication half of a static-token adapter."""

    setting: str  # the variable that holds the tokens
    security: ClassVar[list[dict[str, list[str]]]] = TOKEN_SECURITY

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        self.tokens = [t.get_secret_value() for t in tokens]

    def enabled(self) -> bool:
        return bool(self.tokens)

    def authenticate(self, request: Request, body: bytes, now: float) -> None:
        check_token(self.tokens, request)
