"""``qualify map check``: a mapping against the rule base and an input's columns (issue 15,
item 1: ``from: ["Lead Sourc"]`` ran, exited 0, and left the field missing from every lead)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner, Result

from qualify.cli import main

HEADER = "Prospect ID,Lead Source,Budget,Country\n"
MAPPING = """name: export
fields:
  lead_id: {from: Prospect ID}
  budget: {from: Budget}
  stage: {from: [Stage, Lead Source], values: {Google: new}}
  sentiment: {value: neutral}
"""


def run(*args: object) -> Result:
    result = CliRunner().invoke(main, ["map", "check", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result


def files(tmp_path: Path, mapping: str, header: str = HEADER) -> tuple[Path, Path]:
    (tmp_path / "m.yaml").write_text(mapping, encoding="utf-8")
    (tmp_path / "in.csv").write_text(header + "p1,Google,100,DE\n", encoding="utf-8")
    return tmp_path / "m.yaml", tmp_path / "in.csv"


class TestColumns:
    def test_a_typo_in_a_column_is_located_with_did_you_mean(self, tmp_path: Path) -> None:
        """The field's 'from' is located; the columns no field reads are listed; exit 1."""
        mapping, data = files(tmp_path, MAPPING.replace("{from: Budget}", "{from: Budgte}"))
        result = run(mapping, data)
        assert result.exit_code == 1
        assert result.stdout.splitlines() == [
            f"{mapping}:4:18: unknown-column: field 'budget' reads 'Budgte': {data} has no "
            "such column (did you mean 'Budget'?)",
            f"{data}: 2 columns no field reads: Budget, Country"]

    def test_one_alternative_present_is_enough(self, tmp_path: Path) -> None:
        """stage lists Stage or Lead Source: the export has the second. Constants read none."""
        mapping, data = files(tmp_path, MAPPING)
        result = run(mapping, data)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            f"{data}: 1 column no field reads: Country",
            f"{mapping}: ok (4 fields; 3 of 4 columns of {data} read)"]

    def test_all_alternatives_missing_names_them(self, tmp_path: Path) -> None:
        mapping, data = files(tmp_path, MAPPING, header="Prospect ID,Source,Budget,Country\n")
        result = run(mapping, data, "--format", "json")
        assert result.exit_code == 1
        doc = json.loads(result.stdout)
        [problem] = doc["problems"]
        assert problem["message"] == (f"field 'stage' reads 'Stage' or 'Lead Source': {data} "
                                      "has no such column")
        assert problem["line"] == 5
        assert doc["unread_columns"] == ["Source", "Country"]

    def test_jsonl_and_parquet_inputs(self, tmp_path: Path) -> None:
        """JSON Lines: the keys of the records; Parquet: its schema."""
        mapping, _ = files(tmp_path, MAPPING.replace("{from: Budget}", "{from: Budgte}"))
        jsonl = tmp_path / "in.jsonl"
        jsonl.write_text('{"Prospect ID": "a", "Budget": 1}\n{"Lead Source": "x"}\n',
                         encoding="utf-8")
        parquet = tmp_path / "in.parquet"
        pq.write_table(pa.table({"Prospect ID": ["a"], "Budget": [1], "Stage": ["new"]}),
                       parquet)
        for data in (jsonl, parquet):
            result = run(mapping, data)
            assert result.exit_code == 1
            assert "did you mean 'Budget'?" in result.stdout


class TestRuleBase:
    def test_without_input_the_rule_base_is_checked(self, tmp_path: Path) -> None:
        """A target that is not a field of the rule base: located, exit 1."""
        mapping, _ = files(tmp_path, MAPPING.replace("  budget:", "  budgte:"))
        result = run(mapping)
        assert result.exit_code == 1
        assert f"{mapping}:4:3: unknown-field: 'budgte' is not a field" in result.stdout

    def test_a_broken_rule_base_exits_2(self, tmp_path: Path) -> None:
        mapping, _ = files(tmp_path, MAPPING)
        rules = tmp_path / "r.yaml"
        rules.write_text("rulebook: [", encoding="utf-8")
        result = run(mapping, "--rules", rules)
        assert result.exit_code == 2
        assert f"{rules}:" in result.stderr

    def test_an_unknown_input_format_is_one_line(self, tmp_path: Path) -> None:
        """An input it cannot read: one line, exit 2 (nothing was checked)."""
        mapping, _ = files(tmp_path, MAPPING)
        result = run(mapping, tmp_path / "leads.xlsx")
        assert result.exit_code == 2
        assert "unknown format '.xlsx'" in result.output
