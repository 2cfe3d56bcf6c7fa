"""Analyse: each rule against the outcome, and the fields that give the outcome away.

Per rule: a trait "fires" when it is in the verdict; a qualifier's row counts its leads
``met`` (with the rates of its ``unmet`` and ``unknown`` leads beside). Lift is the rate
when fired over the base rate. A rule *hurts* when its evidence runs against its points: a
golden trait (or a qualifier met) converting below the base rate, a bad trait above it.

Leakage: a field whose values alone predict the outcome almost perfectly was probably
recorded after it (a sales note, a judgement made on the call). For each field the rule base
reads (as mapped), every value (numbers in deciles, a blank as its own value) is measured;
the field is flagged when its near-pure values (at least ``PURE`` of their leads one outcome,
and ``MIN_LEADS`` leads or more) cover ``PURE_COVER`` of the leads or more, or when the field
alone ranks leads with an out-of-fold AUC of ``LEAK_AUC`` or more (each lead's value scored
by its conversion rate in the other folds).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from qualify.analyze.collect import Dataset
from qualify.analyze.measure import rank_auc, wilson

PURE = 0.98  # a value is near-pure when this share of its leads had one outcome ...
MIN_LEADS = 30  # ... over at least this many leads
PURE_COVER = 0.05  # a field leaks when its near-pure values cover this share of leads ...
LEAK_AUC = 0.95  # ... or when it alone reaches this AUC (out of fold)
FOLDS = 5
SEED = 0
BLANK = "(blank)"


@dataclass(frozen=True, slots=True)
class RuleStats:
    """One qualifier or trait against the outcome."""

    id: str
    kind: str  # golden, bad, qualifier
    points: int | None
    label: str
    fired: int
    converted_fired: int
    otherwise: int
    converted_otherwise: int
    base_rate: float
    states: dict[str, tuple[int, int]] = field(default_factory=dict)  # qualifier: state ->
    suggested_points: int | None = None  # (leads, converted); set by the fit

    @property
    def rate_when_fired(self) -> float | None:
        return self.converted_fired / self.fired if self.fired else None

    @property
    def rate_otherwise(self) -> float | None:
        return self.converted_otherwise / self.otherwise if self.otherwise else None

    @property
    def lift(self) -> float | None:
        r = self.rate_when_fired
        return r / self.base_rate if r is not None and self.base_rate else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.converted_fired, self.fired)

    @property
    def hurts(self) -> bool:
        """Its evidence runs against its points (the whole interval on the wrong side)."""
        if not self.fired:
            return False
        low, high = self.interval
        if self.kind == "bad":
            return low > self.base_rate
        return high < self.base_rate

    @property
    def agrees(self) -> bool | None:
        """The rate when fired is on the side of the base rate its points say."""
        r = self.rate_when_fired
        if r is None:
            return None
        return r < self.base_rate if self.kind == "bad" else r > self.base_rate


def rule_stats(data: Dataset) -> list[RuleStats]:
    """Qualifiers then traits, in rule-base order."""
    y = data.outcomes()
    base = float(y.mean())
    rb = data.rulebook
    locale = rb.locale
    out = []
    for q in rb.qualifiers:
        states = np.asarray(data.qualifiers[q.id])
        per = {s: (int((states == s).sum()), int(y[states == s].sum()))
               for s in ("met", "unmet", "unknown")}
        met = states == "met"
        out.append(_stats((q.id, "qualifier", None, q.label[locale]), met, y, base, per))
    for t in rb.traits:
        fired = np.asarray(data.traits[t.id], dtype=bool)
        out.append(_stats((t.id, t.kind, t.points, t.label[locale]), fired, y, base))
    return out


def _stats(rule: tuple[str, str, int | None, str], fired: npt.NDArray[np.bool_],
           y: npt.NDArray[np.bool_], base: float,
           states: dict[str, tuple[int, int]] | None = None) -> RuleStats:
    """``rule``: (id, kind, points, label)."""
    rid, kind, points, label = rule
    return RuleStats(rid, kind, points, label, int(fired.sum()), int(y[fired].sum()),
                     int((~fired).sum()), int(y[~fired].sum()), base, states or {})


def hurting_first(stats: list[RuleStats]) -> list[RuleStats]:
    """The rules that hurt first (worst lift for their kind first), then the rest in order."""
    def badness(r: RuleStats) -> float:
        rate = r.rate_when_fired or 0.0
        return rate - r.base_rate if r.kind == "bad" else r.base_rate - rate
    hurt = sorted((r for r in stats if r.hurts), key=badness, reverse=True)
    return hurt + [r for r in stats if not r.hurts]


# ----------------------------------------------------------------------------- leakage


@dataclass(frozen=True, slots=True)
class PureValue:
    value: str
    leads: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.leads


@dataclass(frozen=True, slots=True)
class Leak:
    """A field whose values alone give the outcome away, and the evidence."""

    field: str
    label: str
    auc: float  # the field alone, out of fold
    pure: list[PureValue]  # its near-pure values, most leads first
    known: int  # leads with a value
    read_by: tuple[str, ...] = ()  # the rules whose conditions read the field

    def cover(self, leads: int) -> float:
        return sum(p.leads for p in self.pure) / leads if leads else 0.0


def _number(v: Any) -> Any:
    """A number written as text ("674", as CSV gives it) as a number; anything else as is."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _keys(values: list[Any], numeric: bool = False) -> list[str]:
    """Each value as a category: numbers in deciles (of the known ones), lists joined.
    ``numeric``: the field is a number, so numbers written as text are read as numbers."""
    if numeric:
        values = [_number(v) for v in values]
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if nums and len(nums) == sum(v is not None for v in values) and len(set(nums)) > 10:
        edges = np.unique(np.quantile(np.asarray(nums, dtype=float), np.linspace(0, 1, 11)))
        out = []
        for v in values:
            if v is None:
                out.append(BLANK)
                continue
            i = int(np.searchsorted(edges, float(v), side="right"))
            low, high = edges[max(i - 1, 0)], edges[min(i, len(edges) - 1)]
            out.append(f"{low:g} to {high:g}")
        return out
    out = []
    for v in values:
        if v is None or v == "":
            out.append(BLANK)
        elif isinstance(v, list):
            out.append(";".join(sorted(str(x) for x in v)) or BLANK)
        elif isinstance(v, float):
            out.append(f"{v:g}")
        else:
            out.append(str(v))
    return out


