"""Request and response models of the HTTP API (the verdict itself is ``qualify.Verdict``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qualify import Verdict
from service.errors import ErrorBody


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RulebookRef(_Model):
    name: str
    version: str
    sha256: str = Field(description="SHA-256 of the rule base file: names it exactly")


# ----------------------------------------------------------------------------- batch


class BatchRequest(_Model):
    leads: list[Any] = Field(description="up to 1,000 leads (JSON objects); each is "
                             "scored on its own")


class LeadProblem(_Model):
    field: str | None = Field(description="the offending field (null: the lead itself)")
    message: str


class BatchOk(_Model):
    ok: Literal[True]
    verdict: Verdict


class BatchFailed(_Model):
    ok: Literal[False]
    error: LeadProblem


class BatchResult(_Model):
    rulebook: RulebookRef = Field(description="the one rule base every lead was scored by")
    count: int
    ok: int
    failed: int
    results: list[BatchOk | BatchFailed] = Field(description="one per lead, in order")


# ----------------------------------------------------------------------------- webhooks


class WebhookResult(_Model):
    source: str
    delivery_id: str | None = Field(description="the CRM's event id, when it sends one")
    replayed: bool = Field(description="true: a retry of a delivery already answered; "
                           "this is the same answer")
    scored: bool
    queued: bool = Field(default=False, description="true: the verdict's write-back to "
                         "the CRM record is queued")
    reason: str | None = Field(default=None, description="why nothing was scored")
    verdict: Verdict | None = None


class WebhookEvents(_Model):
    """The answer to a list of thin events (HubSpot app webhooks)."""

    source: str
    events: int = Field(description="events in the delivery")
    queued: int = Field(description="records queued to be fetched, scored and written back")
    replayed: int = Field(description="events seen before (a retry): nothing queued again")
    skipped: int = Field(description="events that need no scoring (deletes, our own "
                         "writes, objects the profile does not score)")
    reason: str | None = None


# ----------------------------------------------------------------------------- rule base


class FieldInfo(_Model):
    type: str
    label: dict[str, str]
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    required: bool


class RuleInfo(_Model):
    id: str
    kind: str = Field(description="qualifier, golden, bad or next_step")
    label: dict[str, str]
    when: str = Field(description="the condition as written in the rule base")
    points: int | None = None
    factor: str | None = None


class GradeInfo(_Model):
    id: str
    min_score: int
    label: dict[str, str]


class ProblemInfo(_Model):
    file: str
    line: int
    column: int
    code: str
    message: str
    hint: str | None
    severity: str
    text: str = Field(description="file:line:col: code: message (hint)")


class RulebookInfo(_Model):
    name: str
    version: str
    sha256: str
    loaded_at: dt.datetime
    locale: str
    currency: str | None
    score: dict[str, int] = Field(description="base, min and max")
    fields: dict[str, FieldInfo]
    factors: dict[str, dict[str, str]]
    qualifiers: list[RuleInfo]
    traits: list[RuleInfo]
    grades: list[GradeInfo]
    next_steps: list[RuleInfo]
    sources: list[str] = Field(description="webhook sources: /v1/webhooks/{source}")
    warnings: list[ProblemInfo]


class ReloadResult(_Model):
    status: Literal["reloaded", "unchanged"]
    rulebook: RulebookRef
    loaded_at: dt.datetime
    previous: RulebookRef | None
    sources: list[str]
    warnings: list[ProblemInfo]


class ReloadFailed(ErrorBody):
    problems: list[ProblemInfo] = Field(description="every problem found, with its location")
    serving: RulebookRef = Field(description="the rule base still in use")


# ----------------------------------------------------------------------------- operations


class Health(_Model):
    status: Literal["ok"]


class Ready(_Model):
    status: Literal["ready", "not_ready"]
    rulebook: RulebookRef | None = None
