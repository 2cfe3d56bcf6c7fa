"""Fixtures and helpers for the batch tests: lead files in each format, and the command."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qualify.cli.batch import batch
from qualify.synthetic import generate
from tests.conftest import AS_OF, ROOT

DEFAULT_FIELDS = ("lead_id", "needs_product", "pain_points", "purchase_timeline_days", "budget",
                  "annual_revenue", "payment_history", "financial_health", "business_trend",
                  "in_purchase_plan", "contact_role", "is_decision_maker", "sentiment",
                  "trusts_us", "understands_offer", "value_acknowledged", "open_objections",
                  "competitors", "expected_deal_size", "repeat_potential",
                  "referral_potential", "influence", "distance_km", "stage",
                  "last_contact_date", "company")
XEDUCATION = ROOT / "examples" / "xeducation"
# Python 3.12 warns when a process with threads forks (pytest runs some): the tests that
# force the fork start method accept that
FORK_IN_THREADS = "ignore:This process .* is multi-threaded:DeprecationWarning"

# A rule base small enough to score fast: for tests about the machinery, not the rules.
TINY_RULES = """\
rulebook: tiny
version: 1
fields:
  lead_id: {type: string, required: true}
  budget: {type: number, min: 0}
qualifiers:
  can_pay: {label: {en: Can pay}, when: budget >= 10000}
traits:
  - {id: big, kind: golden, points: 20, when: budget >= 50000, label: {en: Big budget}}
grades:
  - {id: A, min_score: 60}
  - {id: B, min_score: 0}
next_steps:
  - {id: call, label: {en: Call}, reason: {en: "Call them."}}
"""


def cell(value: Any) -> str:
    """A raw lead value as an export would write it in a cell."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def write_leads(path: Path, leads: Iterable[dict[str, Any]],
                columns: tuple[str, ...] = DEFAULT_FIELDS) -> Path:
    """Write leads as CSV, JSONL (native JSON types) or Parquet (text cells), by extension."""
    rows = list(leads)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows([cell(r.get(c)) for c in columns] for r in rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: pa.array([cell(r.get(c)) or None for r in rows], pa.string())
                          for c in columns})
        pq.write_table(table, path)
    return path


def synthetic(n: int, seed: int = 1, bad_rate: float = 0.0) -> list[dict[str, Any]]:
    return list(generate(n, seed=seed, bad_rate=bad_rate))


def run(*args: str | Path) -> tuple[int, str, str]:
    """``qualify batch ARGS`` in-process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(batch, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def writing_into(pid: int, folder: Path) -> bool:
    """Process ``pid`` has a file open in ``folder`` (named or not: an O_TMPFILE file reads
    as ``folder/#123 (deleted)``)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith(f"{folder}/") for link in links)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """An output file's rows as dicts (CSV cells stay text)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


@pytest.fixture
def as_of() -> str:
    return AS_OF.isoformat()


@pytest.fixture
def leads_csv(tmp_path: Path) -> Path:
    """300 synthetic leads, about 3 % with a bad value."""
    return write_leads(tmp_path / "leads.csv", synthetic(300, seed=11, bad_rate=0.03))


@pytest.fixture
def tiny_rules(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RULES, encoding="utf-8")
    return path
