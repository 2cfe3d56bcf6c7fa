"""Better thresholds and new conditions: supervised binning of each number, as credit
scorecards do.

For each number field of the rule base (as mapped) and, with a mapping, each number column
no rule reads: a decision tree on that one number (scikit-learn; at most ``MAX_BINS``
leaves, each with ``MIN_LEADS`` leads and ``MIN_SHARE`` of the known values or more,
monotonic in the direction of the number's rank correlation with the outcome) cuts it into
bins. (optbinning does this with a solver, but pulls in ortools, cvxpy, pandas and
matplotlib; a tree gives the same kind of cuts.) The evidence: each bin's leads,
conversions and weight of evidence, and the number's information value (IV: the sum over
bins of (share of the converted - share of the others) x WoE; a blank is a bin of its own).

The proposed condition is the tree's first cut, the best single split: ``field >= value``,
with the leads and the conversion rate (Wilson 95 %) on each side and the lift of the
side that converts more. A number with an IV under ``MIN_IV`` (a scorecard's "not useful"
band) is left out, and so is one that leaks the outcome. Proposals, in sample: to check on
other leads before they become rules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qualify.analyze.collect import Dataset
from qualify.analyze.measure import wilson
from qualify.analyze.rules import _number

MAX_BINS = 5
MIN_LEADS = 30  # a bin has at least this many leads ...
MIN_SHARE = 0.05  # ... and this share of the leads with a value
MIN_IV = 0.02  # below: not useful (Siddiqi's scorecard bands: 0.02 weak, 0.1 medium, 0.3 strong)
SUSPICIOUS_IV = 0.5  # above: too good; check the number was known before the outcome
MAX_NEW = 5  # proposals on numbers no rule reads yet
SMOOTH = 0.5  # added to each count in WoE and IV, so an empty side stays finite
SEED = 0
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Side:
    """Leads on one side of a cut and how they converted."""

    leads: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.converted, self.leads)


@dataclass(frozen=True, slots=True)
class Bin:
    low: float | None  # the bin holds low <= value < high (None: unbounded)
    high: float | None
    leads: int
    converted: int
    woe: float  # weight of evidence: ln(share of the converted / share of the others)
    blank: bool = False  # the leads with no value

    @property
    def rate(self) -> float:
        return self.converted / self.leads if self.leads else 0.0

    @property
    def text(self) -> str:
        if self.blank:
            return "(blank)"
        if self.low is None:
            return f"< {number_text(self.high or 0)}"
        if self.high is None:
            return f">= {number_text(self.low)}"
        return f"{number_text(self.low)} to < {number_text(self.high)}"


@dataclass(frozen=True, slots=True)
class Cut:
    """A proposed condition ``name >= value`` on one number, and its evidence."""

    name: str  # the field in conditions (for a column: the field to map it to)
    label: str
    column: str | None  # the input column, when no field reads it yet
    read_by: tuple[str, ...]  # rules reading the field
    now: tuple[str, ...]  # its comparisons in those rules, as written ("long_visit: ...")
    value: float
    at_least: Side  # the leads with value >= the cut
    below: Side
    blank: Side  # no value: the condition is undecided for them
    iv: float
    bins: tuple[Bin, ...]
    base_rate: float

    @property
    def condition(self) -> str:
        return f"{self.name} >= {number_text(self.value)}"

    @property
    def kind(self) -> str:
        """golden when the leads at or above the cut convert more, else bad."""
        return "golden" if (self.at_least.rate or 0) > (self.below.rate or 0) else "bad"

    @property
    def suspicious(self) -> bool:
        return self.iv >= SUSPICIOUS_IV

    @property
    def lift(self) -> float | None:
        """The rate of the side the condition selects, over the base rate."""
        r = self.at_least.rate
        return r / self.base_rate if r is not None and self.base_rate else None


def number_text(v: float) -> str:
    """A number as a person (and the rule language) writes it: 4, 715, 2.5."""
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def field_name(column: str) -> str:
    """A field name for an input column: 'Page Views Per Visit' -> page_views_per_visit."""
    name = re.sub(r"\W+", "_", column.strip().lower()).strip("_")
    return name if name and not name[0].isdigit() else f"f_{name}"


def numbers(values: list[Any]) -> Floats | None:
    """The values as floats (NaN where blank), or None when a known value is not a number."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None or v == "":
            continue
        x = _number(v)
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            return None
        out[i] = float(x)
    return out


