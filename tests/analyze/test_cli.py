"""``qualify analyze`` on bad input: one line that says what to do, exit 2; outcomes it
cannot read are counted, never guessed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qualify.cli import main
from tests.analyze.conftest import run, run_json


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def leads(tmp_path: Path) -> Path:
    """Twelve leads: CRM stages Won/Lost/Open, converted 1/0 and a few blanks and oddities."""
    stages = ["Won", "Lost", "Open", "won", "Lost", "", "Won", "Lost", "Lost", "Won", "Open",
              "Lost"]
    converted = ["1", "0", "", "yes", "no", "", "TRUE", "false", "maybe", "1", "0", "0"]
    rows = [{"lead_id": f"L{i}", "budget": str(5000 * i), "crm_stage": s, "converted": c}
            for i, (s, c) in enumerate(zip(stages, converted, strict=True))]
    return write_csv(tmp_path / "leads.csv", rows)


class TestOutcomeColumn:
    def test_unknown_column_one_line_with_did_you_mean(self, leads: Path) -> None:
        """A misspelt column: one line naming the file, the closest column and the columns
        found, exit 2."""
        result = run(str(leads), "--outcome", "convertd")
        assert result.exit_code == 2
        assert result.stderr == (f"error: {leads}: no column 'convertd' for --outcome "
                                 "(did you mean 'converted'?); the columns are: lead_id, "
                                 "budget, crm_stage, converted\n")
        assert result.stdout == ""

    def test_one_class_is_a_clear_error(self, tmp_path: Path) -> None:
        """Every lead converted: nothing to measure, and the fix named."""
        path = write_csv(tmp_path / "all.csv", [{"lead_id": f"L{i}", "won": "1"}
                                                for i in range(5)])
        result = run(str(path), "--outcome", "won")
        assert result.exit_code == 2
        assert "every analysed lead converted (column 'won')" in result.stderr
        assert "--positive" in result.stderr
        assert len(result.stderr.splitlines()) == 1

    def test_blank_and_unreadable_outcomes_are_counted(self, leads: Path) -> None:
        """Blanks and 'maybe' are left out and counted; 1/yes/TRUE and 0/no/false read."""
        report = run_json(str(leads), "--outcome", "converted")
        assert (report["rows"], report["leads"], report["no_outcome"]) == (12, 9, 3)
        assert report["unknown_outcomes"] == {"maybe": 1}
        assert report["converted"] == 4
        text = run(str(leads), "--outcome", "converted").stdout
        assert "rows 12: 9 analysed, 0 could not be scored, 3 without an outcome " \
               "(1 unreadable: 'maybe' 1)" in text

    def test_positive_values(self, leads: Path) -> None:
        """--positive Won: Won (any case) converted, every other non-blank stage not."""
        report = run_json(str(leads), "--outcome", "crm_stage", "--positive", "Won")
        assert (report["leads"], report["converted"], report["no_outcome"]) == (11, 4, 1)

    def test_no_lead_has_the_outcome_in_jsonl(self, tmp_path: Path) -> None:
        """JSON lines name no columns: when no lead has the key, that is said."""
        path = tmp_path / "leads.jsonl"
        path.write_text('{"lead_id": "a"}\n{"lead_id": "b"}\n', encoding="utf-8")
        result = run(str(path), "--outcome", "won")
        assert result.exit_code == 2
        assert "no lead has a value for --outcome 'won'" in result.stderr


class TestFiles:
    def test_missing_input(self, tmp_path: Path) -> None:
        """A missing file: one line, exit 2."""
        result = run(str(tmp_path / "nope.csv"), "--outcome", "won")
        assert result.exit_code == 2
        assert "nope.csv: No such file or directory" in result.stderr

    def test_suggest_needs_a_yaml_name(self, leads: Path, tmp_path: Path) -> None:
        """--suggest writes a rule base: a name not ending .yaml is refused before work."""
        result = run(str(leads), "--outcome", "converted", "--suggest",
                     str(tmp_path / "out.csv"))
        assert result.exit_code == 2
        assert "name it .yaml" in result.stderr

    def test_without_the_extra(self, leads: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without scikit-learn: one line naming the extra to install, exit 1."""
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "sklearn" else real(name, *a))
        result = run(str(leads), "--outcome", "converted")
        assert result.exit_code == 1
        assert "pip install 'qualify[analyze]'" in result.stderr

    def test_suggest_never_overwrites_the_rule_base(self, leads: Path, tmp_path: Path) -> None:
        """--suggest naming the rule base it reads is refused, and the file is untouched."""
        rules = tmp_path / "rules.yaml"
        text = (Path(__file__).resolve().parents[2] / "rules" / "default.yaml").read_text(
            encoding="utf-8")
        rules.write_text(text, encoding="utf-8")
        result = run(str(leads), "--outcome", "converted", "--rules", str(rules),
                     "--suggest", str(rules))
        assert result.exit_code == 2
        assert "is the rule base; write the suggestion under another name" in result.stderr
        assert rules.read_text(encoding="utf-8") == text

    def test_registered_in_the_main_group(self) -> None:
        """`qualify analyze` is a command of `qualify`."""
        from click.testing import CliRunner

        result = CliRunner().invoke(main, ["analyze", "--help"])
        assert result.exit_code == 0
        assert "--outcome" in result.stdout
