"""--report and --call-list: the page a sales manager reads, and the list to call from.

The call list is checked against verdicts computed here by the engine alone; the page's
figures against the JSON analysis; hostile lead values against escaping and spreadsheet
formulas; the layout in headless Chromium (skipped without it).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.analyze.conftest import Synthetic, run, run_json
from tests.analyze.test_cli import write_csv
from tests.pages import WIDTH, Tags, chromium, widths


def read_calls(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("\ufeff")  # Excel reads UTF-8 by its BOM
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


@pytest.fixture(scope="module")
def pages(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic leads analysed with every option that adds a section."""
    out = tmp_path_factory.mktemp("pages")
    result = run(str(synthetic.path), "--outcome", "converted", "--target", "200",
                 "--suggest", str(out / "s.yaml"), "--report", str(out / "r.html"),
                 "--call-list", str(out / "calls.csv"))
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'r.html'}" in result.stdout
    return out


class TestCallList:
    def test_open_leads_by_score(self, synthetic: Synthetic, pages: Path) -> None:
        """Some leads have no outcome yet: the list holds exactly those not disqualified,
        best score first (ties by line), with the engine's own score, grade and next step."""
        rows = read_calls(pages / "calls.csv")
        expected = sorted(
            (line for line, v in synthetic.verdicts.items()
             if line not in synthetic.outcome and v.status != "disqualified"),
            key=lambda line: (-synthetic.verdicts[line].score, line))
        assert [int(r["line"]) for r in rows] == expected
        assert [int(r["rank"]) for r in rows] == list(range(1, len(expected) + 1))
        for r in rows:
            v = synthetic.verdicts[int(r["line"])]
            assert (r["lead_id"], int(r["score"]), r["grade"], r["status"], r["next_step"]) \
                == (v.lead_id, v.score, v.grade, v.status, v.next_step["id"])
            assert r["next_step_label"] == v.next_step["label"]
        assert "outcome" not in rows[0]  # open leads have none

    def test_reason_is_the_strongest_traits_by_label(self, synthetic: Synthetic,
                                                     pages: Path) -> None:
        """Each reason names the fired traits by label and points, golden first, the
        biggest points first, four at most."""
        for r in read_calls(pages / "calls.csv"):
            traits = synthetic.verdicts[int(r["line"])].traits
            ranked = sorted(traits, key=lambda t: (t["points"] < 0, -abs(t["points"]),
                                                   t["id"]))
            words = [f"{t['label']} ({t['points']:+d})" for t in ranked[:4]]
            if len(ranked) > 4:
                words.append(f"{len(ranked) - 4} more")
            assert r["reason"] == "; ".join(words)

    def test_hostile_values_are_quoted_and_never_formulas(self, tmp_path: Path) -> None:
        """Values a spreadsheet would run (= + - @) get a leading quote; commas, quotes and
        line breaks survive the csv round trip; with every outcome known the list holds all
        leads, with their outcome."""
        ids = ['=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)",
               'a,b "c"\nd', "<script>alert(1)</script>", "plain"]
        src = write_csv(tmp_path / "leads.csv", [
            {"lead_id": lead, "budget": str(20000 * (i + 1)), "won": str(i % 2)}
            for i, lead in enumerate(ids)])
        result = run(str(src), "--outcome", "won", "--call-list", str(tmp_path / "c.csv"),
                     "--report", str(tmp_path / "r.html"))
        assert result.exit_code == 0, result.output
        rows = read_calls(tmp_path / "c.csv")
        got = {r["lead_id"] for r in rows}
        safe = {("'" + i if i[0] in "=+-@" else i) for i in ids}
        assert got <= safe and len(got) == len(rows)
        assert {r["outcome"] for r in rows} <= {"converted", "not converted"}
        page = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


