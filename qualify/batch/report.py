"""``--report``: one self-contained HTML page (inline CSS and SVG; no scripts, no network).

Charts: leads by grade (split by status), scores, the most fired traits, the weakest factors,
the next steps, the missing fields that cost the most points; with ``--compare``, the
from -> to grade migration matrix, the rules that caused changes and the changed leads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from qualify.batch.compare import ERROR, Comparison
from qualify.batch.summary import Summary, rows_line
from qualify.batch.writers import AtomicFile
from qualify.rulebook import Rulebook

if TYPE_CHECKING:
    from qualify.batch.job import Outcome

STATUS_COLOURS = {"qualified": "#2e7d32", "needs_discovery": "#f9a825",
                  "disqualified": "#c62828"}
BAR = "#3f6fb5"
TOP = 10
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #dde;padding-bottom:.2rem}.meta{color:#667;margin:0}
.cards{display:flex;gap:.8rem;flex-wrap:wrap;margin:1rem 0}.card{border:1px solid #dde;
border-radius:6px;padding:.5rem .9rem;min-width:8rem}.card b{display:block;font-size:1.3rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1.5rem}
table{border-collapse:collapse;font-size:13px}td,th{padding:.25rem .55rem;
border:1px solid #e3e6ee;text-align:right}th{background:#f4f6fa}td.l,th.l{text-align:left}
.matrix td{min-width:3.2rem}.matrix td.same{outline:2px solid #889 ;outline-offset:-2px}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;
height:.8rem;margin-right:.3rem;vertical-align:-1px}svg text{font-size:12px;fill:#1d2330}
svg{max-width:100%;height:auto}.grid>div{min-width:0}
code{background:#f4f6fa;padding:0 .25rem;border-radius:3px}
"""


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "-"


def hbars(items: Sequence[tuple[str, int]], total: int, *, colour: str = BAR,
          unit: str = "") -> str:
    """A horizontal bar chart: one labelled bar per item, value and share at its end."""
    if not items:
        return "<p class=meta>none</p>"
    label_w = min(max(len(label) for label, _ in items) * 7 + 10, 330)
    width, row_h = 640, 22
    bar_w = width - label_w - 150
    top = max(v for _, v in items) or 1
    parts = [f'<svg role="img" width="{width}" height="{row_h * len(items) + 4}" '
             f'viewBox="0 0 {width} {row_h * len(items) + 4}">']
    for i, (label, value) in enumerate(items):
        y = i * row_h + 2
        w = max(bar_w * value / top, 1)
        share = f" ({_pct(value, total)})" if total else ""
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
                     f"{escape(label[:48])}</text>"
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                     f'fill="{colour}"><title>{escape(label)}: {_n(value)}{unit}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{_n(value)}{unit}'
                     f"{share}</text>")
    parts.append("</svg>")
    return "".join(parts)


def grade_chart(s: Summary, rb: Rulebook, loc: str) -> str:
    """Vertical bars per grade, stacked by status, with counts on top."""
    grades = [g.id for g in rb.grades]
    statuses = list(STATUS_COLOURS)
    totals = [s.grade[g] for g in grades]
    top = max(totals, default=0) or 1
    col_w, height, base = 90, 252, 210
    width = col_w * len(grades) + 40
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    for i, g in enumerate(grades):
        x = 30 + i * col_w
        y = float(base)
        for st in statuses:
            n = s.grade_status[g, st]
            if not n:
                continue
            h = 180 * n / top
            y -= h
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{col_w - 24}" height="{h:.1f}" '
                         f'fill="{STATUS_COLOURS[st]}"><title>grade {escape(g)}, '
                         f"{st.replace('_', ' ')}: {_n(n)}</title></rect>")
        parts.append(f'<text x="{x + (col_w - 24) / 2}" y="{y - 5:.1f}" text-anchor="middle">'
                     f"{_n(s.grade[g])}</text>"
                     f'<text x="{x + (col_w - 24) / 2}" y="{base + 18}" text-anchor="middle">'
                     f"<tspan font-weight=\"bold\">{escape(g)}</tspan></text>"
                     f'<text x="{x + (col_w - 24) / 2}" y="{base + 32}" text-anchor="middle">'
                     f"{escape(_grade_label(rb, g, loc))}</text>")
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{c}"></i>{st.replace("_", " ")}</span>'
                     for st, c in STATUS_COLOURS.items())
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _grade_label(rb: Rulebook, grade: str, loc: str) -> str:
    for g in rb.grades:
        if g.id == grade:
            return g.label[loc]
    return ""


