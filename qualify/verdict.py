"""The verdict: what qualify says about one lead. Its keys are a contract for integrations."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["met", "unmet", "unknown"]
Status = Literal["qualified", "disqualified", "needs_discovery"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Evidence(_Out):
    """A value that decided a rule, and the test it passed or failed."""

    field: str = Field(description="the lead field, or the derived value, e.g. days_since(x)")
    value: Any = Field(description="the lead's value (dates as YYYY-MM-DD)")
    test: str = Field(description='the test applied, e.g. ">= 10000", "in [...]", "known"')
    holds: bool = Field(description="whether the test held for this value")


class RulebookRef(_Out):
    name: str
    version: str
    sha256: str


class QualifierVerdict(_Out):
    state: State
    label: str
    evidence: list[Evidence] = Field(description="the values that decided it (met or unmet)")
    missing: list[str] = Field(description="fields whose absence left it unknown")


class TraitHit(_Out):
    id: str
    kind: Literal["golden", "bad"]
    points: int
    label: str
    evidence: list[Evidence]


class Unknown(_Out):
    """A rule that could not be decided for lack of data."""

    id: str
    section: Literal["qualifier", "trait"]
    label: str
    missing: list[str] = Field(description="fields that would decide it")
    points: int = Field(description="points at stake: what the score gains or loses if it fires")
    could_change_status: bool = Field(description="true for qualifiers: deciding it may "
                                                  "change the status")


class Weakest(_Out):
    """The factor holding the lead back most: the shortest stave of the bucket (木桶原理)."""

    factor: str
    label: str
    reason: str
    points: int = Field(description="the points the factor's traits contributed")


class NextStep(_Out):
    id: str
    label: str
    reason: str


class Verdict(_Out):
    """The qualification of one lead by one rule base."""

    lead_id: str
    rulebook: RulebookRef
    as_of: dt.date = Field(description="the date date-rules used (reproducible verdicts)")
    locale: Literal["en", "zh"]
    qualifiers: dict[str, QualifierVerdict]
    status: Status
    score: int = Field(ge=0, le=100)
    grade: str
    traits: list[TraitHit] = Field(description="every trait that fired, in rule-base order")
    unknown: list[Unknown]
    weakest: Weakest | None
    next_step: NextStep
    explanation: list[str]
