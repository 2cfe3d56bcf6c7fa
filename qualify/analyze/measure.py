"""Measure: how well the score ranks leads by outcome, and conversion per group.

- AUC: ``sklearn.metrics.roc_auc_score`` of the score; its 95 % interval by DeLong's method
  (the fast midrank algorithm of Sun & Xu, 2014): deterministic, no resampling.
- Conversion per grade, status, next step and 10-point score band, each with its count and
  Wilson's 95 % interval.
- Gains: the share of all conversions found in the top 10 %, 20 % ... of leads by score.
  Leads tied on the score at a cut are taken at their tie group's conversion rate (the
  expected share when ties are broken at random), so the table does not depend on the
  input's order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qualify.analyze.collect import Dataset
from qualify.analyze.outcomes import AnalyzeError

Z95 = 1.959963984540054  # the normal quantile for a two-sided 95 % interval
BAND = 10  # score points per band
GAINS_STEPS = 10  # the gains table's rows: top 10 %, 20 % ... 100 %
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for k successes in n trials (0, 0 for n = 0)."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def auc(y: Bools, score: Floats) -> float:
    """The ROC AUC (scikit-learn's roc_auc_score): what the report prints."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def rank_auc(y: Bools, score: Floats) -> float:
    """The same AUC by midranks (Mann-Whitney): for the many internal ones (a field alone,
    cross-validation folds), without scikit-learn's per-call validation."""
    from scipy.stats import rankdata

    m = int(y.sum())
    n = len(y) - m
    ranks = rankdata(score)
    return float((ranks[y].sum() - m * (m + 1) / 2) / (m * n))


def delong(y: Bools, score: Floats, z: float = Z95) -> tuple[float, float, float]:
    """(AUC, low, high): DeLong's interval, by midranks (Sun & Xu 2014)."""
    from scipy.stats import rankdata

    pos, neg = score[y], score[~y]
    m, n = len(pos), len(neg)
    tx, ty = rankdata(pos), rankdata(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    a = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    v01 = (tz[:m] - tx) / n  # per positive: the share of negatives it outranks
    v10 = 1 - (tz[m:] - ty) / m  # per negative: the share of positives above it
    var = (v01.var(ddof=1) / m if m > 1 else 0.0) + (v10.var(ddof=1) / n if n > 1 else 0.0)
    se = math.sqrt(max(var, 0.0))
    return a, max(0.0, a - z * se), min(1.0, a + z * se)


@dataclass(frozen=True, slots=True)
class Group:
    """One value of a grouping (a grade, a status, a band) and how its leads converted."""

    key: str
    leads: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.leads if self.leads else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.converted, self.leads)

    def to_dict(self, name: str) -> dict[str, object]:
        low, high = self.interval
        return {name: self.key, "leads": self.leads, "converted": self.converted,
                "rate": self.rate, "low": low, "high": high}


def groups(keys: Sequence[str], y: Bools, order: Sequence[str] = ()) -> list[Group]:
    """Conversion per key: the keys of ``order`` first (those with leads), then the rest
    by number of leads."""
    counts: dict[str, list[int]] = {}
    for k, v in zip(keys, y, strict=True):
        c = counts.setdefault(k, [0, 0])
        c[0] += 1
        c[1] += int(v)
    known = [k for k in order if k in counts]
    rest = sorted((k for k in counts if k not in set(order)), key=lambda k: (-counts[k][0], k))
    return [Group(k, *counts[k]) for k in [*known, *rest]]


def band_of(score: int, low: int, high: int, width: int = BAND) -> str:
    """The band of ``score`` on the scale low..high: low to low+width-1, ... ; the last
    band ends at ``high`` (0-9, 10-19, ..., 90-100)."""
    last = max(high - low - 1, 0) // width
    i = min(max(score - low, 0) // width, last)
    start = low + i * width
    return f"{start}-{high if i == last else start + width - 1}"


def bands(data: Dataset) -> list[Group]:
    """Conversion per score band of ``BAND`` points, highest first."""
    rb = data.rulebook
    keys = [band_of(s, rb.score_min, rb.score_max) for s in data.score]
    found = groups(keys, data.outcomes())
    return sorted(found, key=lambda g: -int(g.key.split("-")[0]))


@dataclass(frozen=True, slots=True)
class Gain:
    share_of_leads: float  # the top share of leads by score
    leads: int
    converted: float  # expected conversions among them (ties at their group's rate)
    share_of_conversions: float


def gains(y: Bools, score: Floats, steps: int = GAINS_STEPS) -> list[Gain]:
    """The top 1/steps, 2/steps ... of leads by score, and their share of conversions."""
    n, total = len(y), int(y.sum())
    values = np.unique(score)[::-1]  # distinct scores, highest first
    size = np.array([(score == v).sum() for v in values])
    conv = np.array([y[score == v].sum() for v in values])
    above_n = np.concatenate([[0], np.cumsum(size)])  # leads strictly above each value
    above_c = np.concatenate([[0], np.cumsum(conv)])
    out = []
    for i in range(1, steps + 1):
        take = round(n * i / steps)
        g = int(np.searchsorted(above_n, take, side="right")) - 1  # the tie group cut
        got = float(above_c[g])
        if g < len(values):
            got += (take - above_n[g]) * conv[g] / size[g]
        out.append(Gain(i / steps, take, got, got / total if total else 0.0))
    return out


@dataclass(frozen=True, slots=True)
class Measures:
    leads: int
    converted: int
    auc: float
    auc_low: float
    auc_high: float
    grades: list[Group]
    statuses: list[Group]
    next_steps: list[Group]
    bands: list[Group]
    gains: list[Gain]

    @property
    def base_rate(self) -> float:
        return self.converted / self.leads if self.leads else 0.0


def check_classes(data: Dataset) -> None:
    """Both outcomes must be present, or nothing can be measured."""
    y = data.outcomes()
    if data.leads == 0:
        raise AnalyzeError(f"{data.source}: no lead could be analysed ({data.errors} could "
                           f"not be scored, {data.no_outcome} without an outcome)")
    if y.all() or not y.any():
        which = "converted" if y.all() else "did not convert"
        raise AnalyzeError(
            f"{data.source}: every analysed lead {which} (column '{data.outcome}'): an "
            "analysis needs both outcomes; check the column, or name the positive values "
            "with --positive")


def measure(data: Dataset) -> Measures:
    check_classes(data)
    y, s = data.outcomes(), data.scores()
    rb = data.rulebook
    a, low, high = delong(y, s)
    a = auc(y, s)
    statuses = ("qualified", "needs_discovery", "disqualified")
    return Measures(
        leads=data.leads, converted=int(y.sum()), auc=a, auc_low=low, auc_high=high,
        grades=groups(data.grade, y, [g.id for g in rb.grades]),
        statuses=groups(data.status, y, statuses),
        next_steps=groups(data.next_step, y, [s.id for s in rb.next_steps]),
        bands=bands(data), gains=gains(y, s))
