"""Realistic synthetic leads for the default rule base: for benchmarks, demos and tests.

Leads look like CRM data: some numbers arrive as strings, booleans as "Yes"/"No", fields
are often missing, a few values are bad. ``generate(n, seed)`` is deterministic.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

ROLES = ["owner", "executive", "director", "manager", "staff", "other"]
LEVELS = ["high", "medium", "low", "none"]
STAGES = ["new", "contacted", "meeting", "proposal", "negotiation", "won", "lost"]
PAINS = ["manual reporting", "slow onboarding", "data silos", "compliance", "churn", "成本太高"]
OBJECTIONS = ["price", "timing", "features", "trust", "contract length"]
COMPETITORS = ["Acme", "Globex", "Initech", "某竞品"]


def _maybe(rnd: random.Random, p: float, value: Any) -> Any:
    return value if rnd.random() < p else None


def lead(rnd: random.Random, i: int, as_of: dt.date = dt.date(2026, 1, 1),
         bad_rate: float = 0.0) -> dict[str, Any]:
    """One lead; with ``bad_rate`` > 0 some leads carry a value that cannot be converted."""
    last = as_of - dt.timedelta(days=rnd.randint(0, 400))
    out: dict[str, Any] = {
        "lead_id": f"L{i:07d}",
        "needs_product": _maybe(rnd, 0.7, rnd.choice([True, False, "Yes", "No"])),
        "pain_points": _maybe(rnd, 0.6, rnd.sample(PAINS, rnd.randint(0, 3))),
        "purchase_timeline_days": _maybe(rnd, 0.6, rnd.choice([7, 14, 30, 60, 120, 400, "45"])),
        "budget": _maybe(rnd, 0.6, rnd.choice([0, 2500, 9999.5, 10000, 25000, "60000",
                                              250000.75])),
        "annual_revenue": _maybe(rnd, 0.5, rnd.choice([50_000, 900_000, 1_000_000, 3.5e6,
                                                      "12000000"])),
        "payment_history": _maybe(rnd, 0.5, rnd.choice(["prompt", "late", "defaulted", "none"])),
        "financial_health": _maybe(rnd, 0.5, rnd.choice(["strong", "stable", "weak"])),
        "business_trend": _maybe(rnd, 0.5, rnd.choice(["growing", "stable", "declining"])),
        "in_purchase_plan": _maybe(rnd, 0.5, rnd.choice([True, False])),
        "contact_role": _maybe(rnd, 0.7, rnd.choice([*ROLES, "Owner", "EXECUTIVE"])),
        "is_decision_maker": _maybe(rnd, 0.5, rnd.choice([True, False, "true", "false"])),
        "sentiment": _maybe(rnd, 0.6, rnd.choice(["positive", "neutral", "negative"])),
        "trusts_us": _maybe(rnd, 0.5, rnd.choice([True, False])),
        "understands_offer": _maybe(rnd, 0.5, rnd.choice([True, False])),
        "value_acknowledged": _maybe(rnd, 0.5, rnd.choice([True, False])),
        "open_objections": _maybe(rnd, 0.5, rnd.sample(OBJECTIONS, rnd.randint(0, 2))),
        "competitors": _maybe(rnd, 0.4, rnd.sample(COMPETITORS, rnd.randint(0, 2))),
        "expected_deal_size": _maybe(rnd, 0.6, rnd.choice([1000, 4999, 5000, 20000, 50000,
                                                          "120000"])),
        "repeat_potential": _maybe(rnd, 0.5, rnd.choice(LEVELS)),
        "referral_potential": _maybe(rnd, 0.5, rnd.choice(LEVELS)),
        "influence": _maybe(rnd, 0.5, rnd.choice(LEVELS)),
        "distance_km": _maybe(rnd, 0.5, rnd.choice([3, 12.5, 50, 120, 800, "2000"])),
        "stage": _maybe(rnd, 0.7, rnd.choice(STAGES)),
        "last_contact_date": _maybe(rnd, 0.6, last.isoformat()),
        "company": rnd.choice(["Acme Ltd", "北京某某科技有限公司", "Globex GmbH", "Ünïcode SA"]),
    }
    if bad_rate and rnd.random() < bad_rate:
        out[rnd.choice(["budget", "contact_role", "last_contact_date"])] = "lots"
    return {k: v for k, v in out.items() if v is not None}


def generate(n: int, seed: int = 1, bad_rate: float = 0.0,
             as_of: dt.date = dt.date(2026, 1, 1)) -> Iterator[dict[str, Any]]:
    """``n`` leads, the same for the same seed."""
    rnd = random.Random(seed)
    for i in range(n):
        yield lead(rnd, i, as_of, bad_rate)
