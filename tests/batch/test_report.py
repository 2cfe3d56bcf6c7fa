"""--report: one self-contained HTML page with the charts asked for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.batch.conftest import run, synthetic, write_leads
from tests.batch.test_compare import changed_rules
from tests.pages import WIDTH, Tags, chromium, widths


class TestReport:
    def test_self_contained_with_grades_and_migration(self, tmp_path: Path,
                                                      as_of: str) -> None:
        """The page loads nothing from outside (no scripts, links or remote images), draws
        the grade distribution, and with --compare the from -> to migration matrix."""
        leads = synthetic(300, seed=9, bad_rate=0.02)
        leads[0]["lead_id"] = "<script>alert(1)</script>"
        src = write_leads(tmp_path / "leads.csv", leads)
        run(src, "--out", tmp_path / "a.parquet", "--as-of", as_of, "--workers", "1")
        run(src, "--out", tmp_path / "b.parquet", "--as-of", as_of, "--workers", "1",
            "--rules", changed_rules(tmp_path), "--compare", tmp_path / "a.parquet",
            "--report", tmp_path / "r.html")
        page = (tmp_path / "r.html").read_text(encoding="utf-8")
        parser = Tags()
        parser.feed(page)
        tags = {t for t, _ in parser.tags}
        assert "script" not in tags and "link" not in tags and "img" not in tags
        assert not [a for _, attrs in parser.tags for k, a in attrs.items()
                    if k in ("src", "href") and a]
        assert "<script>alert" not in page  # lead values are escaped
        assert "Grade distribution" in page and "Grade migration" in page
        matrix = page[page.index('class="matrix"'):]
        assert re.search(r"<th class=l>before \\ now</th><th>A</th><th>B</th><th>C</th>"
                         r"<th>D</th>", matrix)
        assert page.count("<svg") >= 6
        assert "+trait big_order" in page

    def test_without_compare_there_is_no_matrix(self, tmp_path: Path, as_of: str) -> None:
        """A plain run's report has the charts and no comparison section."""
        src = write_leads(tmp_path / "leads.csv", synthetic(50, seed=1))
        run(src, "--out", tmp_path / "o.csv", "--as-of", as_of, "--workers", "1",
            "--report", tmp_path / "r.html")
        page = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "Grade distribution" in page and "Grade migration" not in page

    def test_charts_speak_in_labels_and_fit_their_column(self, tmp_path: Path,
                                                          as_of: str) -> None:
        """Traits and fields by their labels, not their ids; charts shrink to their column
        (a 640-wide chart in a 535-wide column scrolled the page sideways at 1,280 px: seen
        in headless Chromium)."""
        src = write_leads(tmp_path / "leads.csv", synthetic(300, seed=3))
        run(src, "--out", tmp_path / "o.csv", "--as-of", as_of, "--workers", "1",
            "--report", tmp_path / "r.html")
        page = (tmp_path / "r.html").read_text(encoding="utf-8")
        traits = page[page.index("Most fired traits"):page.index("Weakest factor")]
        assert "Urgent need (+15)" in traits and "urgent_need" not in traits
        missing = page[page.index("Missing fields that cost"):]
        assert "Budget" in missing or "Time to purchase" in missing
        assert "svg{max-width:100%;height:auto}" in page

    @pytest.mark.slow
    @pytest.mark.skipif(chromium() is None, reason="no Chromium installed")
    def test_no_sideways_scroll_at_1280(self, tmp_path: Path, as_of: str) -> None:
        """Laid out by headless Chromium in a 1,280-px window, the page with --compare (its
        widest: the matrix and the changed leads) scrolls sideways nowhere."""
        leads = synthetic(300, seed=9, bad_rate=0.02)
        src = write_leads(tmp_path / "leads.csv", leads)
        run(src, "--out", tmp_path / "a.parquet", "--as-of", as_of, "--workers", "1")
        run(src, "--out", tmp_path / "b.parquet", "--as-of", as_of, "--workers", "1",
            "--rules", changed_rules(tmp_path), "--compare", tmp_path / "a.parquet",
            "--report", tmp_path / "r.html")
        got = widths(tmp_path / "r.html", tmp_path)
        assert got is not None
        scroll, client, inner = got
        assert client <= WIDTH and (scroll, inner) == (client, 0)
