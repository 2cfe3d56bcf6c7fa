"""The summary: partition summaries merge into the summary of the whole."""

from __future__ import annotations

from qualify import LeadError
from qualify.batch.runner import Scorer, score_partition
from qualify.batch.summary import Summary, render
from tests.batch.conftest import synthetic
from tests.batch.test_runner import SPEC


class TestSummary:
    def test_merged_partitions_equal_one_partition(self) -> None:
        """Counting in three partitions and merging equals counting everything at once."""
        scorer = Scorer(SPEC)
        try:
            items = list(enumerate(synthetic(90, seed=4, bad_rate=0.1), 1))
            whole = score_partition(scorer, items).summary
            merged = Summary()
            for i in range(0, 90, 30):
                merged.merge(score_partition(scorer, items[i:i + 30]).summary)
        finally:
            scorer.close()
        assert whole == merged
        assert whole.leads == 90 and whole.errors == sum(whole.error_fields.values()) > 0
        assert sum(whole.status.values()) == whole.scored == sum(whole.grade.values())

    def test_counting_rows_equals_counting_verdicts(self) -> None:
        """A partition counted from its output rows (and its verdicts' open fields) gives
        the counts of adding each verdict, failed rows left to add_error."""
        scorer = Scorer(SPEC)
        try:
            items = list(enumerate(synthetic(400, seed=9, bad_rate=0.1), 1))
            part = score_partition(scorer, items)
            verdicts = Summary()
            for _, raw in items:
                try:
                    verdicts.add(scorer.engine.score(raw, as_of=SPEC.as_of))
                except LeadError:
                    continue
            for line, _, field, message in part.errors:
                verdicts.add_error(line, field, message)
        finally:
            scorer.close()
        assert part.summary.errors > 0
        assert part.summary == verdicts

    def test_render_names_labels_and_costs(self) -> None:
        """The printout shows trait labels with points and missing fields with points."""
        scorer = Scorer(SPEC)
        try:
            s = score_partition(scorer, list(enumerate(synthetic(60, seed=2), 1))).summary
        finally:
            scorer.close()
        text = render(s, scorer.rulebook)
        assert "No contact for over 90 days (-10)" in text
        assert "points over" in text and "weakest factor" in text
