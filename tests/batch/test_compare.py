"""--compare: which leads changed status, grade or next step after a rule change, and why."""

from __future__ import annotations

import random
from pathlib import Path

from qualify.batch.compare import Comparer, Previous, Snapshot, causes
from qualify.batch.rows import Layout
from qualify.rulebook import default_rules_path
from tests.batch.conftest import read_rows, run, synthetic, write_leads


def changed_rules(tmp_path: Path) -> Path:
    """The default rule base with a lower bar for a big order (50000 -> 20000)."""
    text = default_rules_path().read_text(encoding="utf-8")
    assert "when: expected_deal_size >= 50000" in text
    path = tmp_path / "changed.yaml"
    path.write_text(text.replace("when: expected_deal_size >= 50000",
                                 "when: expected_deal_size >= 20000"), encoding="utf-8")
    return path


def key(row: dict[str, object]) -> tuple[object, ...]:
    return row["status"], row["grade"], row["next_step"]


class TestCompare:
    def test_changes_are_exactly_the_leads_that_moved(self, tmp_path: Path, as_of: str) -> None:
        """The changes file lists every lead whose status, grade or next step differs, and
        only those; the cause named is the rule that was changed."""
        src = write_leads(tmp_path / "leads.csv", synthetic(400, seed=21, bad_rate=0.02))
        run(src, "--out", tmp_path / "before.parquet", "--as-of", as_of, "--workers", "1")
        code, stdout, _ = run(src, "--out", tmp_path / "after.csv", "--as-of", as_of,
                              "--rules", changed_rules(tmp_path), "--compare",
                              tmp_path / "before.parquet", "--workers", "2")
        assert code == 1  # the bad rows are still bad
        before = {r["lead_id"]: r for r in read_rows(tmp_path / "before.parquet")}
        after = read_rows(tmp_path / "after.csv")
        moved = [r["lead_id"] for r in after
                 if key(r) != tuple(v or "" for v in key(before[r["lead_id"]]))]
        changes = read_rows(tmp_path / "after.changes.csv")
        assert moved and [c["lead_id"] for c in changes] == moved
        assert all(c["causes"] == "+trait big_order" for c in changes)
        assert f"changed: {len(moved)} " in stdout and "+trait big_order" in stdout

    def test_a_shuffled_previous_file_matches_by_lead_id(self, tmp_path: Path) -> None:
        """Leads are matched by id whatever the order; new and dropped leads are counted."""
        layout = Layout((), ("need",), "sha")
        rows = [(i, f"L{i}", "qualified", 60, "B", "met", "t1", "close", None, "", "sha", None)
                for i in range(50)]
        prev = tmp_path / "prev.jsonl"
        write_leads(prev, [dict(zip(layout.names, r, strict=True)) for r in
                           random.Random(1).sample(rows[5:], 45)])
        comparer = Comparer(Previous(prev), layout)
        now = [(*r[:4], "A" if r[0] % 10 == 0 else "B", *r[5:]) for r in rows]
        comparer.add_rows(now[:-3])  # three leads of the previous file are gone now
        result = comparer.finish()
        assert (result.compared, result.new, result.dropped) == (42, 5, 3)
        assert result.grade_changed == 4  # L10, L20, L30, L40 (L0 is new)
        assert result.migration["B", "A"] == 4 and result.migration["B", "B"] == 38
        assert result.causes == {"grade bands changed": 4}

    def test_causes_name_the_rules(self) -> None:
        """Causes: traits that fire now or no longer, qualifier moves, else what changed."""
        a = Snapshot("x", 1, "x", "needs_discovery", "C", 50, "discover_needs",
                     frozenset({"nearby"}), (("need", "unknown"),))
        b = Snapshot("x", 1, "x", "qualified", "B", 65, "close",
                     frozenset({"urgent_need"}), (("need", "met"),))
        assert causes(a, b) == ["+trait urgent_need", "-trait nearby",
                                "qualifier need unknown->met"]
        same_traits = Snapshot("x", 1, "x", "needs_discovery", "C", 50, "plan_contact",
                               frozenset({"nearby"}), (("need", "unknown"),))
        assert causes(a, same_traits) == ["next-step rules changed"]
