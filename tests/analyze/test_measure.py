"""Measure: every figure ``qualify analyze`` gives, against a computation written here from
the verdicts the engine gives each lead (not from the analysis code)."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from qualify.analyze.measure import auc, delong, gains, rank_auc, wilson
from tests.analyze.conftest import Synthetic, run_json


def mann_whitney_auc(pos: list[float], neg: list[float]) -> float:
    """The share of (converted, not converted) pairs ranked right; ties count half."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def by_hand(s: Synthetic, key: str) -> dict[str, tuple[int, int]]:
    """(leads, converted) per value of the verdict's ``key``, counted lead by lead."""
    out: dict[str, list[int]] = {}
    for line, y in s.outcome.items():
        value = getattr(s.verdicts[line], key)
        value = value["id"] if isinstance(value, dict) else str(value)
        c = out.setdefault(value, [0, 0])
        c[0] += 1
        c[1] += y
    return {k: (a, b) for k, (a, b) in out.items()}




class TestCounts:
    def test_every_row_analysed_or_counted(self, synthetic: Synthetic,
                                           report: dict[str, Any]) -> None:
        """Rows = analysed + not scored + without an outcome, each as the fixture made."""
        assert report["rows"] == 3000
        assert report["errors"] == synthetic.bad
        assert report["no_outcome"] == synthetic.blank
        assert report["leads"] == len(synthetic.outcome)
        assert report["rows"] == report["leads"] + report["errors"] + report["no_outcome"]

    def test_base_rate(self, synthetic: Synthetic, report: dict[str, Any]) -> None:
        """The base rate is the converted share of the leads with an outcome."""
        ys = list(synthetic.outcome.values())
        assert report["converted"] == sum(ys)
        assert report["base_rate"] == pytest.approx(sum(ys) / len(ys))


class TestAuc:
    def test_auc_is_the_mann_whitney_count(self, synthetic: Synthetic,
                                           report: dict[str, Any]) -> None:
        """The AUC equals the pairs ranked right by the score, counted pair by pair."""
        pos = [synthetic.verdicts[k].score for k, y in synthetic.outcome.items() if y]
        neg = [synthetic.verdicts[k].score for k, y in synthetic.outcome.items() if not y]
        expected = mann_whitney_auc(pos, neg)
        assert report["auc"] == pytest.approx(expected, abs=1e-12)
        low, high = report["auc_interval"]
        assert low < expected < high
        assert 0.01 < high - low < 0.1

    def test_the_internal_auc_is_scikit_learns(self) -> None:
        """The midrank AUC used for fields and folds equals roc_auc_score, ties included."""
        rng = np.random.default_rng(4)
        y = rng.random(500) < 0.3
        s = rng.integers(0, 7, size=500).astype(float) + y
        assert rank_auc(y, s) == pytest.approx(auc(y, s), abs=1e-12)

    def test_delong_variance_from_its_definition(self) -> None:
        """DeLong's interval from the structural components written out pair by pair."""
        rng = np.random.default_rng(3)
        y = rng.random(300) < 0.4
        s = np.round(rng.normal(size=300) + y, 1)  # rounded: ties, as integer scores have
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
        se = math.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
        a, low, high = delong(y, s)
        assert a == pytest.approx(psi.mean())
        assert low == pytest.approx(psi.mean() - 1.959964 * se, abs=1e-6)
        assert high == pytest.approx(psi.mean() + 1.959964 * se, abs=1e-6)


