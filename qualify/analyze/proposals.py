"""Proposals: input columns no rule reads yet that relate to the outcome, each with its
strongest value as a condition to consider (marked as a proposal, never applied).

Only with a mapping (a CSV export): the columns it neither maps nor copies as keys. A column
with a value for almost every lead that is its own (an id), or that leaks the outcome (as
``rules.leaks`` judges fields), is not proposed; a leaking one is listed as such. The others
are ranked by their out-of-fold AUC alone; each proposal names the value (at least
``MIN_LEADS`` leads and ``MIN_SHARE`` of all) whose rate is furthest from the base rate,
as a golden or a bad trait.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from qualify.analyze.collect import Dataset
from qualify.analyze.rules import (
    BLANK,
    LEAK_AUC,
    MIN_LEADS,
    PURE,
    PURE_COVER,
    _keys,
    _number,
    field_auc,
)

MIN_AUC = 0.6  # a column alone must rank at least this well to be proposed
MIN_SHARE = 0.02  # the proposed value covers this share of leads or more
ID_LIKE = 0.5  # more distinct values than this share of leads: an id, not a signal
MAX_PROPOSALS = 5


@dataclass(frozen=True, slots=True)
class Proposal:
    column: str
    auc: float  # the column alone, out of fold
    value: str  # its strongest value
    kind: str  # golden (converts above the base rate) or bad
    leads: int
    converted: int
    leaks: bool  # the column gives the outcome away: do not use it

    @property
    def rate(self) -> float:
        return self.converted / self.leads


def proposals(data: Dataset) -> list[Proposal]:
    y = data.outcomes()
    n = data.leads
    base = float(y.mean())
    out = []
    for column, raw in data.unread.items():
        numeric = all(isinstance(_number(v), float) for v in raw if v not in (None, ""))
        keys = _keys(raw, numeric)
        counts: Counter[str] = Counter(keys)
        if len(counts) < 2 or len(counts) > ID_LIKE * n:
            continue
        converted: Counter[str] = Counter(k for k, v in zip(keys, y, strict=True) if v)
        a = field_auc(keys, y)
        pure = sum(c for k, c in counts.items() if c >= MIN_LEADS
                   and max(converted[k], c - converted[k]) >= PURE * c)
        leaks = a >= LEAK_AUC or pure >= PURE_COVER * n
        if a < MIN_AUC and not leaks:
            continue
        candidates = [k for k, c in counts.items() if k != BLANK and c >= MIN_LEADS
                      and c >= MIN_SHARE * n]
        if not candidates:
            continue
        best = max(candidates, key=lambda k: (abs(converted[k] / counts[k] - base), k))
        rate = converted[best] / counts[best]
        out.append(Proposal(column, a, best, "golden" if rate > base else "bad",
                            counts[best], converted[best], leaks))
    out.sort(key=lambda p: (-p.auc, p.column))
    return out[:MAX_PROPOSALS]
