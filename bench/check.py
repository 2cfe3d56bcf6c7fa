"""Time ``qualify rules check`` on a large rule base: the default one plus N generated rules.

    .venv/bin/python bench/check.py [--rules 5000] [--runs 3] [--keep FILE]

Issue 13 found ``rules check`` taking 91 s on 5,000 rules while the engine loaded them in 5 s.
The generated rules mix traits and next steps (four to one) over the default fields, with
thresholds drawn from a seeded random generator, so every run checks the same file. Prints
the time of each phase of each run (load, lint, engine) and the engine-only time for scale.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qualify.authoring.lint import lint  # noqa: E402
from qualify.engine import Engine  # noqa: E402
from qualify.rulebook import rulebook_from_yaml  # noqa: E402
from qualify.yamlsource import read_yaml_file  # noqa: E402

CONDITIONS = [
    "budget >= {n}",
    "expected_deal_size >= {n} and sentiment == \"positive\"",
    "purchase_timeline_days <= {d} or in_purchase_plan",
    "distance_km > {d} and contact_role in [\"staff\", \"other\"]",
    "annual_revenue >= {n} and business_trend != \"declining\"",
    "days_since(last_contact_date) > {d}",
    "count(pain_points) >= {c} and needs_product",
]
STEP_CONDITIONS = [
    "score >= {s} and stage == \"new\"",
    "grade == \"B\" and budget >= {n}",
    "qualifier.need == \"met\" and purchase_timeline_days <= {d}",
    "status == \"needs_discovery\" and distance_km <= {d}",
]


def generate(n: int, seed: int = 13) -> str:
    """The default rule base with ``n`` more rules, as YAML text."""
    rnd = random.Random(seed)
    data = yaml.safe_load((ROOT / "rules/default.yaml").read_text(encoding="utf-8"))

    def fill(template: str) -> str:
        return template.format(n=rnd.randrange(1000, 1_000_000), d=rnd.randrange(1, 3000),
                               c=rnd.randrange(1, 5), s=rnd.randrange(0, 100))

    label = {"en": "Generated", "zh": "生成"}
    traits = n * 4 // 5
    for i in range(traits):
        golden = rnd.random() < 0.5
        data["traits"].append({
            "id": f"gen_{i}", "kind": "golden" if golden else "bad",
            "points": rnd.randrange(1, 10) * (1 if golden else -1),
            "when": fill(rnd.choice(CONDITIONS)), "label": dict(label)})
    last = data["next_steps"].pop()  # the catch-all stays last
    for i in range(n - traits):
        data["next_steps"].append({
            "id": f"step_{i}", "when": fill(rnd.choice(STEP_CONDITIONS)), "label": dict(label),
            "reason": {"en": "Generated.", "zh": "生成。"}})
    data["next_steps"].append(last)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="also write the rule base here")
    args = parser.parse_args()

    text = generate(args.rules)
    if args.keep:
        args.keep.write_text(text, encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        path.write_text(text, encoding="utf-8")
        for run in range(1, args.runs + 1):
            t0 = time.perf_counter()
            data, pos, raw = read_yaml_file(path)
            rulebook = rulebook_from_yaml(data, pos, raw)
            t1 = time.perf_counter()
            warnings = lint(rulebook, data, pos)
            t2 = time.perf_counter()
            Engine(rulebook).close()
            t3 = time.perf_counter()
            print(f"run {run}: {len(rulebook.rules)} rules, {len(warnings)} warnings; "
                  f"load {t1 - t0:.2f} s, lint {t2 - t1:.2f} s, engine {t3 - t2:.2f} s, "
                  f"check {t3 - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main()
