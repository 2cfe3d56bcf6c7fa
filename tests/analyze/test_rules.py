"""Analyse: each rule against the outcome, counted here from the verdicts; rules that hurt
named first; fields that leak the outcome flagged with their evidence."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest

from tests.analyze.conftest import WEIGHTS, Synthetic, run_json

LEAKY_RULES = """\
rulebook: leaky
version: 1
fields:
  lead_id: {type: string, required: true}
  visits: {type: integer, min: 0}
  note: {type: string}
qualifiers:
  known: {label: {en: Known}, when: known(visits)}
traits:
  - {id: busy, kind: golden, points: 20, when: visits >= 5, label: {en: Busy}}
  - {id: closed, kind: golden, points: 10, when: note == "closed", label: {en: Closed}}
grades:
  - {id: A, min_score: 60}
  - {id: B, min_score: 0}
next_steps:
  - {id: call, label: {en: Call}, reason: {en: Call.}}
"""



@pytest.fixture
def leaky(tmp_path: Path) -> tuple[Path, Path]:
    return leaky_leads(tmp_path)


def leaky_leads(tmp_path: Path) -> tuple[Path, Path]:
    """A note that says the outcome for a third of the leads; visits that are noise."""
    rnd = random.Random(1)
    path = tmp_path / "leads.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["lead_id", "visits", "note", "won"])
        for i in range(600):
            won = rnd.random() < 0.4
            note = ("closed" if won else "lost") if i % 3 == 0 else rnd.choice(["", "x"])
            w.writerow([f"L{i}", rnd.randint(0, 10), note, "true" if won else "false"])
    rules = tmp_path / "rules.yaml"
    rules.write_text(LEAKY_RULES, encoding="utf-8")
    return path, rules


class TestPerRule:
    def test_traits_counted_by_hand(self, synthetic: Synthetic, report: dict[str, Any]) -> None:
        """fired, rates when fired and otherwise, and lift of each trait, from the verdicts."""
        ys = synthetic.outcome
        base = sum(ys.values()) / len(ys)
        rules = {r["id"]: r for r in report["rules"]}
        for trait in WEIGHTS:
            fired = [y for k, y in ys.items()
                     if any(t["id"] == trait for t in synthetic.verdicts[k].traits)]
            rest = [y for k, y in ys.items()
                    if all(t["id"] != trait for t in synthetic.verdicts[k].traits)]
            r = rules[trait]
            assert r["fired"] == len(fired)
            assert r["rate_when_fired"] == pytest.approx(sum(fired) / len(fired))
            assert r["rate_otherwise"] == pytest.approx(sum(rest) / len(rest))
            assert r["lift"] == pytest.approx(sum(fired) / len(fired) / base)

    def test_qualifier_states_counted_by_hand(self, synthetic: Synthetic,
                                              report: dict[str, Any]) -> None:
        """A qualifier fires when met; its unmet and unknown leads are counted beside."""
        rules = {r["id"]: r for r in report["rules"]}
        for q in ("need", "buying_power", "authority"):
            for state in ("met", "unmet", "unknown"):
                leads = [y for k, y in synthetic.outcome.items()
                         if synthetic.verdicts[k].qualifiers[q]["state"] == state]
                assert rules[q]["states"][state] == {"leads": len(leads),
                                                     "converted": sum(leads)}
            assert rules[q]["fired"] == rules[q]["states"]["met"]["leads"]

    def test_json_rule_keys(self, report: dict[str, Any]) -> None:
        """Each rule has the keys the issue asks for; rates are fractions of 1."""
        for r in report["rules"]:
            assert {"id", "kind", "points", "fired", "rate_when_fired", "rate_otherwise",
                    "lift", "suggested_points"} <= set(r)
            assert r["rate_when_fired"] is None or 0 <= r["rate_when_fired"] <= 1

    def test_a_golden_trait_against_the_outcome_hurts_and_comes_first(
            self, report: dict[str, Any], text: str) -> None:
        """nearby (golden, weighted against conversion) is named first, in text and JSON."""
        assert report["rules"][0]["id"] == "nearby"
        assert report["rules"][0]["hurts"] is True
        assert [r["id"] for r in report["rules"] if r["hurts"]] == ["nearby"]
        assert ("rules that hurt (their rate's 95 % interval on the wrong side of the base "
                "rate): nearby") in text
        assert "nearby" in next(line for line in text.splitlines() if "HURTS" in line)


class TestLeakage:
    def test_a_field_that_says_the_outcome_is_flagged(self, leaky: tuple[Path, Path]) -> None:
        """note is flagged, with its pure values as evidence; visits is not."""
        path, rules = leaky
        report = run_json(str(path), "--outcome", "won", "--rules", str(rules))
        leaks = {lk["field"]: lk for lk in report["leaks"]}
        assert set(leaks) == {"note"}
        values = {p["value"]: p for p in leaks["note"]["pure_values"]}
        assert values["closed"]["rate"] == 1.0
        assert values["lost"]["rate"] == 0.0
        assert leaks["note"]["cover"] == pytest.approx(200 / 600)
        assert leaks["note"]["read_by"] == ["closed"]

    def test_parquet_gives_the_csv_analysis(self, leaky: tuple[Path, Path],
                                            tmp_path: Path) -> None:
        """The same leads as Parquet, the outcome a boolean column: the same analysis."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path, rules = leaky
        with path.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        table = pa.table({"lead_id": [r["lead_id"] for r in rows],
                          "visits": [int(r["visits"]) for r in rows],
                          "note": [r["note"] for r in rows],
                          "won": [r["won"] == "true" for r in rows]})
        pq.write_table(table, tmp_path / "leads.parquet")
        a = run_json(str(path), "--outcome", "won", "--rules", str(rules))
        b = run_json(str(tmp_path / "leads.parquet"), "--outcome", "won", "--rules", str(rules))
        for key in ("leads", "converted", "auc", "grades", "rules", "leaks", "gains"):
            assert a[key] == b[key], key


