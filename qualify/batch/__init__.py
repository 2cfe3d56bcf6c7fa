"""Batch rescoring: a list of leads in, a scored list (and what changed) out.

One module per stage: readers (CSV, JSONL, Parquet in) -> runner (score partitions: a pure
function, run in a pool of processes, results in input order; orphans: its workers end with
the command) -> rows (the output row) -> writers (CSV, JSONL, Parquet out, atomically) ;
summary (counts), compare (with a previous output), report (HTML); pipeline runs them all,
``qualify.cli.batch`` is the command.
"""

from qualify.batch.job import Job, Outcome
from qualify.batch.pipeline import BatchError, run_batch
from qualify.batch.runner import Partition, Scorer, Spec, score_partition
from qualify.batch.writers import OutputError

__all__ = ["BatchError", "Job", "Outcome", "OutputError", "Partition", "Scorer", "Spec",
           "run_batch", "score_partition"]
