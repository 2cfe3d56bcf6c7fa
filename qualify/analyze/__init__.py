"""``qualify analyze``: relate verdicts to real outcomes, to measure, analyse, improve and
control a rule base.

One module per stage: outcomes (read the outcome column: 1/0, true/false, yes/no or the
``--positive`` values) -> collect (score the input through the batch machinery, one row of
verdict and outcome per lead) -> measure (AUC, conversion per grade, status, next step and
score band, gains) -> rules (each qualifier and trait against the outcome; fields that leak
it) -> proposals (conditions on input columns no rule reads; better thresholds) -> binning
(conditions on numbers by supervised binning, with their evidence) -> fit (points re-fitted
by a regularised logistic regression, written back as a rule base) -> control (leads needed
for a target) ; report (text and JSON), calls (the call-first list, CSV), html (the page);
``qualify.cli.analyze`` is the command, and ``qualify batch --outcome`` reuses collect's
``Rows``, measure, rules and the page's outcome sections. Needs the ``analyze`` extra
(scikit-learn, ruamel.yaml).
"""

from qualify.analyze.collect import Dataset, collect
from qualify.analyze.outcomes import AnalyzeError, OutcomeReader

__all__ = ["AnalyzeError", "Dataset", "OutcomeReader", "collect"]