MAPPING = """\
name: test
keys: [id]
fields:
  lead_id: {from: id}
  visits: {from: visits}
"""


class TestProposals:
    @pytest.fixture
    def export(self, tmp_path: Path) -> tuple[Path, Path, Path]:
        """An export whose unread columns are: a channel that matters, a serial number (an
        id), a free-text column of noise, and a verdict written after the sale."""
        rnd = random.Random(4)
        path = tmp_path / "export.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "visits", "channel", "serial", "noise", "outcome_note", "won"])
            for i in range(800):
                channel = rnd.choice(["referral", "ads", "ads", "web", "Select"])
                won = rnd.random() < (0.7 if channel == "referral" else 0.25)
                w.writerow([f"L{i}", rnd.randint(0, 10), channel, 1000 + i,
                            rnd.choice("abc"), "signed" if won else "gone", int(won)])
        rules = tmp_path / "rules.yaml"
        rules.write_text(LEAKY_RULES, encoding="utf-8")
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(MAPPING, encoding="utf-8")
        return path, rules, mapping

    def test_unread_columns_proposed_with_evidence(
            self, export: tuple[Path, Path, Path]) -> None:
        """channel is proposed as a golden trait on 'referral' with its counts (counted here);
        the serial number and the noise rank no better than chance and are not; outcome_note
        is named as a leak."""
        path, rules, mapping = export
        report = run_json(str(path), "--outcome", "won", "--rules", str(rules), "--map",
                          str(mapping))
        got = {p["column"]: p for p in report["proposals"]}
        assert set(got) == {"channel", "outcome_note"}
        assert got["outcome_note"]["leaks"] is True
        with path.open(encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["channel"] == "referral"]
        assert (got["channel"]["value"], got["channel"]["kind"]) == ("referral", "golden")
        assert (got["channel"]["leads"], got["channel"]["converted"]) == (
            len(rows), sum(r["won"] == "1" for r in rows))
        assert got["channel"]["leaks"] is False

    def test_no_proposals_without_a_mapping(self, leaky: tuple[Path, Path]) -> None:
        """Without a mapping every column is a lead field: nothing is 'unread'."""
        path, rules = leaky
        assert run_json(str(path), "--outcome", "won", "--rules", str(rules))["proposals"] == []


THRESHOLD_RULES = """\
rulebook: threshold
version: 1
score: {base: 50, min: 0, max: 100}
fields:
  lead_id: {type: string, required: true}
  visits: {type: integer, min: 0}
qualifiers:
  known: {label: {en: Known}, when: known(visits)}
traits:
  - {id: busy, kind: golden, points: 20, when: visits >= 7, label: {en: Busy}}
grades:
  - {id: A, min_score: 60}
  - {id: B, min_score: 0}
next_steps:
  - {id: call, label: {en: Call}, reason: {en: Call.}}
"""


class TestThresholds:
    def test_the_number_that_ranks_best(self, tmp_path: Path) -> None:
        """Leads convert from 3 visits on; the rule says 7: 3 is proposed, with the AUC of
        the score it would give (a Mann-Whitney count here)."""
        from tests.analyze.test_measure import mann_whitney_auc

        rnd = random.Random(9)
        path = tmp_path / "leads.csv"
        rows = []
        for _ in range(1000):
            visits = rnd.randint(0, 10)
            won = rnd.random() < (0.7 if visits >= 3 else 0.1)
            rows.append((visits, won))
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["lead_id", "visits", "won"])
            w.writerows([f"L{i}", v, int(won)] for i, (v, won) in enumerate(rows))
        rules = tmp_path / "rules.yaml"
        rules.write_text(THRESHOLD_RULES, encoding="utf-8")
        report = run_json(str(path), "--outcome", "won", "--rules", str(rules))
        [th] = report["thresholds"]
        assert (th["trait"], th["field"], th["op"], th["current"], th["best"]) == \
            ("busy", "visits", ">=", 7, 3)
        scores = [(50 + 20 * (v >= 3), won) for v, won in rows]
        assert th["auc_best"] == pytest.approx(mann_whitney_auc(
            [s for s, won in scores if won], [s for s, won in scores if not won]))
        assert th["fired_best"] == sum(v >= 3 for v, _ in rows)