def tree_cuts(x: Floats, y: Bools, max_bins: int = MAX_BINS) -> list[float]:
    """The cut points of a monotonic tree on ``x`` (known values only), the first cut (the
    best single split) first. Each is a value of ``x``: a cut c splits x < c | x >= c."""
    from scipy.stats import spearmanr
    from sklearn.tree import DecisionTreeClassifier

    known = ~np.isnan(x)
    xk, yk = x[known], y[known]
    if len(np.unique(xk)) < 2 or yk.all() or not yk.any():
        return []
    min_leaf = max(MIN_LEADS, math.ceil(MIN_SHARE * len(xk)))
    if len(xk) < 2 * min_leaf:
        return []
    rho = float(spearmanr(xk, yk).statistic)
    tree = DecisionTreeClassifier(max_leaf_nodes=max_bins, min_samples_leaf=min_leaf,
                                  monotonic_cst=[1 if rho >= 0 else -1], random_state=SEED)
    tree.fit(xk.reshape(-1, 1), yk)
    t = tree.tree_
    values = np.unique(xk)
    out = []
    for node in range(t.node_count):  # node 0 is the root: its split comes first
        if t.children_left[node] != t.children_right[node]:  # an inner node
            threshold = float(t.threshold[node])
            out.append(float(values[np.searchsorted(values, threshold, side="right")]))
    return out


def bins_of(x: Floats, y: Bools, cuts: list[float]) -> tuple[tuple[Bin, ...], float]:
    """The bins between ``cuts`` (and a blank bin when some values are blank), and the IV."""
    edges = sorted(set(cuts))
    known = ~np.isnan(x)
    pos, neg = int(y.sum()), int((~y).sum())
    idx = np.searchsorted(np.asarray(edges), x[known], side="right")
    groups = [(idx == i, (edges[i - 1] if i else None, edges[i] if i < len(edges) else None))
              for i in range(len(edges) + 1)]
    yk = y[known]
    counts = [(int(m.sum()), int(yk[m].sum()), lo_hi, False) for m, lo_hi in groups]
    if (~known).any():
        counts.append((int((~known).sum()), int(y[~known].sum()), (None, None), True))
    k = len(counts)
    out, iv = [], 0.0
    for n, c, (lo, hi), blank in counts:
        p = (c + SMOOTH) / (pos + SMOOTH * k)
        q = (n - c + SMOOTH) / (neg + SMOOTH * k)
        woe = math.log(p / q)
        iv += (p - q) * woe
        out.append(Bin(lo, hi, n, c, woe, blank))
    return tuple(out), iv


def cut_of(x: Floats, y: Bools) -> tuple[float, tuple[Bin, ...], float] | None:
    """(the first cut, the bins, the IV) of one number, or None if it cannot be cut."""
    found = tree_cuts(x, y)
    if not found:
        return None
    bins, iv = bins_of(x, y, found)
    return found[0], bins, iv


def cuts(data: Dataset, leaking: frozenset[str] = frozenset()) -> list[Cut]:
    """The numbers the rules read (better thresholds), by IV; then up to ``MAX_NEW`` numbers
    no rule reads (new conditions), by IV. ``leaking``: fields and columns left out."""
    from qualify.conditions import Cmp

    rb, y = data.rulebook, data.outcomes()
    base = float(y.mean())
    loc = rb.locale
    candidates: list[tuple[str, str, str | None, list[Any]]] = []  # name, label, column
    for name, values in data.fields.items():
        if str(rb.fields[name].type) in ("number", "integer") and name not in leaking:
            candidates.append((name, rb.fields[name].label[loc], None, values))
    for col, values in data.unread.items():
        if col not in leaking:
            candidates.append((field_name(col), col, col, values))
    read: list[Cut] = []
    new: list[Cut] = []
    for name, label, column, values in candidates:
        x = numbers(values)
        if x is None or len(np.unique(x[~np.isnan(x)])) > 0.5 * len(x):  # text, or an id
            continue
        found = cut_of(x, y)
        if found is None or found[2] < MIN_IV:
            continue
        value, bins, iv = found
        known = ~np.isnan(x)
        above = known & (np.where(known, x, -np.inf) >= value)
        below = known & ~above
        readers = () if column else tuple(r.id for r in rb.rules if name in r.sources)
        now = tuple(f"{t.id}: {t.text}" for t in rb.traits
                    if column is None and isinstance(t.expr, Cmp) and t.expr.ref.kind == "field"
                    and t.expr.ref.source == name)
        cut = Cut(name, label, column, readers, now, value,
                  Side(int(above.sum()), int(y[above].sum())),
                  Side(int(below.sum()), int(y[below].sum())),
                  Side(int((~known).sum()), int(y[~known].sum())), iv, bins, base)
        (read if readers else new).append(cut)
    read.sort(key=lambda c: (-c.iv, c.name))
    new.sort(key=lambda c: (-c.iv, c.name))
    return read + new[:MAX_NEW]
