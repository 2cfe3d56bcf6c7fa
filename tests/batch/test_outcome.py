"""qualify batch --outcome: the measure and analyse sections of ``qualify analyze``, built
from the batch's own output rows, in the summary and the report."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qualify.analyze.measure import wilson
from qualify.cli.analyze import analyze
from tests.analyze.test_rules import leaky_leads
from tests.batch.conftest import (
    DEFAULT_FIELDS,
    read_rows,
    run,
    synthetic,
    write_leads,
)
from tests.pages import WIDTH, chromium, widths

COLUMNS = (*DEFAULT_FIELDS, "won")


def with_outcomes(n: int, seed: int, bad_rate: float = 0.0) -> list[dict[str, Any]]:
    """Synthetic leads with a 'won' column that follows their budget, a few blank."""
    rnd = random.Random(seed)
    leads = synthetic(n, seed=seed, bad_rate=bad_rate)
    for i, lead in enumerate(leads):
        budget = lead.get("budget")
        p = 0.7 if isinstance(budget, int | float) and budget >= 20000 else 0.25
        lead["won"] = "" if i % 41 == 0 else ("yes" if rnd.random() < p else "no")
    return leads


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, str, str]]:
    folder = tmp_path_factory.mktemp("outcome")
    src = write_leads(folder / "leads.csv", with_outcomes(600, 4, bad_rate=0.02), COLUMNS)
    got = run(src, "--out", folder / "out.csv", "--outcome", "won", "--as-of", "2026-01-01",
              "--workers", "1", "--report", folder / "r.html")
    return folder, got


def _block(text: str, end: str) -> list[str]:
    """The lines from 'measure' to the first line starting with ``end`` (or to the last),
    without the blank lines at its end."""
    lines = text.splitlines()
    i = lines.index("measure")
    j = next((k for k in range(i, len(lines)) if lines[k].startswith(end)), len(lines))
    while lines[j - 1] == "":
        j -= 1
    return lines[i:j]


class TestSummary:
    def test_grades_counted_from_the_output_file(
            self, done: tuple[Path, tuple[int, str, str]]) -> None:
        """The outcome column is copied to the output, and each grade's printed leads,
        conversions, rate and Wilson interval are those counted from that file here."""
        folder, (code, out, _) = done
        assert code == 1  # a few bad rows, as every batch says
        rows = [r for r in read_rows(folder / "out.csv") if not r["error"] and r["won"]]
        assert "measure" in out.splitlines()
        for grade in ("A", "B", "C", "D"):
            mine = [r["won"] == "yes" for r in rows if r["grade"] == grade]
            if not mine:
                continue
            k, n = sum(mine), len(mine)
            low, high = wilson(k, n)
            line = next(x for x in _block(out, "wrote ") if x.startswith(f"  {grade}  "))
            assert line.split()[-9:] == [
                f"{n:,}", f"{k:,}", f"{100 * k / n:.1f}", "%", f"{100 * low:.1f}", "%", "to",
                f"{100 * high:.1f}", "%"]
        blank = sum(1 for r in read_rows(folder / "out.csv") if not r["error"] and not r["won"])
        assert f"outcome column 'won': {blank:,} scored leads without an outcome left out" in out

    def test_same_sections_as_analyze(self, done: tuple[Path, tuple[int, str, str]]) -> None:
        """The measure and analyse sections are the lines ``qualify analyze`` prints for the
        same input (the same functions, over the same verdicts)."""
        folder, (_, out, _) = done
        result = CliRunner().invoke(analyze, [str(folder / "leads.csv"), "--outcome", "won",
                                              "--as-of", "2026-01-01"])
        assert result.exit_code == 0, result.output
        assert _block(out, "wrote ") == _block(result.stdout, "  proposals")

    def test_a_leaking_field_is_flagged(self, tmp_path: Path) -> None:
        """A note written after the call ('closed' / 'lost' for a third of the leads) is
        flagged in the summary and the report, with the evidence ``qualify analyze`` gives;
        with two workers too (the field values travel back with the rows)."""
        path, rules = leaky_leads(tmp_path)
        code, out, err = run(path, "--out", tmp_path / "o.csv", "--rules", rules,
                             "--outcome", "won", "--workers", "2", "--report",
                             tmp_path / "r.html")
        assert code == 0, err
        lines = out.splitlines()
        head = next(x for x in lines if x.startswith("  leakage "))
        assert head.endswith("leads): note")
        at = lines.index(head)
        assert lines[at + 1].startswith("    note (note): alone AUC ")
        assert "near-pure values cover 33.3 % of leads" in lines[at + 1]
        assert lines[at + 2] == "      read by closed"
        closed = sum(1 for x in read_rows(path) if x["note"] == "closed")
        assert f"      'closed': {closed:,} leads, 100.0 % converted" in lines
        page = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "<h2>Fields that give the outcome away</h2>" in page
        assert "<b>note</b>: alone AUC " in page
        assert f"closed ({closed:,} leads, 100.0 % converted)" in page
        result = CliRunner().invoke(analyze, [str(path), "--outcome", "won", "--rules",
                                              str(rules)])
        assert _block(out, "wrote ") == _block(result.stdout, "  proposals")

    def test_workers_give_the_same_analysis(self, tmp_path: Path) -> None:
        """Two worker processes send their rows back: the sections are the same as one."""
        src = write_leads(tmp_path / "leads.csv", with_outcomes(300, 8), COLUMNS)
        outs = []
        for workers in ("1", "2"):
            code, out, err = run(src, "--out", tmp_path / f"o{workers}.csv", "--outcome",
                                 "won", "--as-of", "2026-01-01", "--workers", workers)
            assert code == 0, err
            outs.append(out[out.index("\nmeasure\n"):out.index("\nwrote ")])
        assert outs[0] == outs[1]


class TestErrors:
    def test_missing_column_before_scoring(self, tmp_path: Path) -> None:
        """A misspelt outcome column: exit 2, one line with the closest name and the
        columns found, and no output file."""
        src = write_leads(tmp_path / "leads.csv", with_outcomes(20, 1), COLUMNS)
        code, out, err = run(src, "--out", tmp_path / "o.csv", "--outcome", "wonn")
        assert (code, out) == (2, "")
        assert err.startswith(f"error: {src}: no column 'wonn' for --outcome (did you mean "
                              "'won'?); the columns are: lead_id, needs_product, ")
        assert err.count("\n") == 1
        assert not (tmp_path / "o.csv").exists()

    def test_positive_needs_outcome(self, tmp_path: Path) -> None:
        """--positive alone is a usage error."""
        src = write_leads(tmp_path / "leads.csv", with_outcomes(5, 1), COLUMNS)
        code, _, err = run(src, "--out", tmp_path / "o.csv", "--positive", "yes")
        assert code == 2 and "--positive needs --outcome COLUMN" in err

    def test_one_outcome_is_a_note_not_a_failure(self, tmp_path: Path) -> None:
        """Every lead won: the batch still succeeds; the summary says why there is no
        analysis."""
        leads = with_outcomes(30, 2)
        for lead in leads:
            lead["won"] = "yes"
        src = write_leads(tmp_path / "leads.csv", leads, COLUMNS)
        code, out, err = run(src, "--out", tmp_path / "o.csv", "--outcome", "won",
                             "--workers", "1")
        assert code == 0, err
        assert "no analysis: " in out and "every analysed lead converted" in out

    def test_positive_values(self, tmp_path: Path) -> None:
        """--positive names the converted value; every other non-blank value is not."""
        leads = with_outcomes(200, 3)
        for lead in leads:
            lead["won"] = {"yes": "Won", "no": "Lost", "": ""}[lead["won"]]
        src = write_leads(tmp_path / "leads.csv", leads, COLUMNS)
        code, out, err = run(src, "--out", tmp_path / "o.csv", "--outcome", "won",
                             "--positive", "Won", "--workers", "1")
        assert code == 0, err
        won = sum(1 for lead in leads if lead["won"] == "Won")
        known = sum(1 for lead in leads if lead["won"])
        assert f"leads {known:,}, converted {won:,}, base rate " \
               f"{100 * won / known:.1f} %" in out


class TestReport:
    def test_sections_and_figures(self, done: tuple[Path, tuple[int, str, str]]) -> None:
        """The batch page adds conversion per grade, gains, calibration and the rules, by
        label, to its own charts."""
        folder, _ = done
        page = (folder / "r.html").read_text(encoding="utf-8")
        assert "Grade distribution" in page  # the batch's own
        for title in ("Against the outcome", "Conversion per grade", "Gains", "Calibration",
                      "Rules that help and hurt"):
            assert f"<h2>{title}" in page, title
        assert "<script" not in page
        rows = [r for r in read_rows(folder / "out.csv") if not r["error"] and r["won"]]
        a = [r["won"] == "yes" for r in rows if r["grade"] == "A"]
        if a:
            assert f"<td>{len(a):,}</td><td>{sum(a):,}</td>" in page

    @pytest.mark.slow
    @pytest.mark.skipif(chromium() is None, reason="no Chromium installed")
    def test_no_sideways_scroll_at_1280(self, done: tuple[Path, tuple[int, str, str]],
                                        tmp_path: Path) -> None:
        """Laid out by headless Chromium in a 1,280-px window, the batch page with its
        outcome sections scrolls sideways nowhere."""
        folder, _ = done
        got = widths(folder / "r.html", tmp_path)
        assert got is not None
        scroll, client, inner = got
        assert client <= WIDTH and (scroll, inner) == (client, 0)
