"""``qualify rules doc``: the rule base as Markdown for the sales team, in en and zh."""

from __future__ import annotations

import pytest

from qualify import Rulebook, load_rulebook_text
from qualify.authoring.doc import render
from tests.authoring.conftest import Run, Write, variant


class TestPage:
    @pytest.mark.parametrize("locale", ["en", "zh"])
    def test_every_rule_is_on_the_page(self, default_rulebook: Rulebook, locale: str) -> None:
        """Each qualifier, trait and next step appears with its label and id; grades too."""
        page = render(default_rulebook, locale)
        for rule in default_rulebook.rules:
            assert f"**{rule.label[locale]}** (`{rule.id}`)" in page
        for grade in default_rulebook.grades:
            assert f"| **{grade.id}** |" in page and grade.label[locale] in page
        assert f"version {default_rulebook.version}" in page or \
            f"版本 {default_rulebook.version}" in page

    def test_conditions_in_words(self, default_rulebook: Rulebook) -> None:
        """Conditions read as words: labels, value labels, units and currency, comparisons
        in words; traits carry signed points."""
        en = render(default_rulebook, "en")
        assert "| +15 | **Urgent need** (`urgent_need`)" in en
        assert "| Time to purchase at most 30 days |" in en
        assert "| Does not understand our offer and does not see the value yet |" in en
        assert "| 11 | **Make a contact plan** (`plan_contact`) | otherwise |" in en
        assert "| Distance over 500 km |" in en
        assert "on time (`prompt`), late, defaulted, no record (`none`)" in en
        zh = render(default_rulebook, "zh")
        assert "| 预计采购时间不超过 30 天 |" in zh
        assert "（预算至少 1 万美元，或年营业额至少 100 万美元，或已列入采购计划），且" \
               "（付款记录未知，或付款记录不是违约）" in zh
        assert "| 联系人有决策权，或联系人职位为老板或高管 |" in zh
        assert "按时 (`prompt`)、逾期 (`late`)" in zh

    def test_grades_as_score_ranges(self, default_rulebook: Rulebook) -> None:
        """Each grade shows the scores it covers, from the top down."""
        page = render(default_rulebook, "en")
        assert "| **A** | 80–100 | Hot |" in page
        assert "| **D** | 0–39 | Cold |" in page

    def test_table_cells_are_escaped(self) -> None:
        """A '|' in a label cannot break the table."""
        from tests.authoring.conftest import DEFAULT_TEXT

        rb = load_rulebook_text(variant(("label: {en: Urgent need,", "label: {en: Urgent | now,"),
                                        text=DEFAULT_TEXT))
        assert "**Urgent \\| now** (`urgent_need`)" in render(rb, "en")


class TestCommand:
    def test_default_and_locale(self, run: Run) -> None:
        """Without options: the bundled rule base in its own locale; --locale zh switches."""
        en = run("doc")
        assert en.exit_code == 0 and en.stdout.startswith("# Lead qualification rules: default")
        zh = run("doc", "--locale", "zh")
        assert zh.stdout.startswith("# 线索评估规则\uff1adefault")

    def test_out_file(self, write: Write, run: Run, tmp_path: object) -> None:
        """--out writes the page to a file."""
        out = f"{tmp_path}/rules.md"
        result = run("doc", "--out", out)
        assert result.exit_code == 0
        with open(out, encoding="utf-8") as f:
            assert f.read() == run("doc").stdout

    def test_broken_rule_base(self, write: Write, run: Run) -> None:
        """A rule base that does not load gets its located errors, not a page."""
        path = write("r.yaml", "rulebook: x\nversion: 1\n")
        result = run("doc", path)
        assert result.exit_code == 2 and f"{path}:" in result.stderr and not result.stdout
