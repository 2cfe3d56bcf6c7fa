"""What a rule base decided for one lead, in the terms authors test and compare: status,
score, grade, next step, the traits that fired and each qualifier's state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qualify.engine import Decision
from qualify.rulebook import Rulebook


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    score: int
    grade: str
    step: str
    traits: tuple[str, ...]  # fired, in rule-base order
    qualifiers: Mapping[str, str]  # id -> met | unmet | unknown

    @classmethod
    def of(cls, rb: Rulebook, d: Decision) -> Outcome:
        n = len(rb.qualifiers)
        traits = tuple(t.id for t, s in zip(rb.traits, d.states[n:], strict=True) if s)
        states = {q.id: "met" if s else "unknown" if s is None else "unmet"
                  for q, s in zip(rb.qualifiers, d.states[:n], strict=True)}
        return cls(d.status, d.score, d.grade, d.step.id, traits, states)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "score": self.score, "grade": self.grade,
                "next_step": self.step, "traits": list(self.traits),
                "qualifiers": dict(self.qualifiers)}
