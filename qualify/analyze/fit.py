"""Improve: points re-fitted from the outcome, written back as a rule base.

The model is an L2-regularised logistic regression (scikit-learn, ``C=1``) of the outcome
on the traits' fired indicators: the score is the base plus the points of the traits that
fire, so those are the weights a rule base can carry (qualifiers decide the status, not the
score, and are left as they are).

Scaling to the rule base's own scale: the coefficients are multiplied by one factor, chosen
so the largest |coefficient| becomes the largest |points| of the current traits; the score's
base, bounds and the grade thresholds keep their meaning on the same spread. Each result is
rounded to the nearest 5, as a person writes points. Sign conventions are kept: a golden
trait keeps points > 0 and a bad one < 0 (a fit that rounds to 0 gives the smallest step,
5 or -5). A trait whose fitted sign is against its kind keeps its current points and is
reported as a proposal to change its kind; a trait that fired for every lead or none has no
evidence and keeps its points.

The cross-validated AUC (``FOLDS`` stratified folds, seeded): on each held-out fold, the
AUC of the current score, and of the score from points fitted, scaled and rounded on the
other folds (and, to show what scaling and rounding cost, of the fitted coefficients
themselves); the means are reported.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qualify.analyze.collect import Dataset
from qualify.analyze.measure import rank_auc
from qualify.rulebook import Rule, Rulebook

C = 1.0  # inverse L2 strength (scikit-learn's default)
STEP = 5  # points are written in steps of 5
FOLDS = 5
SEED = 0
Floats = npt.NDArray[np.float64]


@dataclass(slots=True)
class Suggestion:
    """Suggested points per trait, and what the fit found."""

    points: dict[str, int]  # trait id -> the points written (current ones where kept)
    coefficients: dict[str, float]  # trait id -> fitted coefficient (log-odds)
    scale: float  # points per unit of log-odds
    flips: list[str] = field(default_factory=list)  # fitted sign against the kind
    no_evidence: list[str] = field(default_factory=list)  # fired for all leads or none
    cv_before: float = 0.0
    cv_after: float = 0.0
    cv_fitted: float = 0.0  # the fitted coefficients themselves, before scaling and rounding
    cv_folds: int = FOLDS


def _fit(x: Floats, y: npt.NDArray[np.bool_]) -> Floats:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=1000)
    model.fit(x, y)
    return np.asarray(model.coef_[0], dtype=float)


def round_points(value: float, kind: str) -> int:
    """The nearest multiple of STEP, never 0 or against the kind's sign."""
    p = int(STEP * round(value / STEP))
    if kind == "golden":
        return max(p, STEP)
    return min(p, -STEP)


def suggest_points(traits: tuple[Rule, ...], x: Floats,
                   y: npt.NDArray[np.bool_]) -> Suggestion:
    """Points for ``traits`` (columns of ``x``) fitted on outcomes ``y``."""
    varies = x.min(axis=0) != x.max(axis=0) if len(x) else np.zeros(len(traits), bool)
    coef = np.zeros(len(traits))
    if varies.any():
        coef[varies] = _fit(x[:, varies], y)
    current = max((abs(t.points) for t in traits), default=STEP) or STEP
    top = float(np.abs(coef).max()) if len(coef) else 0.0
    scale = current / top if top else 0.0
    s = Suggestion({}, {t.id: float(c) for t, c in zip(traits, coef, strict=True)}, scale)
    for t, c, v in zip(traits, coef, varies, strict=True):
        if not v:
            s.points[t.id] = t.points
            s.no_evidence.append(t.id)
        elif (c > 0) != (t.kind == "golden"):
            s.points[t.id] = t.points
            s.flips.append(t.id)
        else:
            s.points[t.id] = round_points(c * scale, t.kind)
    return s


def score_with(rb: Rulebook, x: Floats, points: dict[str, int]) -> Floats:
    """The scores the rule base gives with ``points``: base + fired points, within bounds."""
    p = np.asarray([points[t.id] for t in rb.traits], dtype=float)
    raw = rb.score_base + (x @ p if len(p) else np.zeros(len(x)))
    return np.clip(raw, rb.score_min, rb.score_max)


def suggest(data: Dataset) -> Suggestion:
    """The suggestion on all leads, with its cross-validated AUC before and after."""
    from sklearn.model_selection import StratifiedKFold

    rb = data.rulebook
    x, y, s = data.fired(), data.outcomes(), data.scores()
    out = suggest_points(rb.traits, x, y)
    before, after, fitted = [], [], []
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for train, test in folds.split(x, y):
        fold = suggest_points(rb.traits, x[train], y[train])
        before.append(rank_auc(y[test], s[test]))
        after.append(rank_auc(y[test], score_with(rb, x[test], fold.points)))
        coef = np.asarray([fold.coefficients[t.id] for t in rb.traits])
        fitted.append(rank_auc(y[test], x[test] @ coef))
    out.cv_before, out.cv_after = float(np.mean(before)), float(np.mean(after))
    out.cv_fitted = float(np.mean(fitted))
    return out


def rewrite(text: str, points: dict[str, int]) -> str:
    """The rule base ``text`` with the traits' points replaced; everything else (ids,
    labels, comments, order, quoting) as it was (ruamel.yaml round-trip)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(text)
    for t in doc.get("traits") or []:
        if t.get("id") in points and t.get("points") != points[t["id"]]:
            t["points"] = points[t["id"]]
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def write_suggestion(rules_text: str, suggestion: Suggestion, out: Path) -> str:
    new = rewrite(rules_text, suggestion.points)
    out.write_text(new, encoding="utf-8")
    return new
