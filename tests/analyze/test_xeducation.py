"""The real X Education list (../shared; skipped without it) through ``qualify analyze``.

Its rule base reads ``tags`` and ``lead_quality``, which the sales team records after
speaking to a lead: the analysis must flag both as leakage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.analyze.conftest import run_json
from tests.conftest import ROOT, SHARED

XEDUCATION = ROOT / "examples" / "xeducation"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    src = SHARED / "data" / "xeducation" / "Leads.csv"
    if not src.is_file():
        pytest.skip("../shared/data/xeducation/Leads.csv is not present beside the checkout")
    out = tmp_path_factory.mktemp("xeducation") / "suggested.yaml"
    report = run_json(str(src), "--outcome", "Converted", "--map",
                      str(XEDUCATION / "mapping.yaml"), "--rules", str(XEDUCATION / "rules.yaml"),
                      "--suggest", str(out), "--target", "1000")
    report["suggested_file"] = Path(out)
    return report


@pytest.mark.slow
class TestXEducation:
    def test_every_row_counted(self, report: dict[str, Any]) -> None:
        """9,240 rows: 9,239 analysed, the one with 251 visits not scored."""
        assert (report["rows"], report["leads"], report["errors"], report["no_outcome"]) == \
            (9_240, 9_239, 1, 0)
        assert report["base_rate"] == pytest.approx(3_560 / 9_239)

    def test_tags_and_lead_quality_leak(self, report: dict[str, Any]) -> None:
        """Both fields recorded after the call are flagged, with the rules that read them."""
        leaks = {lk["field"]: lk for lk in report["leaks"]}
        assert {"tags", "lead_quality"} <= set(leaks)
        assert "will_revert" in leaks["tags"]["read_by"]
        assert "poor_quality" in leaks["lead_quality"]["read_by"]
        assert {p["value"] for p in leaks["lead_quality"]["pure_values"]} == {"worst"}

    def test_auc_in_a_sane_range(self, report: dict[str, Any]) -> None:
        """The leaky rule base ranks well (too well: the notes are hindsight)."""
        assert 0.85 < report["auc"] < 0.99
        low, high = report["auc_interval"]
        assert low < report["auc"] < high

    def test_grades_order_the_outcome(self, report: dict[str, Any]) -> None:
        """Conversion falls from grade A to grade D."""
        rates = [g["rate"] for g in report["grades"]]
        assert rates == sorted(rates, reverse=True)

    def test_suggestion_does_not_lose(self, report: dict[str, Any]) -> None:
        """Re-fitted points rank held-out folds at least as well as the current ones."""
        s = report["suggestion"]
        assert s["cv_auc_after"] >= s["cv_auc_before"] - 0.005
        assert report["suggested_file"].is_file()
