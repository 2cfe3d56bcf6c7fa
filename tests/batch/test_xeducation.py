"""The real X Education list (9,240 messy leads) through examples/xeducation/.

Skips where ../shared is absent. Shows the mapping on real data: every row comes out, the one
impossible value is an error row with its line, and the grades order the real outcome.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.batch.conftest import XEDUCATION, read_rows, run


@pytest.mark.slow
def test_real_list(tmp_path: Path, shared_dir: Path, as_of: str) -> None:
    """All 9,240 rows are scored in order but one (251 visits, over the schema's 200), and
    the share that converted falls from grade A to grade D."""
    src = shared_dir / "data" / "xeducation" / "Leads.csv"
    out = tmp_path / "scored.parquet"
    code, stdout, stderr = run(src, "--out", out, "--map", XEDUCATION / "mapping.yaml",
                               "--rules", XEDUCATION / "rules.yaml", "--as-of", as_of,
                               "--workers", "2", "--report", tmp_path / "r.html")
    assert code == 1, stderr
    rows = read_rows(out)
    assert len(rows) == 9_240 and [r["line"] for r in rows] == list(range(2, 9_242))
    errors = read_rows(tmp_path / "scored.errors.csv")
    assert [(e["line"], e["field"]) for e in errors] == [("6104", "visits")]
    assert "visits: 251 is above the maximum 200" in stdout
    converted: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r["grade"]:
            converted[r["grade"]].append(r["Converted"] == "1")
    rate = {g: sum(v) / len(v) for g, v in converted.items()}
    assert rate["A"] > rate["B"] > rate["C"] > rate["D"]
    assert {r["status"] for r in rows} == {"qualified", "needs_discovery", "disqualified",
                                            None}