class TestGroups:
    @pytest.mark.parametrize(("section", "key", "name"), [
        ("grades", "grade", "grade"), ("statuses", "status", "status"),
        ("next_steps", "next_step", "next_step")])
    def test_conversion_per_group_counted_by_hand(
            self, synthetic: Synthetic, report: dict[str, Any], section: str, key: str,
            name: str) -> None:
        """Leads, conversions, rate and Wilson interval of each group, from the verdicts."""
        expected = by_hand(synthetic, key)
        got = {g[name]: g for g in report[section]}
        assert set(got) == set(expected)
        for k, (n, c) in expected.items():
            ci = binomtest(c, n).proportion_ci(method="wilson")
            assert (got[k]["leads"], got[k]["converted"]) == (n, c)
            assert got[k]["rate"] == pytest.approx(c / n)
            assert (got[k]["low"], got[k]["high"]) == pytest.approx((ci.low, ci.high))

    def test_grades_as_the_spec_names_them(self, report: dict[str, Any]) -> None:
        """grades: [{grade, leads, converted, rate}], best grade first."""
        assert [g["grade"] for g in report["grades"]] == ["A", "B", "C", "D"]

    def test_score_bands(self, synthetic: Synthetic, report: dict[str, Any]) -> None:
        """10-point bands (the last one 90-100), counted from the scores."""
        counts: Counter[str] = Counter()
        conv: Counter[str] = Counter()
        for line, y in synthetic.outcome.items():
            s = synthetic.verdicts[line].score
            start = min(s // 10, 9) * 10
            band = f"{start}-{100 if start == 90 else start + 9}"
            counts[band] += 1
            conv[band] += y
        got = {b["band"]: (b["leads"], b["converted"]) for b in report["score_bands"]}
        assert got == {b: (counts[b], conv[b]) for b in counts}

    def test_wilson_matches_scipy(self) -> None:
        """The five-line Wilson interval equals scipy's."""
        for k, n in [(0, 10), (3, 10), (10, 10), (500, 1200), (1, 3)]:
            ci = binomtest(k, n).proportion_ci(method="wilson")
            assert wilson(k, n) == pytest.approx((ci.low, ci.high))


class TestGains:
    def test_gains_against_sorting_with_random_ties(self) -> None:
        """The expected share of conversions in the top k%, ties at their rate, equals the
        mean over many random tie-breaks."""
        rng = np.random.default_rng(5)
        y = rng.random(200) < 0.3
        s = rng.integers(0, 6, size=200).astype(float)
        table = gains(y, s)
        trials = np.zeros(10)
        for _ in range(4000):
            order = np.lexsort((rng.random(200), -s))
            for i in range(10):
                trials[i] += y[order[:round(200 * (i + 1) / 10)]].sum()
        got = [g.converted for g in table]
        assert got == pytest.approx(list(trials / 4000), abs=0.15)
        assert table[-1].share_of_conversions == pytest.approx(1.0)

    def test_gains_without_ties_are_a_plain_count(self, report: dict[str, Any]) -> None:
        """Each gains row's leads are the rounded share of all leads."""
        n = report["leads"]
        assert [g["leads"] for g in report["gains"]] == [round(n * i / 10) for i in
                                                           range(1, 11)]


class TestText:
    def test_printed_tables_are_the_hand_counts(self, synthetic: Synthetic, text: str) -> None:
        """The grade and status lines printed: leads, converted and rate as counted here."""
        for key in ("grade", "status"):
            for k, (n, c) in by_hand(synthetic, key).items():
                pattern = (rf"^  {re.escape(k)}\b.*?\s{n:,}\s+{c:,}\s+"
                           rf"{100 * c / n:.1f} %")
                assert re.search(pattern, text, re.M), (k, n, c)

    def test_printed_auc_and_counts(self, synthetic: Synthetic, text: str) -> None:
        """The AUC and the row counts, as printed."""
        pos = [synthetic.verdicts[k].score for k, y in synthetic.outcome.items() if y]
        neg = [synthetic.verdicts[k].score for k, y in synthetic.outcome.items() if not y]
        assert f"AUC of the score {mann_whitney_auc(pos, neg):.3f}" in text
        assert (f"rows 3,000: {len(synthetic.outcome):,} analysed, {synthetic.bad} could not "
                f"be scored, {synthetic.blank} without an outcome") in text
        ys = list(synthetic.outcome.values())
        assert f"base rate {100 * sum(ys) / len(ys):.1f} %" in text

    def test_printed_gains_and_bands(self, synthetic: Synthetic, text: str) -> None:
        """Each gains line: the top k leads and the expected share of conversions among
        them (ties at random), computed here; each band line: its counts."""
        from tests.analyze.test_control import expected_in_top

        lines = list(synthetic.outcome)
        y = np.asarray([synthetic.outcome[k] for k in lines])
        s = np.asarray([float(synthetic.verdicts[k].score) for k in lines])
        for i in range(1, 11):
            k = round(len(y) * i / 10)
            share = 100 * expected_in_top(y, s, k) / y.sum()
            assert re.search(rf"top {10 * i:>3} %\s+{k:,} leads\s+{share:.1f} % of "
                             "conversions", text), i
        for lo in range(0, 100, 10):
            hi = 100 if lo == 90 else lo + 9
            mine = [bool(v) for v, sc in zip(y, s, strict=True) if lo <= sc <= hi]
            if mine:
                assert re.search(rf"^  {lo}-{hi}\s+{len(mine):,}\s+{sum(mine):,}\s",
                                 text, re.M), lo

    def test_printed_rules_table(self, synthetic: Synthetic, text: str) -> None:
        """Each trait's line: points, fired, rate when fired and otherwise, lift."""
        ys = synthetic.outcome
        base = sum(ys.values()) / len(ys)
        points = {t["id"]: t["points"] for v in synthetic.verdicts.values() for t in v.traits}
        for trait, pts in points.items():
            fired = [y for k, y in ys.items()
                     if any(t["id"] == trait for t in synthetic.verdicts[k].traits)]
            rest = [y for k, y in ys.items()
                    if all(t["id"] != trait for t in synthetic.verdicts[k].traits)]
            rate = sum(fired) / len(fired)
            pattern = (rf"^  {trait}\s+\w+\s+{re.escape(f'{pts:+d}')}\s+{len(fired):,}\s+"
                       rf"{100 * rate:.1f} %\s+{100 * sum(rest) / len(rest):.1f} %\s+"
                       rf"{rate / base:.2f}")
            assert re.search(pattern, text, re.M), trait


class TestOrder:
    def test_the_order_of_leads_does_not_matter(self, synthetic: Synthetic,
                                                report: dict[str, Any], tmp_path: Path) -> None:
        """The same leads shuffled: the same measures, rules, gains and plan (the
        cross-validated figures are seeded by position, so they are left out)."""
        import random

        lines = synthetic.path.read_text(encoding="utf-8").splitlines()
        random.Random(11).shuffle(lines)
        path = tmp_path / "shuffled.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        again = run_json(str(path), "--outcome", "converted", "--target", "200")
        for key in ("rows", "errors", "no_outcome", "leads", "converted", "auc",
                    "auc_interval", "grades", "statuses", "next_steps", "score_bands", "gains",
                    "control"):
            assert again[key] == pytest.approx(report[key]) if isinstance(report[key], float) \
                else again[key] == report[key], key
        strip = ("suggested_points",)
        assert [{k: v for k, v in r.items() if k not in strip} for r in again["rules"]] == \
            [{k: v for k, v in r.items() if k not in strip} for r in report["rules"]]
