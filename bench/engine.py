"""Engine benchmark: a whole verdict per lead versus raw durable-rules matching.

    python bench/engine.py [--leads 20000] [--memory 200000] [--rounds 4]

Scores generated leads with the default rule base and prints µs per lead (p50, p99) and
leads/s for:
  raw      the field notes' direct pattern (sketch.py): json.dumps + assert_fact + drain +
           delete_state per ruleset, on the *same* compiled conditions and shards, with the
           engine facts built beforehand. This is the floor: matching only.
  decide   qualify's Engine.decide: convert the raw lead, derive facts, match both stages.
  verdict  qualify's Engine.score: all of the above plus the explained Verdict.
  ... no memo  the same with Engine(memo=False): every lead matched by durable-rules and
           explained afresh. With the memo (memo.py), it first learns from as many other
           leads, then the share of timed leads answered without the engine is printed.
Rounds alternate raw/decide/verdict so machine noise hits all three alike. With --memory N
it then scores N leads and prints RSS before and after (flat memory).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable_rules_engine as E  # the raw baseline only

from qualify import Engine, synthetic
from qualify.adapter import shard

AS_OF = synthetic.dt.date(2026, 1, 1)


class Raw:
    """sketch.py from the durable-rules field notes, verbatim in behaviour."""

    def __init__(self, rules: dict[str, Any], tag: str) -> None:
        defs = {n: {"all": [{"m": c}]} for n, c in rules.items()}
        defs["__seen"] = {"all": [{"m": {"$ex": {"__lead": 1}}}]}
        self.h = E.create_ruleset("bench_" + tag, json.dumps(defs, ensure_ascii=False))
        self.sids = itertools.count()

    def _drain(self, off: int, fired: set[str]) -> None:
        res = E.start_action_for_state(self.h, off)
        msg = res and res[1]
        while msg:
            name = msg[2:msg.index('"', 2)]
            if name != "__seen" and '"$s":1}' not in msg:
                fired.add(name)
            msg = E.complete_and_start_action(self.h, off)

    def evaluate(self, lead: dict[str, Any]) -> list[str]:
        sid = f"s{next(self.sids)}"
        fired: set[str] = set()
        try:
            _, off = E.assert_fact(self.h, json.dumps({**lead, "sid": sid, "__lead": 1},
                                                      ensure_ascii=False))
            self._drain(off, fired)
        finally:
            E.delete_state(self.h, sid)
        return sorted(fired)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def summary(label: str, samples_ns: list[int]) -> str:
    us = sorted(s / 1000 for s in samples_ns)
    p50 = statistics.median(us)
    p99 = us[int(len(us) * 0.99) - 1]
    rate = len(us) / (sum(us) / 1e6)
    return f"{label:17s} p50 {p50:7.1f} µs   p99 {p99:7.1f} µs   {rate:9,.0f} leads/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--memory", type=int, default=0, help="then score N leads, print RSS")
    args = ap.parse_args()

    engine = Engine.from_path()
    plain = Engine.from_path(memo=False)
    leads = list(synthetic.generate(args.leads, seed=42, as_of=AS_OF))
    decided = [plain.decide(x, AS_OF) for x in leads]
    # The memo learns from other leads than the timed ones (as a server or a batch would).
    for lead in synthetic.generate(args.leads, seed=43, as_of=AS_OF):
        engine.score(lead, as_of=AS_OF)
    memos = engine.memos
    learnt = [(m.hits, m.misses) for m in memos]
    c = engine.compiled
    raw1 = [Raw(g, f"1_{i}") for i, g in enumerate(shard(c.stage1))]
    raw2 = [Raw(g, f"2_{i}") for i, g in enumerate(shard(c.stage2))]
    facts = [(d.fact, d.stage2_fact) for d in decided]

    # the baseline must decide what the engine decides
    for d, (f1, _) in zip(decided[:500], facts, strict=False):
        fired = {n for r in raw1 for n in r.evaluate(f1)}
        states = tuple(True if f"{i}+" in fired else False if f"{i}-" in fired else None
                       for i in range(len(c.rules_1)))
        assert states == d.states, "raw baseline disagrees with the engine"

    def run_raw(i: int) -> None:
        f1, f2 = facts[i]
        for r in raw1:
            r.evaluate(f1)
        for r in raw2:
            r.evaluate(f2)

    def run_decide(i: int) -> None:
        engine.decide(leads[i], AS_OF)

    def run_verdict(i: int) -> None:
        engine.score(leads[i], as_of=AS_OF)

    def run_plain_decide(i: int) -> None:
        plain.decide(leads[i], AS_OF)

    def run_plain_verdict(i: int) -> None:
        plain.score(leads[i], as_of=AS_OF)

    runs = {"raw": run_raw, "decide": run_decide, "verdict": run_verdict,
            "decide, no memo": run_plain_decide, "verdict, no memo": run_plain_verdict}
    samples: dict[str, list[int]] = {label: [] for label in runs}
    clock = time.perf_counter_ns
    chunk = max(1, len(leads) // args.rounds)
    for start in range(0, len(leads), chunk):
        for label, fn in runs.items():
            out = samples[label]
            for i in range(start, min(start + chunk, len(leads))):
                t = clock()
                fn(i)
                out.append(clock() - t)

    print(f"qualify engine benchmark: {len(leads):,} generated leads, default rule base "
          f"({len(c.stage1)} stage-1 + {len(c.stage2)} stage-2 engine conditions, "
          f"{len(raw1)}+{len(raw2)} rulesets), Python {sys.version.split()[0]}")
    for label, values in samples.items():
        print(summary(label, values))
    raw_p50 = statistics.median(samples["raw"])
    ver_p50 = statistics.median(samples["verdict"])
    print(f"verdict / raw (p50): {ver_p50 / raw_p50:.2f}x   "
          f"(target <= 2x; p50 target <= 100 µs); without the memo "
          f"{statistics.median(samples['verdict, no memo']) / raw_p50:.2f}x")
    for stage, m, (h0, m0) in zip(("stage 1", "stage 2"), memos, learnt, strict=True):
        hits, misses = m.hits - h0, m.misses - m0
        print(f"memo, {stage}: {hits / max(1, hits + misses):.1%} of the timed leads answered "
              f"without durable-rules (learnt from {h0 + m0:,} other leads: "
              f"{m0:,} engine calls)")

    if args.memory:
        before = rss_mb()
        marks = []
        gen = synthetic.generate(args.memory, seed=7, as_of=AS_OF)
        for n, lead in enumerate(gen, 1):
            engine.score(lead, as_of=AS_OF)
            if n % (args.memory // 4) == 0:
                marks.append(f"{n:,}: {rss_mb():.1f} MB")
        print(f"memory: RSS {before:.1f} MB before; after " + ", ".join(marks))
    engine.close()
    plain.close()


if __name__ == "__main__":
    main()
