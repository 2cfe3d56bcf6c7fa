"""Supervised binning: the cut it proposes, and every figure beside it recomputed by hand."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qualify.analyze.binning import MIN_IV, bins_of, cut_of, field_name, number_text, numbers
from qualify.analyze.measure import wilson
from tests.analyze.conftest import run_json

STEP = 7  # the known threshold of the synthetic numbers


def step_data(n: int, seed: int, low: float = 0.15, high: float = 0.6,
              blank_every: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Integers 0..20; a lead converts with ``high`` at STEP or more, ``low`` below."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 21, n).astype(float)
    y = rng.random(n) < np.where(x >= STEP, high, low)
    if blank_every:
        x[::blank_every] = np.nan
    return x, y


def iv_by_hand(counts: list[tuple[int, int]], pos: int, neg: int) -> float:
    """IV with 0.5 added to each count, as the module documents, written out plainly."""
    k = len(counts)
    total = 0.0
    for n, c in counts:
        p = (c + 0.5) / (pos + 0.5 * k)
        q = (n - c + 0.5) / (neg + 0.5 * k)
        total += (p - q) * math.log(p / q)
    return total


class TestCut:
    @pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
    def test_recovers_a_known_threshold(self, seed: int) -> None:
        """Leads converting at 60 % from 7 up and 15 % below: the first cut is 7."""
        x, y = step_data(3000, seed, blank_every=50)
        found = cut_of(x, y)
        assert found is not None
        assert found[0] == STEP

    def test_recovers_a_falling_threshold(self) -> None:
        """The same step the other way round (converting less from 7 up): still 7."""
        x, y = step_data(3000, 11, low=0.6, high=0.15)
        found = cut_of(x, y)
        assert found is not None and found[0] == STEP

    def test_bins_are_monotonic(self) -> None:
        """The tree is constrained to the direction of the rank correlation: the rates of
        the known bins never fall as the number rises."""
        x, y = step_data(4000, 21)
        found = cut_of(x, y)
        assert found is not None
        rates = [b.rate for b in found[1] if not b.blank]
        assert rates == sorted(rates)

    def test_noise_is_not_useful(self) -> None:
        """A number unrelated to the outcome gets an IV under the 'not useful' line."""
        rng = np.random.default_rng(5)
        x = rng.integers(0, 50, 3000).astype(float)
        y = rng.random(3000) < 0.4
        found = cut_of(x, y)
        assert found is None or found[2] < MIN_IV

    def test_too_few_leads_give_no_cut(self) -> None:
        """Fewer leads than two bins of the minimum size: no cut at all."""
        x, y = step_data(50, 1)
        assert cut_of(x, y) is None

    def test_bins_and_iv_by_hand(self) -> None:
        """Each bin's leads and conversions, and the IV, recomputed with plain loops."""
        x, y = step_data(2000, 8, blank_every=40)
        bins, iv = bins_of(x, y, [4.0, 7.0, 12.0])
        edges = [(None, 4.0), (4.0, 7.0), (7.0, 12.0), (12.0, None)]
        counts = []
        for lo, hi in edges:
            inside = [bool(v) for xv, v in zip(x, y, strict=True) if not math.isnan(xv)
                      and (lo is None or xv >= lo) and (hi is None or xv < hi)]
            counts.append((len(inside), sum(inside)))
        blank = [bool(v) for xv, v in zip(x, y, strict=True) if math.isnan(xv)]
        counts.append((len(blank), sum(blank)))
        assert [(b.leads, b.converted) for b in bins] == counts
        assert [b.blank for b in bins] == [False] * 4 + [True]
        pos = int(y.sum())
        assert iv == pytest.approx(iv_by_hand(counts, pos, len(y) - pos))


class TestWords:
    def test_numbers_and_names(self) -> None:
        """Numbers as people write them; a column's name as a field's; a text value makes a
        column no number."""
        assert [number_text(v) for v in (4.0, 715.0, 2.5, 1e6)] == ["4", "715", "2.5",
                                                                    "1000000"]
        assert field_name("Page Views Per Visit") == "page_views_per_visit"
        assert field_name("2nd visit") == "f_2nd_visit"
        got = numbers(["3", 4, None, "", "5.5"])
        assert got is not None and got[:2].tolist() == [3.0, 4.0]
        assert np.isnan(got[2]) and np.isnan(got[3])
        assert numbers(["3", "many"]) is None


