"""``qualify analyze --report``: the analysis as one self-contained HTML page for a sales
manager (inline CSS and SVG; no scripts, no network; every value escaped).

Sections: the call-first list (the top leads, with a CSV of the whole list as a data:
link), conversion per grade (counts, rates, Wilson intervals), the gains chart, calibration
(each grade's scores against its observed rate, and the rate per score band), the rules
that help and hurt, fields that leak the outcome, proposals, and with --suggest / --target
their results. Traits, fields, grades and next steps are shown by their labels.
``outcome_sections`` is the part ``qualify batch --outcome --report`` adds to its page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from qualify.analyze.binning import Cut, Side
from qualify.analyze.calls import CallList, columns, csv_text, label_of, rows, save
from qualify.analyze.measure import Group
from qualify.analyze.report import MAX_PURE_SHOWN, Analysis, pct
from qualify.analyze.rules import RuleStats
from qualify.batch.report import BAR, CSS

SHOWN_CALLS = 25  # leads listed in the page
LINKED_CALLS = 2000  # leads in the page's CSV link (--call-list writes them all)
GOOD, BAD, GREY = "#2e7d32", "#c62828", "#8a93a6"
EXTRA_CSS = """
.scroll{overflow-x:auto;max-width:100%}table.wide{width:100%}td.why{text-align:left;
min-width:14rem}.an td,.an th{white-space:nowrap}
td.why,td.wrap{white-space:normal;text-align:left}
.hurts{color:#c62828;font-weight:600}.helps{color:#2e7d32}.note{color:#667;font-size:13px}
a.button{display:inline-block;margin:.4rem 0;padding:.3rem .8rem;border:1px solid #3f6fb5;
border-radius:4px;color:#3f6fb5;text-decoration:none}h3{font-size:1rem;margin-bottom:.3rem}
"""


def _n(value: int) -> str:
    return f"{value:,}"


def _grade_name(a: Analysis, grade: str) -> str:
    label = label_of(a.data, "grade", grade)
    return grade if label == grade else f"{grade} · {label}"


def rate_bars(items: Sequence[tuple[str, Group]], base_rate: float) -> str:
    """One bar per group: its conversion rate, the Wilson 95 % interval as a whisker, the
    base rate as a dashed line; the count at the end."""
    if not items:
        return "<p class=meta>none</p>"
    label_w = min(max(len(label) for label, _ in items) * 7 + 12, 230)
    width, row_h = 600, 24
    bar_w = width - label_w - 150
    top = max(*(g.interval[1] for _, g in items), base_rate, 0.01)
    height = row_h * len(items) + 22
    x0 = label_w
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    for i, (label, g) in enumerate(items):
        y = i * row_h + 2
        low, high = g.interval
        w = max(bar_w * g.rate / top, 1)
        lx, hx = x0 + bar_w * low / top, x0 + bar_w * high / top
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{escape(label[:32])}</text>'
            f'<rect x="{x0}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{BAR}">'
            f"<title>{escape(label)}: {pct(g.rate)} of {_n(g.leads)} converted (95 % "
            f"interval {pct(low)} to {pct(high)})</title></rect>"
            f'<line x1="{lx:.1f}" x2="{hx:.1f}" y1="{y + 12}" y2="{y + 12}" stroke="#1d2330" '
            f'stroke-width="1.5"/><line x1="{lx:.1f}" x2="{lx:.1f}" y1="{y + 8}" y2="{y + 16}" '
            f'stroke="#1d2330"/><line x1="{hx:.1f}" x2="{hx:.1f}" y1="{y + 8}" y2="{y + 16}" '
            f'stroke="#1d2330"/>'
            f'<text x="{max(hx, x0 + w) + 6:.1f}" y="{y + 16}">{pct(g.rate)} '
            f"({_n(g.leads)})</text>")
    bx = x0 + bar_w * base_rate / top
    parts.append(f'<line x1="{bx:.1f}" x2="{bx:.1f}" y1="0" y2="{height - 18}" stroke="{GREY}" '
                 f'stroke-dasharray="4 3"/><text x="{bx:.1f}" y="{height - 4}" '
                 f'text-anchor="middle" fill="{GREY}">base {pct(base_rate)}</text></svg>')
    return "".join(parts)


def gains_chart(a: Analysis) -> str:
    """Share of conversions found (y) against share of leads called, best score first
    (x): the score's curve, random order (the diagonal) and a perfect ranking."""
    m = a.measures
    size, pad = 300, 40
    width, height = size + pad + 20, size + pad + 10

    def x_of(share_of_leads: float) -> float:
        return pad + size * share_of_leads

    def y_of(share_of_conversions: float) -> float:
        return 10 + size * (1 - share_of_conversions)

    def px(share_of_leads: float, share_of_conversions: float) -> str:
        return f"{x_of(share_of_leads):.1f},{y_of(share_of_conversions):.1f}"

    best = m.converted / m.leads if m.leads else 1.0
    curve = " ".join([px(0, 0)] + [px(g.share_of_leads, g.share_of_conversions)
                                   for g in m.gains])
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             f'<rect x="{pad}" y="10" width="{size}" height="{size}" fill="none" '
             f'stroke="#dde"/>']
    for t in range(0, 101, 20):
        parts.append(f'<text x="{x_of(t / 100):.0f}" y="{size + 26}" text-anchor="middle">'
                     f'{t} %</text><text x="{pad - 4}" y="{y_of(t / 100) + 4:.0f}" '
                     f'text-anchor="end">{t} %</text>')
    parts.append(f'<polyline points="{px(0, 0)} {px(1, 1)}" fill="none" stroke="{GREY}" '
                 f'stroke-dasharray="4 3"><title>random order</title></polyline>'
                 f'<polyline points="{px(0, 0)} {px(best, 1)} {px(1, 1)}" fill="none" '
                 f'stroke="{GOOD}" stroke-dasharray="1 3"><title>a perfect ranking'
                 f"</title></polyline>"
                 f'<polyline points="{curve}" fill="none" stroke="{BAR}" stroke-width="2.5"/>')
    for g in m.gains:
        parts.append(f'<circle cx="{x_of(g.share_of_leads):.1f}" '
                     f'cy="{y_of(g.share_of_conversions):.1f}" r="3" fill="{BAR}">'
                     f"<title>top {100 * g.share_of_leads:.0f} % ({_n(g.leads)} leads): "
                     f"{pct(g.share_of_conversions)} of conversions</title></circle>")
    parts.append("</svg>")
    legend = (f'<div class="legend"><span><i style="background:{BAR}"></i>the score</span>'
              f'<span><i style="background:{GREY}"></i>random order</span>'
              f'<span><i style="background:{GOOD}"></i>a perfect ranking</span></div>')
    return "".join(parts) + legend


def _group_table(a: Analysis, groups: list[Group], head: str, names: list[str]) -> str:
    out = [f'<div class="scroll"><table><tr><th class=l>{escape(head)}</th><th>leads</th>'
           "<th>converted</th><th>rate</th><th>95 % interval</th></tr>"]
    for name, g in zip(names, groups, strict=True):
        low, high = g.interval
        out.append(f"<tr><td class=l>{escape(name)}</td><td>{_n(g.leads)}</td>"
                   f"<td>{_n(g.converted)}</td><td>{pct(g.rate)}</td>"
                   f"<td>{pct(low)} to {pct(high)}</td></tr>")
    out.append("</table></div>")
    return "".join(out)


def grades_section(a: Analysis) -> str:
    m = a.measures
    names = [_grade_name(a, g.key) for g in m.grades]
    top20 = next((g for g in m.gains if abs(g.share_of_leads - 0.2) < 1e-9), None)
    gains_note = (f"<p class=note>The top 20 % of leads by score ({_n(top20.leads)}) hold "
                  f"{pct(top20.share_of_conversions)} of all conversions.</p>"
                  if top20 else "")
    return ('<div class="grid"><div><h2>Conversion per grade</h2>'
            + rate_bars(list(zip(names, m.grades, strict=True)), m.base_rate)
            + _group_table(a, m.grades, "grade", names)
            + "</div><div><h2>Gains: conversions found by calling the best first</h2>"
            + gains_chart(a) + gains_note + "</div></div>")


def calibration_section(a: Analysis) -> str:
    """Each grade's score range, its observed rate and whether the grades are in order."""
    rb, m = a.data.rulebook, a.measures
    by_id = {g.key: g for g in m.grades}
    grades = [g for g in rb.grades if g.id in by_id]
    out = ["<h2>Calibration: does a better grade convert more?</h2>",
           '<div class="grid"><div><div class="scroll"><table><tr><th class=l>grade</th>'
           "<th>scores</th><th>leads</th><th>rate</th><th>95 % interval</th>"
           "<th class=l>order</th></tr>"]
    all_ids = [g.id for g in rb.grades]
    for g in grades:
        i = all_ids.index(g.id)
        upper = rb.grades[i - 1].min_score - 1 if i else rb.score_max
        group = by_id[g.id]
        low, high = group.interval
        above = [by_id[h.id] for h in grades if all_ids.index(h.id) < i]
        below = [by_id[h.id] for h in grades if all_ids.index(h.id) > i]
        wrong = any(x.rate <= group.rate for x in above) or any(
            x.rate >= group.rate for x in below)
        order = ('<span class="hurts">out of order</span>' if wrong
                 else '<span class="helps">in order</span>')
        out.append(f"<tr><td class=l>{escape(_grade_name(a, g.id))}</td>"
                   f"<td>{g.min_score}-{upper}</td><td>{_n(group.leads)}</td>"
                   f"<td>{pct(group.rate)}</td><td>{pct(low)} to {pct(high)}</td>"
                   f"<td class=l>{order}</td></tr>")
    out.append("</table></div><p class=note>A grade is in order when it converts more than "
               "every lower grade and less than every higher one.</p></div><div>"
               "<h3>Observed rate per score band</h3>"
               + rate_bars([(g.key, g) for g in m.bands], m.base_rate) + "</div></div>")
    return "".join(out)


def _verdict(r: RuleStats) -> str:
    if r.hurts:
        return '<span class="hurts">hurts</span>'
    if r.agrees is None:
        return "never fired"
    if r.agrees:
        return '<span class="helps">helps</span>'
    return "against its points, within chance"


def rules_section(a: Analysis) -> str:
    out = ["<h2>Rules that help and hurt</h2><p class=note>A rule hurts when the 95 % "
           "interval of its leads' rate lies wholly on the wrong side of the base rate "
           f"({pct(a.measures.base_rate)}): a golden trait below it, a bad one above. "
           "Lift: the rate when it fired over the base rate.</p>",
           '<div class="scroll"><table class="wide"><tr><th class=l>rule</th>'
           "<th class=l>kind</th><th>points</th><th>fired</th><th>rate when fired</th>"
           "<th>95 % interval</th><th>otherwise</th><th>lift</th>"
           + ("<th>suggested</th>" if a.suggestion else "") + "<th class=l></th></tr>"]
    for r in a.rules:
        low, high = r.interval
        sp = a.suggestion.points.get(r.id) if a.suggestion else None
        out.append(
            f'<tr><td class=wrap title="{escape(r.id)}">{escape(r.label)}</td>'
            f"<td class=l>{escape(r.kind)}</td>"
            f"<td>{'' if r.points is None else f'{r.points:+d}'}</td><td>{_n(r.fired)}</td>"
            f"<td>{pct(r.rate_when_fired)}</td><td>{pct(low)} to {pct(high)}</td>"
            f"<td>{pct(r.rate_otherwise)}</td>"
            f"<td>{'-' if r.lift is None else f'{r.lift:.2f}'}</td>"
            + (f"<td>{'' if sp is None else f'{sp:+d}'}</td>" if a.suggestion else "")
            + f"<td class=wrap>{_verdict(r)}</td></tr>")
    out.append("</table></div>")
    return "".join(out)


def outcome_sections(a: Analysis) -> str:
    """Measure and analyse: what ``qualify batch --outcome --report`` adds to its page."""
    return cards(a) + measure_sections(a) + leaks_section(a)


def measure_sections(a: Analysis) -> str:
    return grades_section(a) + calibration_section(a) + rules_section(a)


def cards(a: Analysis) -> str:
    m = a.measures
    items = [("leads with an outcome", _n(m.leads)), ("converted", _n(m.converted)),
             ("base rate", pct(m.base_rate)),
             ("AUC of the score", f"{m.auc:.3f}"),
             ("AUC 95 % interval", f"{m.auc_low:.3f} to {m.auc_high:.3f}")]
    return ('<div class="cards">' + "".join(f"<div class=card><b>{escape(v)}</b>{escape(k)}"
                                            "</div>" for k, v in items) + "</div>")


def calls_section(a: Analysis, calls: CallList, call_file: str | None) -> str:
    d = a.data
    shown = calls.leads[:SHOWN_CALLS]
    which = ("leads with no outcome yet" if calls.open_only else
             "every lead has an outcome, so this is how the score would have ordered them")
    head = columns(calls, not calls.open_only)
    keep = [i for i, c in enumerate(head) if c not in ("line", "grade_label", "status",
                                                       "next_step")]
    titles = {"rank": "#", "lead_id": "lead", "grade": "grade", "next_step_label": "next step",
              "reason": "why"}
    out = [f"<h2>Call first: the top {len(shown):,} of {len(calls.leads):,} leads</h2>"
           f"<p class=note>By score, highest first, disqualified leads left out; {which}.</p>",
           '<div class="scroll"><table class="wide"><tr>'
           + "".join(f"<th class=l>{escape(titles.get(head[i], head[i]))}</th>" for i in keep)
           + "</tr>"]
    for row in rows(d, calls, SHOWN_CALLS):
        cells = []
        for i in keep:
            name, value = head[i], row[i]
            if name == "grade":
                value = _grade_name(a, str(value))
            cls = {"reason": "why", "next_step_label": "wrap"}.get(name, "l")
            cells.append(f'<td class="{cls}">{escape(str(value))}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    linked = min(len(calls.leads), LINKED_CALLS)
    data = quote("\ufeff" + csv_text(d, calls, LINKED_CALLS), safe="")
    out.append(f'<a class="button" download="call-list.csv" '
               f'href="data:text/csv;charset=utf-8,{data}">Download the first {linked:,} '
               "as CSV</a>")
    if call_file:
        out.append(f" <span class=note>The whole list: <code>{escape(call_file)}</code>"
                   "</span>")
    elif len(calls.leads) > linked:
        out.append(" <span class=note>The whole list: run again with --call-list OUT.csv"
                   "</span>")
    return "".join(out)


def _side(s: Side) -> str:
    low, high = s.interval
    return f"{_n(s.leads)} leads<br>{pct(s.rate)} ({pct(low)} to {pct(high)})"


def proposals_section(a: Analysis) -> str:
    parts = []
    if a.cuts:
        parts.append("<h3>Conditions on numbers (supervised binning)</h3><p class=note>The "
                     "best single cut of each number by a monotonic decision tree; IV is the "
                     "number's information value over all its bins (0.02 weak, 0.1 medium, "
                     "0.3 strong, over 0.5: check it is known before the outcome).</p>"
                     '<div class="scroll"><table class="wide"><tr><th class=l>number</th>'
                     "<th class=l>proposed condition</th><th class=l>at or above</th>"
                     "<th class=l>below</th><th>blank</th><th>IV</th><th>lift</th>"
                     "<th class=l>now</th></tr>")
        for c in a.cuts:
            parts.append(_cut_row(c))
        parts.append("</table></div>")
    if a.proposals:
        parts.append("<h3>Columns no rule reads yet</h3><ul>")
        for p in a.proposals:
            if p.leaks:
                parts.append(f"<li><b>{escape(p.column)}</b>: alone AUC {p.auc:.3f}, but it "
                             "leaks the outcome: keep it out</li>")
            else:
                parts.append(f"<li><b>{escape(p.column)}</b>: alone AUC {p.auc:.3f}; a "
                             f"{escape(p.kind)} trait when it is <code>{escape(p.value)}</code>"
                             f"? {_n(p.leads)} leads, {pct(p.rate)} converted</li>")
        parts.append("</ul>")
    if a.thresholds:
        parts.append("<h3>Thresholds that would rank leads better (points unchanged)</h3><ul>")
        for t in a.thresholds:
            parts.append(f"<li><b>{escape(t.trait)}</b>: <code>{escape(t.field)} "
                         f"{escape(t.op)} {t.best:g}</code> instead of {t.current:g}: AUC "
                         f"{t.auc_now:.3f} &rarr; {t.auc_best:.3f}</li>")
        parts.append("</ul>")
    if not parts:
        return ""
    return ("<h2>Proposals (in sample: check them on other leads)</h2>" + "".join(parts))


def _cut_row(c: Cut) -> str:
    where = ("an input column, not mapped yet" if c.column
             else "read by " + ", ".join(c.read_by) if c.read_by else "read by no rule")
    lift = "-" if c.lift is None else f"{c.lift:.2f}"
    return (f"<tr><td class=wrap>{escape(c.label)}<br><span class=note>{escape(where)}"
            f"</span></td><td class=wrap><code>{escape(c.condition)}</code><br>"
            f"{escape(c.kind)} trait</td><td class=l>{_side(c.at_least)}</td>"
            f"<td class=l>{_side(c.below)}</td><td>{_n(c.blank.leads)}</td>"
            f"<td>{c.iv:.3f}</td><td>{lift}</td>"
            f"<td class=wrap>{escape('; '.join(c.now))}</td></tr>")


def leaks_section(a: Analysis) -> str:
    if not a.leaks:
        return ""
    out = ["<h2>Fields that give the outcome away</h2><p class=note>Probably recorded after "
           "the outcome (a note from the call): a new lead does not have them.</p><ul>"]
    for lk in a.leaks:
        read = ("read by " + ", ".join(lk.read_by)) if lk.read_by else "read by no rule"
        shown = "; ".join(f"{pv.value} ({_n(pv.leads)} leads, {pct(pv.rate)} converted)"
                          for pv in lk.pure[:MAX_PURE_SHOWN])
        out.append(f"<li><b>{escape(lk.label)}</b>: alone AUC {lk.auc:.3f}; near-pure values "
                   f"cover {pct(lk.cover(a.measures.leads))} of leads; {escape(read)}"
                   + (f"<br><span class=note>{escape(shown)}</span>" if shown else "")
                   + "</li>")
    out.append("</ul>")
    return "".join(out)


def improve_section(a: Analysis) -> str:
    out = []
    if a.suggestion is not None:
        s = a.suggestion
        out.append(f"<h2>Suggested points</h2><p>Cross-validated AUC {s.cv_before:.3f} with "
                   f"the current points, {s.cv_after:.3f} with the suggested ones"
                   + (f"; written to <code>{escape(a.suggested_file)}</code>"
                      if a.suggested_file else "") + ".</p>")
    if a.plan is not None:
        p = a.plan
        top = (f"{_n(p.top_leads)} leads from the top (scores {p.top_score} and up)"
               if p.top_leads is not None else "not reachable")
        out.append(f"<h2>Leads needed for {_n(p.target)} conversions</h2><p>{top}</p>")
    return "".join(out)


def render(a: Analysis, calls: CallList, call_file: str | None = None) -> str:
    """The whole page."""
    d, rb = a.data, a.data.rulebook
    name = d.source.replace("\\", "/").rsplit("/", 1)[-1]
    unknown = sum(d.unknown_outcomes.values())
    body = [
        f"<h1>Lead analysis: {escape(name)}</h1>",
        f"<p class=meta>rule base <b>{escape(rb.name)}</b> v{escape(rb.version)} (sha256 "
        f"<code>{rb.sha256[:12]}</code>) &middot; outcome column <b>{escape(d.outcome)}</b> "
        f"&middot; as of {d.as_of.isoformat()} &middot; {_n(d.rows)} rows: "
        f"{_n(d.leads)} analysed, {_n(d.errors)} could not be scored, {_n(d.no_outcome)} "
        f"without an outcome{f' ({_n(unknown)} unreadable)' if unknown else ''} &middot; "
        f"written {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        cards(a), calls_section(a, calls, call_file), measure_sections(a), leaks_section(a),
        proposals_section(a), improve_section(a)]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>qualify analyze: {escape(name)}</title><style>{CSS}{EXTRA_CSS}</style>"
            f"</head><body class=an>{''.join(body)}</body></html>\n")


def write_report(path: Path, a: Analysis, calls: CallList, call_file: str | None) -> None:
    """Raises InputError or OutputError."""
    save(path, render(a, calls, call_file).encode("utf-8"))
