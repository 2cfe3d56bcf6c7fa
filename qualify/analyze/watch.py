"""``qualify batch --outcome COLUMN``: the measure and analyse sections of ``qualify analyze``,
from the rows a batch run writes. Batch knows it only as a ``Watcher`` (``batch/job.py``), so
batch does not depend on analyze; analyze builds on batch."""

from __future__ import annotations

import datetime as dt
from html import escape

from qualify.analyze.collect import Dataset, Rows, check_outcome_column
from qualify.analyze.outcomes import AnalyzeError, OutcomeReader
from qualify.analyze.report import Analysis, analyse, leak_lines, measure_lines, rules_lines
from qualify.batch.pipeline import BatchError
from qualify.batch.rows import Layout, Row
from qualify.batch.runner import Values
from qualify.rulebook import Rulebook


class OutcomeWatcher:
    """Reads each output row's verdict and outcome; measures and analyses them at the end
    (a list with one outcome only gets a note, not a failure)."""

    def __init__(self, column: str, positive: tuple[str, ...] = ()) -> None:
        self.column = column
        self.positive = positive
        self.rows: Rows | None = None
        self.analysis: Analysis | None = None
        self.error: str | None = None

    def check(self, columns: tuple[str, ...], where: str) -> None:
        try:
            check_outcome_column(columns, where, self.column)
        except AnalyzeError as e:
            raise BatchError(str(e)) from None

    def start(self, rulebook: Rulebook, as_of: dt.date, layout: Layout, source: str) -> None:
        data = Dataset(rulebook, source, self.column, as_of)
        self.rows = Rows(data, layout, OutcomeReader(self.positive), keep_leads=False)

    def add(self, row: Row, values: Values | None) -> None:
        assert self.rows is not None
        self.rows.add(row, values)

    def finish(self) -> None:
        assert self.rows is not None
        try:
            self.analysis = analyse(self.rows.data, improve=False)
        except AnalyzeError as e:
            self.error = str(e)

    def lines(self) -> list[str]:
        if self.analysis is not None:
            return [f"outcome column '{self.column}': {self.analysis.data.no_outcome:,} scored "
                    "leads without an outcome left out",
                    *measure_lines(self.analysis), *rules_lines(self.analysis),
                    *leak_lines(self.analysis)]
        return [f"no analysis: {self.error}"] if self.error else []

    def section(self) -> str:
        if self.analysis is not None:
            from qualify.analyze.html import EXTRA_CSS, outcome_sections

            return (f"<h2>Against the outcome: column <code>{escape(self.column)}</code></h2>"
                    f'<div class="an">{outcome_sections(self.analysis)}</div>'
                    f"<style>{EXTRA_CSS}</style>")
        if self.error:
            return f"<h2>Against the outcome</h2><p>No analysis: {escape(self.error)}</p>"
        return ""