def field_auc(keys: list[str], y: npt.NDArray[np.bool_], folds: int = FOLDS,
              seed: int = SEED) -> float:
    """The AUC of ``keys`` alone: each lead scored by its value's conversion rate in the
    other folds (values unseen there: the base rate), as max(AUC, 1 - AUC)."""
    n = len(keys)
    fold = np.random.default_rng(seed).permutation(n) % folds
    codes = np.unique(np.asarray(keys), return_inverse=True)[1]
    size = int(codes.max()) + 1
    pred = np.empty(n)
    for f in range(folds):
        train, test = fold != f, fold == f
        base = float(y[train].mean())
        count = np.bincount(codes[train], minlength=size)
        conv = np.bincount(codes[train], weights=y[train].astype(float), minlength=size)
        rate = np.where(count > 0, (conv + base) / (count + 1), base)
        pred[test] = rate[codes[test]]
    a = rank_auc(y, pred)
    return max(a, 1 - a)


def leaks(data: Dataset) -> list[Leak]:
    """The fields that leak the outcome, the strongest first."""
    y = data.outcomes()
    n = data.leads
    out = []
    for name, values in data.fields.items():
        if name == "lead_id":
            continue
        keys = _keys(values, str(data.rulebook.fields[name].type) in ("number", "integer"))
        counts: Counter[str] = Counter(keys)
        converted: Counter[str] = Counter(k for k, v in zip(keys, y, strict=True) if v)
        pure = [PureValue(k, c, converted[k]) for k, c in counts.most_common()
                if c >= MIN_LEADS and max(converted[k], c - converted[k]) >= PURE * c]
        a = field_auc(keys, y) if len(counts) > 1 else 0.5
        rb = data.rulebook
        readers = tuple(r.id for r in rb.rules if name in r.sources)
        leak = Leak(name, rb.fields[name].label[rb.locale], a, pure, n - counts[BLANK],
                    readers)
        if leak.cover(n) >= PURE_COVER or a >= LEAK_AUC:
            out.append(leak)
    return sorted(out, key=lambda lk: (-lk.auc, lk.field))
