"""The analysis as text (what ``qualify analyze`` prints) and as data (``--format json``).

Rates are fractions of 1 in JSON and percentages with one decimal in text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qualify.analyze.binning import MIN_IV, Cut, Side
from qualify.analyze.collect import Dataset
from qualify.analyze.control import Plan
from qualify.analyze.fit import FOLDS, Suggestion
from qualify.analyze.measure import Group, Measures
from qualify.analyze.proposals import Proposal, Threshold
from qualify.analyze.rules import LEAK_AUC, MIN_LEADS, PURE, PURE_COVER, Leak, RuleStats

MAX_PURE_SHOWN = 4  # near-pure values shown per leaking field


@dataclass(slots=True)
class Analysis:
    data: Dataset
    measures: Measures
    rules: list[RuleStats]  # the ones that hurt first
    leaks: list[Leak]
    suggestion: Suggestion | None = None
    suggested_file: str | None = None
    diff: list[str] | None = None  # rules diff, text
    plan: Plan | None = None
    proposals: list[Proposal] | None = None  # input columns no rule reads (with --map)
    thresholds: list[Threshold] | None = None  # better numbers for traits' comparisons
    cuts: list[Cut] | None = None  # supervised binning: proposed conditions on numbers


def analyse(data: Dataset, *, improve: bool = True) -> Analysis:
    """Measure and analyse ``data`` (with its fields' leakage); ``improve``: also propose
    columns, thresholds and binned conditions (``qualify analyze``; ``batch --outcome`` only
    measures and analyses). Raises AnalyzeError (one outcome)."""
    from qualify.analyze.binning import cuts
    from qualify.analyze.measure import measure
    from qualify.analyze.proposals import proposals, thresholds
    from qualify.analyze.rules import hurting_first, leaks, rule_stats

    a = Analysis(data, measure(data), hurting_first(rule_stats(data)), leaks(data))
    if improve:
        a.proposals = proposals(data)
        a.thresholds = thresholds(data)
        leaking = {lk.field for lk in a.leaks} | {p.column for p in a.proposals if p.leaks}
        a.cuts = cuts(data, frozenset(leaking))
    return a


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _label(a: Analysis, kind: str, key: str) -> str:
    rb = a.data.rulebook
    loc = rb.locale
    if kind == "grade":
        return next((g.label[loc] for g in rb.grades if g.id == key), "")
    if kind == "next step":
        return next((s.label[loc] for s in rb.next_steps if s.id == key), "")
    return ""


def _table(a: Analysis, kind: str, rows: list[Group]) -> Iterator[str]:
    yield f"  {kind:<36} {'leads':>7} {'converted':>10} {'rate':>8}   95 % interval"
    for g in rows:
        low, high = g.interval
        name = f"{g.key}  {_label(a, kind, g.key)}".rstrip()
        yield (f"  {name[:36]:<36} {g.leads:>7,} {g.converted:>10,} {pct(g.rate):>8}   "
               f"{pct(low)} to {pct(high)}")


def text(a: Analysis) -> Iterator[str]:
    d, rb = a.data, a.data.rulebook
    yield (f"{d.source}: outcome '{d.outcome}', rule base {rb.name} v{rb.version} "
           f"(sha256 {rb.sha256[:12]}), as of {d.as_of.isoformat()}")
    unknown = sum(d.unknown_outcomes.values())
    yield (f"rows {d.rows:,}: {d.leads:,} analysed, {d.errors:,} could not be scored, "
           f"{d.no_outcome:,} without an outcome"
           + (f" ({unknown:,} unreadable: "
              + ", ".join(f"{v!r} {k}" for v, k in d.unknown_outcomes.most_common(3)) + ")"
              if unknown else ""))
    for line in d.error_lines:
        yield f"  {line}"
    yield from measure_lines(a)
    yield from rules_lines(a)
    yield from _rest(a)


def measure_lines(a: Analysis) -> Iterator[str]:
    """The measure section (also in ``qualify batch --outcome``)."""
    m = a.measures
    yield ""
    yield "measure"
    yield (f"  leads {m.leads:,}, converted {m.converted:,}, base rate {pct(m.base_rate)}")
    yield (f"  AUC of the score {m.auc:.3f} (95 % interval {m.auc_low:.3f} to "
           f"{m.auc_high:.3f}, DeLong)")
    for kind, rows in (("grade", m.grades), ("status", m.statuses),
                       ("next step", m.next_steps), ("score band", m.bands)):
        yield ""
        yield from _table(a, kind, rows)
    yield ""
    yield "  gains: the top leads by score and their share of all conversions"
    for g in m.gains:
        yield (f"    top {100 * g.share_of_leads:>3.0f} %  {g.leads:>7,} leads  "
               f"{pct(g.share_of_conversions):>8} of conversions")


def rules_lines(a: Analysis) -> Iterator[str]:
    """Each rule against the outcome (also in ``qualify batch --outcome``)."""
    yield ""
    yield "analyse"
    hurt = [r for r in a.rules if r.hurts]
    yield ("  rules that hurt (their rate's 95 % interval on the wrong side of the base rate): "
           + (", ".join(r.id for r in hurt) if hurt else "none"))
    head = (f"  {'rule':<22} {'kind':<9} {'points':>6} {'fired':>7} {'rate fired':>10} "
            f"{'otherwise':>10} {'lift':>5}")
    if a.suggestion is not None:
        head += f" {'suggested':>9}"
    yield head
    for r in a.rules:
        lift = "-" if r.lift is None else f"{r.lift:.2f}"
        pts = "" if r.points is None else f"{r.points:+d}"
        line = (f"  {r.id[:22]:<22} {r.kind:<9} {pts:>6} {r.fired:>7,} "
                f"{pct(r.rate_when_fired):>10} {pct(r.rate_otherwise):>10} {lift:>5}")
        if a.suggestion is not None:
            sp = a.suggestion.points.get(r.id)
            line += f" {'' if sp is None else f'{sp:+d}':>9}"
        if r.hurts:
            line += "  HURTS"
        elif r.agrees is False:
            line += "  against its points, within chance"
        yield line.rstrip()


def leak_lines(a: Analysis) -> Iterator[str]:
    """The fields that leak the outcome (also in ``qualify batch --outcome``)."""
    m = a.measures
    yield ""
    yield (f"  leakage (a field alone: out-of-fold AUC >= {LEAK_AUC}, or values >= "
           f"{100 * PURE:.0f} % one outcome over >= {MIN_LEADS} leads each covering >= "
           f"{100 * PURE_COVER:.0f} % of leads): "
           + (", ".join(lk.field for lk in a.leaks) if a.leaks else "none"))
    for lk in a.leaks:
        yield (f"    {lk.field} ({lk.label}): alone AUC {lk.auc:.3f}; near-pure values cover "
               f"{pct(lk.cover(m.leads))} of leads; probably recorded after the outcome")
        yield ("      read by " + ", ".join(lk.read_by) if lk.read_by
               else "      read by no rule: keep it out")
        for pv in lk.pure[:MAX_PURE_SHOWN]:
            yield f"      {pv.value!r}: {pv.leads:,} leads, {pct(pv.rate)} converted"


def _rest(a: Analysis) -> Iterator[str]:
    yield from leak_lines(a)
    if a.proposals:
        yield ""
        yield ("  proposals: input columns no rule reads yet, by their AUC alone (out of "
               "fold), each with its strongest value")
        for pr in a.proposals:
            if pr.leaks:
                yield (f"    {pr.column}: alone AUC {pr.auc:.3f}, but it leaks the outcome: "
                       "keep it out")
                continue
            yield (f"    {pr.column}: alone AUC {pr.auc:.3f}; a {pr.kind} trait when it is "
                   f"{pr.value!r}? {pr.leads:,} leads, {pct(pr.rate)} converted")
    if a.thresholds:
        yield ""
        yield ("  proposals: thresholds that would rank leads better, the points unchanged "
               "(in sample: check on other leads)")
        for th in a.thresholds:
            yield (f"    {th.trait}: {th.field} {th.op} {th.best:g} instead of {th.current:g}: "
                   f"AUC {th.auc_now:.3f} -> {th.auc_best:.3f}, fired for "
                   f"{th.fired_now:,} -> {th.fired_best:,} leads")
    if a.cuts:
        yield ""
        yield (f"  proposals: conditions on numbers by supervised binning (a monotonic tree; "
               f"IV >= {MIN_IV}; in sample: check on other leads)")
        for c in a.cuts:
            yield from _cut_lines(c)
    if a.suggestion is not None:
        s = a.suggestion
        yield ""
        yield "improve"
        yield (f"  points fitted by an L2 logistic regression on the traits, scaled "
               f"{s.scale:.2f} points per unit of log-odds, rounded to 5")
        yield (f"  AUC, {FOLDS}-fold cross-validated: {s.cv_before:.3f} with the current "
               f"points, {s.cv_after:.3f} with the suggested ones ({s.cv_fitted:.3f} with the "
               "fitted weights before rounding)")
        for t in s.flips:
            kind = next(r.kind for r in a.rules if r.id == t)
            other = "bad" if kind == "golden" else "golden"
            yield (f"  proposal: {t} fits as {other} (coefficient "
                   f"{s.coefficients[t]:+.2f}); its points are kept: change its kind, or "
                   "its condition")
        for t in s.no_evidence:
            yield f"  {t}: fired for every lead or none; its points are kept"
        if a.suggested_file:
            yield f"  wrote {a.suggested_file}"
        for line in a.diff or []:
            yield f"  {line}"
    if a.plan is not None:
        p = a.plan
        yield ""
        yield f"control: leads needed for {p.target:,} conversions at the measured rates"
        yield ("  from the top by score: "
               + (f"{p.top_leads:,} leads (scores {p.top_score} and up)"
                  if p.top_leads is not None else
                  f"not reachable ({p.converted:,} converted in all)"))
        yield ("  whole grades, best first: "
               + (f"{p.grades_down:,} leads" if p.grades_down is not None
                  else "not reachable"))
        for need in p.per_grade:
            if need.leads_needed is None:
                yield f"  grade {need.grade}: no conversions measured"
                continue
            yield (f"  grade {need.grade} only: {need.leads_needed:,} leads at "
                   f"{pct(need.rate)} ({need.available:,} available"
                   f"{'' if need.enough else ', too few'})")


def _side(name: str, side: Side) -> str:
    low, high = side.interval
    return (f"{name} {side.leads:,} leads, {pct(side.rate)} converted ({pct(low)} to "
            f"{pct(high)})")


def _cut_lines(c: Cut) -> Iterator[str]:
    where = (f"column '{c.column}', not mapped yet" if c.column
             else "read by " + ", ".join(c.read_by) if c.read_by else "read by no rule")
    lift = "-" if c.lift is None else f"{c.lift:.2f}"
    yield (f"    {c.label} ({where}): {c.condition} as a {c.kind} trait; IV {c.iv:.3f}, "
           f"lift {lift}" + ("; IV over 0.5: check it is known before the outcome"
                             if c.suspicious else ""))
    for now in c.now:
        yield f"      now {now}"
    yield f"      {_side('at or above:', c.at_least)}; {_side('below:', c.below)}" + (
        f"; blank: {c.blank.leads:,}" if c.blank.leads else "")
    yield "      bins: " + ", ".join(f"{b.text} {pct(b.rate)} ({b.leads:,})" for b in c.bins)


def cut_json(c: Cut) -> dict[str, Any]:
    def side(s: Side) -> dict[str, Any]:
        return {"leads": s.leads, "converted": s.converted, "rate": s.rate,
                "interval": list(s.interval)}
    return {"field": c.name, "label": c.label, "column": c.column, "read_by": list(c.read_by),
            "now": list(c.now), "condition": c.condition, "value": c.value, "kind": c.kind,
            "iv": c.iv, "lift": c.lift, "suspicious": c.suspicious,
            "at_least": side(c.at_least), "below": side(c.below), "blank": side(c.blank),
            "bins": [{"low": b.low, "high": b.high, "blank": b.blank, "leads": b.leads,
                      "converted": b.converted, "rate": b.rate, "woe": b.woe}
                     for b in c.bins]}


def to_json(a: Analysis) -> dict[str, Any]:
    d, m, rb = a.data, a.measures, a.data.rulebook
    s = a.suggestion
    out: dict[str, Any] = {
        "input": d.source, "outcome": d.outcome, "as_of": d.as_of.isoformat(),
        "rulebook": {"name": rb.name, "version": rb.version, "sha256": rb.sha256},
        "rows": d.rows, "errors": d.errors, "no_outcome": d.no_outcome,
        "unknown_outcomes": dict(d.unknown_outcomes),
        "leads": m.leads, "converted": m.converted, "base_rate": m.base_rate,
        "auc": m.auc, "auc_interval": [m.auc_low, m.auc_high], "auc_method": "DeLong",
        "grades": [g.to_dict("grade") for g in m.grades],
        "statuses": [g.to_dict("status") for g in m.statuses],
        "next_steps": [g.to_dict("next_step") for g in m.next_steps],
        "score_bands": [g.to_dict("band") for g in m.bands],
        "gains": [{"share_of_leads": g.share_of_leads, "leads": g.leads,
                   "converted": g.converted, "share_of_conversions": g.share_of_conversions}
                  for g in m.gains],
        "rules": [{"id": r.id, "kind": r.kind, "points": r.points, "fired": r.fired,
                   "converted_when_fired": r.converted_fired,
                   "rate_when_fired": r.rate_when_fired, "rate_otherwise": r.rate_otherwise,
                   "lift": r.lift, "agrees": r.agrees, "hurts": r.hurts,
                   "states": {k: {"leads": n, "converted": c}
                              for k, (n, c) in r.states.items()} or None,
                   "suggested_points": s.points.get(r.id) if s else None}
                  for r in a.rules],
        "leaks": [{"field": lk.field, "auc": lk.auc, "cover": lk.cover(m.leads),
                   "read_by": list(lk.read_by),
                   "pure_values": [{"value": p.value, "leads": p.leads, "rate": p.rate}
                                   for p in lk.pure]} for lk in a.leaks],
    }
    out["proposals"] = [{"column": p.column, "auc": p.auc, "value": p.value, "kind": p.kind,
                         "leads": p.leads, "converted": p.converted, "rate": p.rate,
                         "leaks": p.leaks} for p in a.proposals or []]
    out["thresholds"] = [{"trait": t.trait, "field": t.field, "op": t.op,
                          "current": t.current, "best": t.best, "auc_now": t.auc_now,
                          "auc_best": t.auc_best, "fired_now": t.fired_now,
                          "fired_best": t.fired_best} for t in a.thresholds or []]
    out["binning"] = [cut_json(c) for c in a.cuts or []]
    if s is not None:
        out["suggestion"] = {"file": a.suggested_file, "scale": s.scale,
                             "coefficients": s.coefficients, "points": s.points,
                             "flips": s.flips, "no_evidence": s.no_evidence,
                             "cv_folds": s.cv_folds, "cv_auc_before": s.cv_before,
                             "cv_auc_after": s.cv_after,
                             "cv_auc_fitted": s.cv_fitted, "diff": a.diff}
    if a.plan is not None:
        p = a.plan
        out["control"] = {
            "target": p.target, "top_leads": p.top_leads, "top_score": p.top_score,
            "grades_down": p.grades_down,
            "per_grade": [{"grade": g.grade, "rate": g.rate, "leads_needed": g.leads_needed,
                           "available": g.available} for g in p.per_grade]}
    return out