class TestPage:
    def test_self_contained(self, pages: Path) -> None:
        """No scripts, stylesheets, images or frames; the one link is the call list as a
        data: URI, which decodes to the head of --call-list's file."""
        page = (pages / "r.html").read_text(encoding="utf-8")
        parser = Tags()
        parser.feed(page)
        tags = {t for t, _ in parser.tags}
        assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
        links = [a[k] for _, a in parser.tags for k in ("src", "href") if a.get(k)]
        assert len(links) == 1
        link = str(links[0])
        assert link.startswith("data:text/csv;charset=utf-8,")
        linked = unquote(link.split(",", 1)[1])
        whole = (pages / "calls.csv").read_bytes().decode("utf-8")
        assert whole.startswith(linked)

    def test_grade_figures_are_the_analysis(self, synthetic: Synthetic, pages: Path) -> None:
        """The conversion-per-grade table shows the JSON analysis' counts, rates and Wilson
        intervals, each grade with its label."""
        report = run_json(str(synthetic.path), "--outcome", "converted")
        page = (pages / "r.html").read_text(encoding="utf-8")
        table = page[page.index("<h2>Conversion per grade"):page.index("<h2>Gains")]
        for g in report["grades"]:
            row = (rf"<td class=l>{g['grade']} · [^<]+</td><td>{g['leads']:,}</td>"
                   rf"<td>{g['converted']:,}</td><td>{100 * g['rate']:.1f} %</td>"
                   rf"<td>{100 * g['low']:.1f} % to {100 * g['high']:.1f} %</td>")
            assert re.search(row, table), row

    def test_labels_not_ids(self, pages: Path, synthetic: Synthetic) -> None:
        """The rules table names traits by their labels; the call list shows grades and
        next steps by label."""
        page = (pages / "r.html").read_text(encoding="utf-8")
        rules = page[page.index("<h2>Rules that help and hurt"):]
        assert ">Urgent need</td>" in rules and ">urgent_need</td>" not in rules
        assert "hurts</span>" in rules  # nearby is golden but converts less: it hurts
        calls = page[page.index("<h2>Call first"):page.index("<h2>Conversion per grade")]
        assert ">discover<" not in calls and ">qualified<" not in calls

    def test_every_section(self, pages: Path) -> None:
        """With --suggest and --target the page has every section."""
        page = (pages / "r.html").read_text(encoding="utf-8")
        for title in ("Call first", "Conversion per grade", "Gains", "Calibration",
                      "Rules that help and hurt", "Suggested points", "Leads needed"):
            assert f"<h2>{title}" in page, title
        assert page.count("<svg") == 3  # grades, gains, score bands

    @pytest.mark.slow
    @pytest.mark.skipif(chromium() is None, reason="no Chromium installed")
    def test_no_sideways_scroll_at_1280(self, pages: Path, tmp_path: Path) -> None:
        """Laid out by headless Chromium in a 1,280-px window, neither the page nor any
        table in it scrolls sideways."""
        got = widths(pages / "r.html", tmp_path)
        assert got is not None
        scroll, client, inner = got
        assert client <= WIDTH
        assert (scroll, inner) == (client, 0)


class TestOptions:
    def test_names_checked(self, synthetic: Synthetic, tmp_path: Path) -> None:
        """A report not named .html and a call list not named .csv are usage errors; no
        output may overwrite the input."""
        src = str(synthetic.path)
        bad = [(["--report", str(tmp_path / "r.txt")], "--report"),
               (["--call-list", str(tmp_path / "c.xlsx")], "--call-list")]
        for args, option in bad:
            result = run(src, "--outcome", "converted", *args)
            assert result.exit_code == 2 and option in result.stderr
        same = tmp_path / "in.csv"
        same.write_text("lead_id,won\nL1,1\n", encoding="utf-8")
        result = run(str(same), "--outcome", "won", "--call-list", str(same))
        assert result.exit_code == 2
        assert "is the input; write the call list under another name" in result.stderr

    def test_unwritable_folder_is_one_line(self, synthetic: Synthetic, tmp_path: Path) -> None:
        """A report into a folder that does not exist: one error line, exit 2."""
        result = run(str(synthetic.path), "--outcome", "converted", "--report",
                     str(tmp_path / "nowhere" / "r.html"))
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
