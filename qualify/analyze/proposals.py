"""Proposals: input columns no rule reads yet that relate to the outcome, each with its
strongest value as a condition to consider (marked as a proposal, never applied).

Only with a mapping (a CSV export): the columns it neither maps nor copies as keys. A column
with a value for almost every lead that is its own (an id), or that leaks the outcome (as
``rules.leaks`` judges fields), is not proposed; a leaking one is listed as such. The others
are ranked by their out-of-fold AUC alone; each proposal names the value (at least
``MIN_LEADS`` leads and ``MIN_SHARE`` of all) whose rate is furthest from the base rate,
as a golden or a bad trait.

Thresholds: for a trait that compares a number field with a number (``seconds_on_site >=
900``), the number that would rank leads best with the trait's points unchanged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from qualify.analyze.collect import Dataset
from qualify.analyze.measure import rank_auc
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


# ----------------------------------------------------------------------------- thresholds

OPS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
MIN_GAIN = 0.002  # an AUC gain smaller than this is not worth a change


@dataclass(frozen=True, slots=True)
class Threshold:
    """A trait of the form ``field op number`` and the number that ranks leads best."""

    trait: str
    field: str
    op: str
    current: float
    best: float
    auc_now: float  # the score's AUC, in sample
    auc_best: float  # with the best number, the points unchanged
    fired_now: int
    fired_best: int


def thresholds(data: Dataset) -> list[Threshold]:
    """For each trait whose condition is one comparison of a number field with a number:
    the candidate numbers (the known values' 5 % quantiles, and the current one), each
    tried in the score with the trait's points unchanged; the best reported when it gains
    at least ``MIN_GAIN`` of AUC. In sample: a proposal to check on other leads."""
    from qualify.conditions import Cmp

    y, score = data.outcomes(), data.scores()
    now = rank_auc(y, score)
    out = []
    for t in data.rulebook.traits:
        e = t.expr
        if not (isinstance(e, Cmp) and e.op in OPS and e.ref.kind == "field"
                and e.ref.type in ("number", "integer") and isinstance(e.value, int | float)
                and e.ref.source in data.fields):
            continue
        raw = [_number(v) for v in data.fields[e.ref.source]]
        known = np.asarray([isinstance(v, int | float) for v in raw])
        if known.sum() < MIN_LEADS:
            continue
        x = np.asarray([float(v) if k else np.nan for v, k in zip(raw, known, strict=True)])
        fired = np.asarray(data.traits[t.id], dtype=bool)
        rest = score - t.points * fired  # the score without this trait (before bounds:
        # exact unless the bounds cut, which the comparison below accepts)
        rb = data.rulebook
        candidates = np.unique(np.concatenate([np.quantile(x[known], np.linspace(0.05, 0.95,
                                                                                  19)),
                                               [float(e.value)]]))
        best, best_auc = float(e.value), now
        for c in candidates:
            new = known & OPS[e.op](np.where(known, x, 0.0), c)
            a = rank_auc(y, np.clip(rest + t.points * new, rb.score_min, rb.score_max))
            if a > best_auc + 1e-12:
                best, best_auc = float(c), a
        if best_auc >= now + MIN_GAIN:
            best_fired = int((known & OPS[e.op](np.where(known, x, 0.0), best)).sum())
            out.append(Threshold(t.id, e.ref.source, e.op, float(e.value), best, now,
                                 best_auc, int(fired.sum()), best_fired))
    return sorted(out, key=lambda th: th.auc_now - th.auc_best)
