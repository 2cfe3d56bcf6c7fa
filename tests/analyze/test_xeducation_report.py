"""The real X Education list (../shared; skipped without it), leak-free rule base: the
binning proposals, the call list and the page, checked against the CSV itself."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.analyze.conftest import run, run_json
from tests.conftest import ROOT, SHARED
from tests.pages import WIDTH, chromium, widths

XEDUCATION = ROOT / "examples" / "xeducation"
SOURCE = SHARED / "data" / "xeducation" / "Leads.csv"
ARGS = ["--outcome", "Converted", "--map", str(XEDUCATION / "mapping.yaml"), "--rules",
        str(XEDUCATION / "rules-noleak.yaml")]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    if not SOURCE.is_file():
        pytest.skip("../shared/data/xeducation/Leads.csv is not present beside the checkout")
    out = tmp_path_factory.mktemp("xeducation-report")
    result = run(str(SOURCE), *ARGS, "--report", str(out / "r.html"), "--call-list",
                 str(out / "calls.csv"))
    assert result.exit_code == 0, result.output
    return run_json(str(SOURCE), *ARGS), out


def _rows() -> list[dict[str, str]]:
    with SOURCE.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
class TestXEducationReport:
    def test_time_on_site_cut_counted_from_the_csv(
            self, real: tuple[dict[str, Any], Path]) -> None:
        """The proposed cut on the time on the site splits the analysed leads as the CSV's
        own column does (the row with 251 visits was not scored, so it is left out)."""
        report, _ = real
        cut = next(c for c in report["binning"] if c["field"] == "seconds_on_site")
        value = cut["value"]
        rows = [r for r in _rows() if r["TotalVisits"] != "251"]
        above = [r["Converted"] == "1" for r in rows
                 if r["Total Time Spent on Website"] != ""
                 and float(r["Total Time Spent on Website"]) >= value]
        below = [r["Converted"] == "1" for r in rows
                 if r["Total Time Spent on Website"] != ""
                 and float(r["Total Time Spent on Website"]) < value]
        assert (cut["at_least"]["leads"], cut["at_least"]["converted"]) == (len(above),
                                                                            sum(above))
        assert (cut["below"]["leads"], cut["below"]["converted"]) == (len(below), sum(below))
        assert cut["kind"] == "golden" and cut["read_by"] == ["long_visit", "short_visit"]

    def test_call_list_is_every_lead_not_disqualified(
            self, real: tuple[dict[str, Any], Path]) -> None:
        """Every lead has an outcome: the list holds all but the disqualified, by score."""
        report, out = real
        text = (out / "calls.csv").read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(text.splitlines()))
        disqualified = next(s["leads"] for s in report["statuses"]
                            if s["status"] == "disqualified")
        assert len(rows) == report["leads"] - disqualified
        scores = [int(r["score"]) for r in rows]
        assert scores == sorted(scores, reverse=True)
        assert "Prospect ID" not in rows[0]  # the lead id itself, shown once as lead_id
        assert rows[0]["Lead Number"].isdigit()

    @pytest.mark.skipif(chromium() is None, reason="no Chromium installed")
    def test_page_fits_1280(self, real: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
        """The real page (36-character ids, long labels) scrolls sideways nowhere."""
        _, out = real
        got = widths(out / "r.html", tmp_path)
        assert got is not None
        scroll, client, inner = got
        assert client <= WIDTH and (scroll, inner) == (client, 0)