def score_chart(s: Summary) -> str:
    items = [(f"{b}-{b + 9 if b < 90 else 100}", s.scores[b]) for b in range(0, 100, 10)]
    return hbars(items, s.scored)


def matrix(c: Comparison, rb: Rulebook) -> str:
    """The from -> to grade migration: rows are the previous grade, columns this run's."""
    order = [g.id for g in rb.grades]
    seen = {g for pair in c.migration for g in pair}
    rows = order + sorted(seen - set(order) - {ERROR}) + ([ERROR] if ERROR in seen else [])
    # moves and stays are shaded on their own scales, so a few moves still stand out
    top_same = max((n for (a, b), n in c.migration.items() if a == b), default=0) or 1
    top_move = max((n for (a, b), n in c.migration.items() if a != b), default=0) or 1
    head = "".join(f"<th>{escape(g)}</th>" for g in rows)
    out = [f'<table class="matrix"><tr><th class=l>before \\ now</th>{head}'
           "<th>total</th></tr>"]
    for a in rows:
        cells = []
        for b in rows:
            n = c.migration[a, b]
            alpha = 0.08 + 0.5 * n / top_same if a == b else 0.15 + 0.75 * n / top_move
            hue = "63,111,181" if a == b else ("46,125,50" if _better(rb, a, b) else
                                               "198,40,40")
            style = f' style="background:rgba({hue},{alpha:.2f})"' if n else ""
            cls = ' class="same"' if a == b else ""
            cells.append(f"<td{cls}{style}>{_n(n) if n else ''}</td>")
        total = sum(c.migration[a, b] for b in rows)
        out.append(f"<tr><th class=l>{escape(a)}</th>{''.join(cells)}<td>{_n(total)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _better(rb: Rulebook, before: str, after: str) -> bool:
    order = [g.id for g in rb.grades]  # highest first
    if before not in order or after not in order:
        return after != ERROR
    return order.index(after) < order.index(before)


def compare_section(c: Comparison, rb: Rulebook) -> str:
    cards = [("compared", c.compared), ("changed", c.changed),
             ("status changed", c.status_changed), ("grade changed", c.grade_changed),
             ("next step changed", c.step_changed), ("score changed", c.score_changed),
             ("new leads", c.new), ("dropped leads", c.dropped)]
    out = [f"<h2>Compared with <code>{escape(c.previous)}</code></h2>",
           '<div class="cards">' + "".join(f"<div class=card><b>{_n(v)}</b>{escape(k)}</div>"
                                           for k, v in cards) + "</div>",
           "<h3>Grade migration (before &rarr; now)</h3>", matrix(c, rb),
           '<div class="grid"><div><h3>Rules that caused the changes</h3>',
           hbars(c.causes.most_common(TOP), c.changed),
           "</div><div><h3>Status moves</h3>",
           hbars([(f"{a} → {b}", n) for (a, b), n in c.status_moves.most_common(TOP)],
                 c.changed),
           "<h3>Next-step moves</h3>",
           hbars([(f"{a} → {b}", n) for (a, b), n in c.step_moves.most_common(TOP)],
                 c.changed), "</div></div>"]
    if c.examples:
        shown = len(c.examples)
        out.append(f"<h3>Changed leads (first {shown:,} of {c.changed:,}; all are in the "
                   "changes file)</h3><table><tr><th>line</th><th class=l>lead</th>"
                   "<th class=l>status</th><th>grade</th><th>score</th>"
                   "<th class=l>next step</th><th class=l>why</th></tr>")
        for ch in c.examples:
            b, a = ch.before, ch.after
            out.append(
                f"<tr><td>{a.line}</td><td class=l>{escape(a.lead_id or '')}</td>"
                f"<td class=l>{_move(b.status, a.status)}</td>"
                f"<td>{_move(b.grade, a.grade)}</td>"
                f"<td>{_move(str(b.score), str(a.score))}</td>"
                f"<td class=l>{_move(b.next_step, a.next_step)}</td>"
                f"<td class=l>{escape('; '.join(ch.causes))}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _move(before: str, after: str) -> str:
    if before == after:
        return escape(after)
    return f"{escape(before)} &rarr; <b>{escape(after)}</b>"


def render(o: Outcome) -> str:
    """The whole page."""
    s, rb, job = o.summary, o.rulebook, o.job
    loc = job.locale or rb.locale
    traits = {t.id: t for t in rb.traits}
    steps = {r.id: r for r in rb.next_steps}
    rate = s.leads / o.seconds if o.seconds else 0
    cards = [("rows in", s.rows_in), ("scored", s.scored), ("error rows", s.errors),
             *[(st.replace("_", " "), s.status[st]) for st in STATUS_COLOURS]]
    top_traits = [(f"{traits[t].label[loc]} ({traits[t].points:+d})" if t in traits else t, n)
                  for t, n in s.traits.most_common(TOP)]
    weakest = [(str(rb.factors[f][loc]) if f in rb.factors else f, n)
               for f, n in s.weakest.most_common(TOP)]
    nxt = [(steps[k].label[loc] if k in steps else k, n) for k, n in s.next_step.most_common(TOP)]
    costly = [(rb.fields[f].label[loc] if f in rb.fields else f, n)
              for f, n in s.missing_points.most_common(TOP)]
    body = [
        f"<h1>Batch: {escape(job.input.name)}</h1>",
        f"<p class=meta>rule base <b>{escape(rb.name)}</b> v{escape(rb.version)} "
        f"(sha256 <code>{rb.sha256[:12]}</code>) &middot; as of {o.as_of.isoformat()} &middot; "
        f"{escape(rows_line(s))} &middot; {o.seconds:.1f} s ({rate:,.0f} leads/s, {o.workers} "
        f"worker{'s' if o.workers != 1 else ''}) &middot; written "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        '<div class="cards">' + "".join(f"<div class=card><b>{_n(v)}</b>{escape(k)}</div>"
                                        for k, v in cards) + "</div>",
        '<div class="grid"><div><h2>Grade distribution</h2>', grade_chart(s, rb, loc),
        "</div><div><h2>Scores</h2>", score_chart(s), "</div></div>",
        '<div class="grid"><div><h2>Most fired traits</h2>', hbars(top_traits, s.scored),
        "</div><div><h2>Weakest factor</h2>", hbars(weakest, s.scored),
        "</div><div><h2>Next step</h2>", hbars(nxt, s.scored),
        "</div><div><h2>Missing fields that cost the most points</h2>",
        hbars(costly, 0, colour="#8e5bb5", unit=" pts"),
        "<p class=meta>Points of golden traits left undecided for want of the field, summed "
        "over leads.</p></div></div>",
    ]
    if s.errors:
        body.append("<h2>Errors</h2>" + hbars(s.error_fields.most_common(TOP), s.errors,
                                              colour="#c62828"))
        body.append("<table><tr><th>line</th><th class=l>error</th></tr>" + "".join(
            f"<tr><td>{line}</td><td class=l>{escape(msg)}</td></tr>"
            for line, msg in s.first_errors) + "</table>")
        if o.errors_path:
            body.append(f"<p class=meta>Every failed row: <code>{escape(str(o.errors_path))}"
                        "</code></p>")
    if job.watcher is not None:
        body.append(job.watcher.section())
    if o.comparison is not None:
        body.append(compare_section(o.comparison, rb))
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>qualify batch: {escape(job.input.name)}</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def write_report(path: Path, outcome: Outcome) -> AtomicFile:
    """Write the page under a temporary name; the caller commits it (renames it into
    place) with the run's other files. Raises OutputError."""
    temp = AtomicFile(path)
    with temp.removed_on_error():
        temp.write(render(outcome).encode("utf-8"))
    return temp
