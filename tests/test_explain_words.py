"""The weakest factor and the next step's reason, checked against a plain rendering.

The engine builds both from explained parts it keeps and reuses (their words, a weakest
factor chosen per states and points, a reason template parsed once). Here they are worked
out the plain way, from the verdict's own qualifiers and traits and the rule base's texts,
for thousands of generated leads in both locales and on several days.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import Any

import pytest

from qualify import Engine, synthetic
from qualify.explain import compile_explainer
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook_text
from qualify.verdict import Verdict
from qualify.words import Words

AS_OF = dt.date(2026, 1, 1)


def plain_weakest(rb: Rulebook, v: Verdict) -> tuple[dict[str, Any] | None, int | None]:
    """An unmet qualifier, else the factor whose traits cost most points, else an unknown
    qualifier, else the factor contributing least (ties: rule-base order)."""
    w = Words(rb, v.locale)
    factor_of = {t.id: t.factor for t in rb.traits}
    points: dict[str, int] = {}
    for t in v.traits:
        factor = factor_of[t["id"]]
        if factor:
            points[factor] = points.get(factor, 0) + t["points"]
    ranked = []
    for order, factor in enumerate(rb.factors):
        pts = points.get(factor, 0)
        st = v.qualifiers[factor]["state"] if factor in v.qualifiers else None
        rank = 0 if st == "unmet" else 1 if pts < 0 else 2 if st == "unknown" else 3
        ranked.append((rank, pts, order, factor))
    if not ranked:
        return None, None
    rank, pts, _, factor = min(ranked)
    zh = v.locale == "zh"
    q = v.qualifiers.get(factor)
    why = [w.state["unmet"] + w.dash + w.evidence(q["evidence"] if q else []),
           f"（{pts:+d} 分）" if zh else f" ({pts:+d} points)",
           w.state["unknown"] + w.dash + w.missing(q["missing"] if q else []),
           f"（加分最少：{pts:+d}）" if zh else f" (adds the fewest points: {pts:+d})"][rank]
    label = rb.factors[factor][v.locale]
    between = w.colon if rank in (0, 2) else ""
    return {"factor": factor, "label": label, "reason": f"{label}{between}{why}",
            "points": pts}, rank


def plain_reason(rb: Rulebook, engine: Engine, lead: dict[str, Any], v: Verdict) -> str:
    """The step's reason template filled with str.format, every value worked out."""
    w = Words(rb, v.locale)
    loc = v.locale
    step = next(s for s in rb.next_steps if s.id == v.next_step["id"])
    d = engine.decide(lead, v.as_of)
    refs = list(step.expr.refs())
    names = [r.name for r in refs if r.kind == "verdict"]
    fields = {r.name for r in refs if r.kind != "verdict"}
    read_q = [n.split(".", 1)[1] for n in names if n.startswith("qualifier.")]
    if "status" in names:
        read_q += [q for q, qv in v.qualifiers.items() if qv["state"] != "met"]
    read_q = list(dict.fromkeys(read_q))
    own = [e for e in compile_explainer(step.expr, w)(d.stage2_fact, d.lead, True)
           if e["field"] in fields]
    focus = read_q or [q for q, qv in v.qualifiers.items() if qv["state"] == "unknown"]
    missing = list(dict.fromkeys(m for q in focus for m in v.qualifiers[q]["missing"]))
    values = {
        "evidence": w.w["sep"].join(t for t in (w.evidence(own), *(
            w.evidence(v.qualifiers[q]["evidence"]) for q in read_q)) if t) or "-",
        "missing": w.fields(missing) or "-",
        "unmet": w.sep.join(qv["label"] for qv in v.qualifiers.values()
                            if qv["state"] == "unmet") or "-",
        "unknown": w.sep.join(qv["label"] for qv in v.qualifiers.values()
                              if qv["state"] == "unknown") or "-",
        "grade": v.grade, "score": str(v.score), "status": w.status[v.status],
    }
    for _, name, _, _ in string.Formatter().parse(step.reason[loc]):
        if name and name not in values:
            values[name] = w.value(name, d.lead.get(name))
    return step.reason[loc].format_map(values)


DEFAULT = default_rules_path().read_text(encoding="utf-8")
# a step that reads the status and a qualifier twice: its reason names each qualifier once
TWICE = DEFAULT.replace('when: status == "disqualified"',
                        'when: status == "disqualified" and (qualifier.need == "unmet" or '
                        'qualifier.need == "met" or qualifier.need == "unknown")')


@pytest.mark.parametrize(("memo", "text"), [(True, DEFAULT), (False, DEFAULT), (True, TWICE)],
                         ids=["memo", "no-memo", "step-reads-a-qualifier-twice"])
def test_weakest_and_reason_render_as_plain(memo: bool, text: str) -> None:
    assert text is DEFAULT or text != DEFAULT
    leads = list(synthetic.generate(2500, seed=21, bad_rate=0))
    with Engine(load_rulebook_text(text, "rules.yaml"), memo=memo) as engine:
        rb = engine.rulebook
        steps, ranks = set(), set()
        for i, lead in enumerate(leads):
            as_of = AS_OF + dt.timedelta(days=37 * (i % 5))
            v = engine.score(lead, as_of=as_of, locale=("en", "zh")[i % 2])
            weakest, rank = plain_weakest(rb, v)
            assert v.weakest == weakest, lead
            assert v.next_step["reason"] == plain_reason(rb, engine, lead, v), lead
            steps.add(v.next_step["id"])
            ranks.add(rank)
    assert steps == {s.id for s in rb.next_steps}  # every reason template was filled
    assert ranks == {0, 1, 2, 3}  # unmet, costly traits, unknown, fewest points
