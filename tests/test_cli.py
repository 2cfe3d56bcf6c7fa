"""`qualify score` on files, stdin and JSON lines; bad input exits 1 naming the field."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from qualify.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


class TestScore:
    def test_stdin(self) -> None:
        code, out, _ = run("score", "-", "--as-of", "2026-01-01",
                           stdin='{"lead_id": "s1", "budget": "25000"}')
        assert code == 0 and json.loads(out)["lead_id"] == "s1"

    def test_jsonl_one_verdict_per_line_and_errors_by_line(self, tmp_path: Path) -> None:
        """A .jsonl file gives one verdict per line; a bad line is reported, others scored."""
        f = tmp_path / "leads.jsonl"
        f.write_text('{"lead_id": "a"}\n\n{"lead_id": "b", "budget": "x"}\nnot json\n'
                     '{"lead_id": "c", "budget": NaN}\n{"lead_id": "d"}\n', encoding="utf-8")
        code, out, err = run("score", str(f))
        assert code == 1
        assert [json.loads(line)["lead_id"] for line in out.splitlines()] == ["a", "d"]
        assert f"{f}:3: budget: expected a number" in err
        assert f"{f}:4: invalid JSON" in err
        assert f"{f}:5: invalid JSON: NaN is not valid JSON" in err

    def test_json_array(self, tmp_path: Path) -> None:
        f = tmp_path / "leads.json"
        f.write_text('[{"lead_id": "a"}, {"lead_id": "b"}]', encoding="utf-8")
        code, out, _ = run("score", str(f))
        assert code == 0 and len(out.strip().splitlines()) == 2

    def test_explain_zh(self) -> None:
        code, out, _ = run("score", str(EXAMPLES / "golden_lead.json"), "--explain",
                           "--locale", "zh", "--as-of", "2026-01-01")
        assert code == 0 and out.startswith("L-1001\uff1a准客户\uff0c得分 100\uff0c评级 A")

    def test_custom_rules_and_broken_rules(self, tmp_path: Path) -> None:
        """--rules with a broken rule base exits 2 with located errors."""
        bad = tmp_path / "r.yaml"
        bad.write_text("rulebook: x\nversion: 1\nfields: {a: {type: nmber}}\n", encoding="utf-8")
        code, _, err = run("score", "--rules", str(bad), str(EXAMPLES / "empty_lead.json"))
        assert code == 2 and f"{bad}:3:" in err

    def test_bad_date_option_and_missing_file(self) -> None:
        code, _, err = run("score", "-", "--as-of", "yesterday", stdin="{}")
        assert code == 2 and "YYYY-MM-DD" in err
        code, _, err = run("score", "/nonexistent/lead.json")
        assert code != 0 and "Traceback" not in err

    def test_not_utf8(self, tmp_path: Path) -> None:
        f = tmp_path / "l.json"
        f.write_bytes(b'{"lead_id": "\xff"}')
        code, _, err = run("score", str(f))
        assert code == 1 and "UTF-8" in err and "Traceback" not in err
