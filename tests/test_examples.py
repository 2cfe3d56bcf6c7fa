"""Golden verdicts for examples/: `qualify score` on each example prints exactly these.

Regenerate after an intended change with `QUALIFY_REGEN_GOLDEN=1 pytest tests/test_examples.py`
and review the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from qualify.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
AS_OF = "2026-01-01"
LEADS = ["golden_lead", "won_customer", "empty_lead", "disqualified_lead"]
REGEN = os.environ.get("QUALIFY_REGEN_GOLDEN") == "1"


def _check(path: Path, actual: str) -> None:
    if REGEN:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path.name} missing: run with QUALIFY_REGEN_GOLDEN=1"
    assert path.read_text(encoding="utf-8") == actual


class TestGoldenVerdicts:
    @pytest.mark.parametrize("name", LEADS)
    def test_verdict_json(self, name: str) -> None:
        """The JSON verdict of each example lead is its golden file, byte for byte."""
        result = CliRunner().invoke(main, ["score", str(EXAMPLES / f"{name}.json"),
                                           "--as-of", AS_OF])
        assert result.exit_code == 0, result.output
        verdict = json.loads(result.stdout)
        _check(EXAMPLES / f"{name}.verdict.json",
               json.dumps(verdict, ensure_ascii=False, indent=2) + "\n")

    @pytest.mark.parametrize(("name", "locale"), [(n, loc) for n in LEADS for loc in ("en", "zh")])
    def test_explanation(self, name: str, locale: str) -> None:
        """--explain prints the golden human explanation in English and Chinese."""
        result = CliRunner().invoke(main, ["score", str(EXAMPLES / f"{name}.json"), "--explain",
                                           "--locale", locale, "--as-of", AS_OF])
        assert result.exit_code == 0, result.output
        _check(EXAMPLES / f"{name}.explain.{locale}.txt", result.stdout)

    def test_bad_lead_exits_1_naming_the_field(self) -> None:
        """The bad example prints no verdict, exits 1, and names the field on stderr."""
        result = CliRunner().invoke(main, ["score", str(EXAMPLES / "bad_lead.json"),
                                           "--as-of", AS_OF])
        assert result.exit_code == 1
        assert result.stdout == ""
        assert "budget: expected a number, got 'lots'" in result.stderr

    def test_golden_files_are_consistent(self) -> None:
        """In every golden verdict the points add up: base plus fired points, clamped."""
        for name in LEADS:
            v = json.loads((EXAMPLES / f"{name}.verdict.json").read_text(encoding="utf-8"))
            raw = 50 + sum(t["points"] for t in v["traits"])
            assert v["score"] == max(0, min(100, raw))
