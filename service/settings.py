"""Service settings, read from ``QUALIFY_*`` environment variables (pydantic-settings).

Lists (keys, secrets, credentials) are comma-separated, or a JSON list when a value itself
holds a comma: ``QUALIFY_API_KEYS=key-one,key-two`` or ``QUALIFY_API_KEYS='["a,b"]'``.
Secrets are ``SecretStr``: they never show in a repr or a log line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qualify.rulebook import default_rules_path

Secrets = Annotated[list[SecretStr], NoDecode]

MAX_BODY_BYTES = 1_048_576  # 1 MiB
MAX_BATCH = 1_000


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="QUALIFY_", extra="ignore", frozen=True)

    rules: Path = Field(default_factory=default_rules_path,
                        description="the rule base (YAML)")
    mappings: Path | None = Field(default=None, description="directory of webhook mapping "
                                  "profiles (default: mappings/ beside the rule base)")

    api_keys: Secrets = Field(default=[], description="bearer keys for scoring")
    admin_key: SecretStr | None = Field(default=None, description="bearer key for reload")

    hubspot_secrets: Secrets = Field(default=[], description="HubSpot app client secrets")
    pipedrive_credentials: Secrets = Field(default=[], description="user:password pairs")
    generic_secrets: Secrets = Field(default=[], description="secrets of X-Qualify-Signature")
    zoho_tokens: Secrets = Field(default=[], description="tokens Zoho CRM webhooks send "
                                 "(a header or URL parameter they are configured with)")
    dynamics_tokens: Secrets = Field(default=[], description="tokens Dataverse webhooks "
                                     "send (HttpHeader, WebhookKey or HttpQueryString)")
    salesforce_org_ids: Annotated[list[str], NoDecode] = Field(
        default=[], description="Salesforce organisations whose Outbound Messages are taken")
    signature_tolerance: int = Field(default=300, ge=1, le=3600,
                                     description="seconds a signed timestamp may be off")
    public_url: str | None = Field(default=None, description="the service's URL as CRMs "
                                   "call it (HubSpot signs it), e.g. https://qualify.example.com")
    replay_ttl: float = Field(default=900.0, ge=0, description="seconds a webhook answer is "
                              "kept for retries of the same delivery")
    replay_size: int = Field(default=2048, ge=0, description="answers kept for retries")

    database_url: str | None = Field(default=None, description="where delivery ids and the "
                                     "write-back outbox live: sqlite:///PATH or "
                                     "postgresql://user:password@host/db (default: a SQLite "
                                     "file in $XDG_STATE_HOME/qualify)")
    hubspot_token: SecretStr | None = Field(default=None, description="a HubSpot private "
                                            "app's access token: write verdicts back")
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_app_id: str | None = Field(default=None, description="the app id HubSpot names "
                                       "as an event's sourceId for our own writes")
    pipedrive_api_token: SecretStr | None = Field(default=None, description="a Pipedrive "
                                                  "API token: write verdicts back")
    pipedrive_api_url: str | None = Field(default=None, description="the company domain, "
                                          "e.g. https://acme.pipedrive.com")
    salesforce_client_id: str | None = Field(default=None, description="a connected "
                                             "app's consumer key (client credentials flow)")
    salesforce_client_secret: SecretStr | None = None
    salesforce_login_url: str = Field(default="https://login.salesforce.com", description=""
                                      "where tokens come from: your My Domain URL, e.g. "
                                      "https://acme.my.salesforce.com")
    salesforce_api_version: str = "v60.0"
    outbox_in_app: bool = Field(default=True, description="run the outbox in the app's "
                                "process; `qualify serve` runs it in a process of its own "
                                "(`qualify outbox`) and sets this off in its workers")
    outbox_nice: int = Field(default=10, ge=0, le=19, description="the outbox process's "
                             "niceness: the CPU goes to answering webhooks first, and the "
                             "outbox catches up when the load drops")
    outbox_max_attempts: int = Field(default=10, ge=1, le=100, description="attempts "
                                     "before a write-back job is dead-lettered")
    outbox_backoff: float = Field(default=2.0, gt=0, description="seconds before the "
                                  "first retry; doubles each attempt, with jitter")
    outbox_backoff_max: float = Field(default=3600.0, gt=0)
    outbox_poll: float = Field(default=0.5, gt=0, le=60, description="seconds between "
                               "looks for due jobs queued by other workers")
    outbox_lease: float = Field(default=120.0, gt=0, description="seconds a claimed job "
                                "is held before another worker may take it over")
    crm_timeout: float = Field(default=10.0, gt=0, description="seconds per CRM API call")
    delivery_retention: float = Field(default=172_800.0, gt=0, description="seconds a "
                                      "webhook delivery id is remembered (CRMs retry for "
                                      "up to 24 hours)")

    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1)
    body_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds a "
                                "request's body may take to arrive; then 408")
    header_timeout: float = Field(default=10.0, gt=0, le=3600, description="seconds a "
                                  "request's line and headers may take to arrive, from "
                                  "connecting (or from the first byte of a later request "
                                  "on a kept-alive connection); then 408, or closed if "
                                  "nothing came (service.transport)")
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576, description=""
                                  "bytes of request line and headers; more is answered "
                                  "431 and the connection closed")
    keep_alive_timeout: int = Field(default=5, ge=1, le=3600, description="seconds an "
                                    "idle kept-alive connection stays open (uvicorn's "
                                    "timeout_keep_alive): above a proxy's idle timeout for "
                                    "its upstream connections")
    max_connections: int = Field(default=10_000, ge=1, description="connections a worker "
                                 "serves at once (uvicorn's limit_concurrency): a request "
                                 "beyond them is answered 503; lowered to fit the open-file "
                                 "limit")
    max_batch: int = Field(default=MAX_BATCH, ge=1, le=100_000)
    inline_batch: int = Field(default=8, ge=0, description="batches up to this size are "
                              "scored on the event loop; larger ones in a worker thread")

    reload_grace: float = Field(default=10.0, ge=0, description="seconds the replaced "
                                "engine keeps serving requests that already hold it")
    reload_channel: Path | None = Field(default=None, description="file through which "
                                        "worker processes tell each other about reloads")
    reload_poll: float = Field(default=1.0, gt=0, le=60)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = True
    decision_log: Path | None = Field(default=None, description="JSON lines of each input "
                                      "and verdict, for audit (holds lead data)")
    opentelemetry: bool = Field(default=False, description="FastAPI's own OpenTelemetry "
                                "spans, metrics and logs (off: each request would look up "
                                "the providers, 5-7 % of a scored request's CPU)")

    @field_validator("api_keys", "hubspot_secrets", "pipedrive_credentials",
                     "generic_secrets", "zoho_tokens", "dynamics_tokens",
                     "salesforce_org_ids", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("admin_key", "hubspot_token", "pipedrive_api_token", "hubspot_app_id",
                     "pipedrive_api_url", "database_url", "salesforce_client_id",
                     "salesforce_client_secret", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", "hubspot_secrets", "pipedrive_credentials",
                     "generic_secrets", "zoho_tokens", "dynamics_tokens")
    @classmethod
    def _no_blank(cls, value: list[SecretStr]) -> list[SecretStr]:
        """An empty key would read as 'no keys' in one place and 'a key' in another: with
        QUALIFY_API_KEYS='[""]' the service served all interfaces with scoring open."""
        if any(not item.get_secret_value().strip() for item in value):
            raise ValueError("a key or secret is empty: remove it, or give it a value")
        return value

    @field_validator("pipedrive_credentials")
    @classmethod
    def _user_password(cls, value: list[SecretStr]) -> list[SecretStr]:
        for item in value:
            if ":" not in item.get_secret_value():
                raise ValueError("each Pipedrive credential is user:password")
        return value

    @property
    def mappings_dir(self) -> Path:
        return self.mappings if self.mappings is not None else self.rules.parent / "mappings"

    @property
    def open_access(self) -> bool:
        """No API key is configured: scoring answers only clients on the same machine."""
        return not self.api_keys