# ----------------------------------------------------------------- through qualify analyze

THRESHOLD = 30  # visits: leads with 30 or more convert far more often

MAPPING = """\
name: binning
fields:
  lead_id: {from: id}
  budget: {from: budget}
keys: [id]
"""

RULES = """\
rulebook: binning
version: 1
fields:
  lead_id: {type: string, required: true}
  budget: {type: number, min: 0, label: {en: Budget}}
qualifiers:
  can_pay: {label: {en: Can pay}, when: budget >= 1000}
traits:
  - {id: big, kind: golden, points: 20, when: budget >= 50000, label: {en: Big budget}}
grades:
  - {id: A, min_score: 60, label: {en: Hot}}
  - {id: B, min_score: 0, label: {en: Cold}}
next_steps:
  - {id: call, label: {en: Call}, reason: {en: "Call them."}}
"""


@pytest.fixture(scope="module")
def leads(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """2,000 leads: budget drives a rule; 'Site Visits', a column no rule reads, converts at
    70 % from THRESHOLD up and 20 % below; 'Noise' is random."""
    rnd = random.Random(3)
    rows = []
    for i in range(2000):
        visits = rnd.randint(0, 60)
        p = 0.7 if visits >= THRESHOLD else 0.2
        rows.append({"id": f"L{i}", "budget": str(rnd.choice([500, 5000, 60000])),
                     "Site Visits": "" if i % 37 == 0 else str(visits),
                     "Noise": str(rnd.randint(0, 99)),
                     "won": "1" if rnd.random() < p else "0"})
    folder = tmp_path_factory.mktemp("binning")
    path = folder / "leads.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    (folder / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    return path, rows


class TestThroughTheCommand:
    def test_new_condition_on_an_unread_column(
            self, leads: tuple[Path, list[dict[str, Any]]]) -> None:
        """The column no rule reads is proposed as 'site_visits >= 30', golden, and its
        leads on each side, their conversion, Wilson interval and lift are those counted
        here from the file."""
        path, rows = leads
        report = run_json(str(path), "--outcome", "won", "--rules",
                          str(path.parent / "rules.yaml"), "--map",
                          str(path.parent / "mapping.yaml"))
        cuts = {c["column"]: c for c in report["binning"]}
        assert "Noise" not in cuts
        c = cuts["Site Visits"]
        assert (c["field"], c["condition"], c["kind"]) == ("site_visits", "site_visits >= 30",
                                                           "golden")
        known = [r for r in rows if r["Site Visits"] != ""]
        above = [r["won"] == "1" for r in known if int(r["Site Visits"]) >= THRESHOLD]
        below = [r["won"] == "1" for r in known if int(r["Site Visits"]) < THRESHOLD]
        blank = [r["won"] == "1" for r in rows if r["Site Visits"] == ""]
        for side, got in ((above, c["at_least"]), (below, c["below"]), (blank, c["blank"])):
            assert (got["leads"], got["converted"]) == (len(side), sum(side))
            assert got["interval"] == pytest.approx(list(wilson(sum(side), len(side))))
        base = sum(r["won"] == "1" for r in rows) / len(rows)
        assert c["lift"] == pytest.approx(sum(above) / len(above) / base)
        assert sum(b["leads"] for b in c["bins"]) == len(rows)
        assert c["iv"] == pytest.approx(iv_by_hand(
            [(b["leads"], b["converted"]) for b in c["bins"]],
            sum(r["won"] == "1" for r in rows), sum(r["won"] == "0" for r in rows)))

    def test_text_names_the_proposal(self, leads: tuple[Path, list[dict[str, Any]]]) -> None:
        """The printed analysis marks it as a proposal, with the condition in the rule
        language and the sides' figures."""
        from tests.analyze.conftest import run

        path, _ = leads
        result = run(str(path), "--outcome", "won", "--rules", str(path.parent / "rules.yaml"),
                     "--map", str(path.parent / "mapping.yaml"))
        assert result.exit_code == 0, result.output
        assert "proposals: conditions on numbers by supervised binning" in result.stdout
        assert ("Site Visits (column 'Site Visits', not mapped yet): site_visits >= 30 as a "
                "golden trait") in result.stdout
