"""``qualify batch``: rescore a list of leads (CSV, JSONL or Parquet) into a scored file.

Exit codes: 0 every row scored; 1 some rows could not be scored (see the errors file);
2 the run could not start (a file, the rule base or the mapping is bad); 3 a worker process
died; 4 an output file could not be written (a full disk, a file-size limit, an I/O error);
130 interrupted. Only a complete run leaves files under their final names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import click

from qualify.batch.compare import render as render_comparison
from qualify.batch.interrupts import sigterm_as_interrupt
from qualify.batch.job import Job, Outcome, Watcher
from qualify.batch.pipeline import BatchError, InterruptedWhenWritten, run_batch
from qualify.batch.runner import WorkerError
from qualify.batch.summary import plural, rows_line
from qualify.batch.summary import render as render_summary
from qualify.batch.writers import OutputError
from qualify.cli.options import RULES_OPTION, parse_as_of
from qualify.errors import QualifyError, RulebaseError
from qualify.exits import Exit, exit_with
from qualify.tuning import BATCH_GC_THRESHOLD, tune_gc

PATH = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("input_path", metavar="INPUT")  # text: with --spark, any URI Spark reads
@click.option("--out", "output", required=True, metavar="OUTPUT",
              help="The scored file: .csv, .jsonl (with whole verdicts) or .parquet.")
@RULES_OPTION
@click.option("--map", "mapping", type=PATH, default=None,
              help="A mapping profile (YAML): input columns -> lead fields.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes scoring in parallel (default: the cores).")
@click.option("--compare", type=PATH, default=None, metavar="PREVIOUS",
              help="A previous output: report the leads that changed, and why.")
@click.option("--report", type=PATH, default=None, metavar="REPORT.html",
              help="Also write a self-contained HTML report with charts.")
@click.option("--as-of", callback=parse_as_of, default=None, metavar="YYYY-MM-DD",
              help="The date date-rules use (default: today, UTC).")
@click.option("--locale", type=click.Choice(["en", "zh"]), default=None,
              help="Language of labels and explanations (default: the rule base's).")
@click.option("--key", "keys", multiple=True, metavar="COLUMN",
              help="An input column to copy to each output row (repeat; default: the "
                   "mapping's keys, or the column lead_id comes from).")
@click.option("--spark", "master", default=None, metavar="MASTER",
              help="Score on a Spark cluster: local[N], spark://HOST:7077, yarn, k8s://...; "
                   "INPUT and OUTPUT are then anything Spark reads and writes (s3a://, "
                   "abfss://, hdfs://, local paths), OUTPUT a folder. Needs Java and "
                   "qualify[spark].")
@click.option("--outcome", "outcome_column", default=None, metavar="COLUMN",
              help="An input column with known outcomes (1/0, true/false, yes/no): add "
                   "how the verdicts relate to them to the summary and the report.")
@click.option("--positive", multiple=True, metavar="VALUE",
              help="With --outcome: a value that means converted (repeat); every other "
                   "non-blank value then means not converted.")
def batch(  # noqa: PLR0917 - click passes every option as an argument
        input_path: str, output: str, rules_path: Path | None, mapping: Path | None,
        workers: int | None, compare: Path | None, report: Path | None,
        as_of: dt.date | None, locale: str | None, keys: tuple[str, ...],
        outcome_column: str | None, positive: tuple[str, ...],
        master: str | None) -> None:
    """Score every lead in INPUT into --out, in input order; print a summary.

    A row that cannot be scored gets its reason in the 'error' column and a line in
    OUT's .errors.csv beside it; the run goes on. With --compare, OUT's .changes.csv
    lists every lead whose status, grade or next step changed.

    Exit status: 0 every row scored, 1 some rows could not be scored, 2 the run could not
    start (a file, the rule base or the mapping), 3 a worker process died, 4 an output file
    could not be written (a full disk, a file-size limit, an I/O error), 130 interrupted.
    Files appear under their names only when the whole run succeeds.

    With --outcome, the summary and the report add the measure and analyse sections of
    'qualify analyze' (AUC, conversion per grade, gains, each rule against the outcome),
    from the output rows; the outcome column is copied to the output.
    """
    if positive and outcome_column is None:
        raise click.UsageError("--positive needs --outcome COLUMN")
    if outcome_column is not None:
        from qualify.cli.analyze import need_extra

        need_extra("qualify batch --outcome")
    job = Job(input=Path(input_path), output=Path(output), rules=rules_path, mapping=mapping,
              workers=workers, compare=compare, report=report, as_of=as_of, locale=locale,
              keys=keys, watcher=_watcher(outcome_column, positive))
    if master is not None:
        _spark(job, master, input_path, output)
        return
    tune_gc(BATCH_GC_THRESHOLD)  # this process is ours: it scores in-process with one worker
    try:
        with cannot_start(), sigterm_as_interrupt():
            outcome = run_batch(job)
    except WorkerError as e:
        click.echo(f"error: {e}; no output written", err=True)
        raise SystemExit(Exit.WORKERS_FAILED) from None
    except OutputError as e:
        click.echo(f"error: {e}; no output written", err=True)
        raise SystemExit(Exit.NOT_WRITTEN) from None
    except InterruptedWhenWritten:
        click.echo(f"interrupted: {job.output} and its files were complete and are written",
                   err=True)
        raise SystemExit(Exit.INTERRUPTED) from None
    except KeyboardInterrupt:
        click.echo("interrupted: no output written", err=True)
        raise SystemExit(Exit.INTERRUPTED) from None
    click.echo(summary_text(outcome))
    if outcome.failed:
        raise SystemExit(Exit.FAILED)



def _watcher(column: str | None, positive: tuple[str, ...]) -> Watcher | None:
    """``--outcome COLUMN``: analyze's watcher of the rows (the analyze extra is checked)."""
    if column is None:
        return None
    from qualify.analyze.watch import OutcomeWatcher

    return OutcomeWatcher(column, positive)

@contextlib.contextmanager
def cannot_start(*usage: type[Exception]) -> Iterator[None]:
    """Exit 2, saying why, when the run cannot start: a bad rule base or mapping (every
    problem), a file, the engine refusing the rules (QualifyError), or one of ``usage``."""
    try:
        yield
    except RulebaseError as e:
        exit_with(e.problems)
    except Exception as e:
        # the workers failing or an output not written have codes of their own (3, 4)
        if isinstance(e, WorkerError | OutputError) or \
                not isinstance(e, (BatchError, QualifyError, *usage)):
            raise
        click.echo(f"error: {e}", err=True)
        raise SystemExit(Exit.CANNOT_START) from None


def _spark(job: Job, master: str, source: str, target: str) -> None:
    """``--spark``: the same run on a cluster; the same exit codes (3: the Spark job failed)."""
    if job.workers is not None or job.compare is not None or job.watcher is not None:
        click.echo("error: --workers, --compare and --outcome do not apply with --spark (the "
                   "cluster has its own executors; compare or analyse the output apart)",
                   err=True)
        raise SystemExit(Exit.CANNOT_START)
    from qualify.spark import SparkError, reason, run

    try:
        with cannot_start(SparkError), sigterm_as_interrupt():
            outcome = run(job, master, source, target)
            if job.report is not None:
                from qualify.batch.report import write_report

                write_report(job.report, outcome).commit()
    except OutputError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(Exit.NOT_WRITTEN) from None
    except KeyboardInterrupt:
        click.echo("interrupted: the output may be incomplete", err=True)
        raise SystemExit(Exit.INTERRUPTED) from None
    except Exception as e:  # the Spark job failed (a task failed spark.task.maxFailures times)
        click.echo(f"error: the Spark job failed: {reason(e)}; see the Spark logs", err=True)
        raise SystemExit(Exit.WORKERS_FAILED) from None
    click.echo(summary_text(outcome, source=source, target=target,
                            runner=f"{outcome.workers} Spark cores on {master}"))
    if outcome.failed:
        raise SystemExit(Exit.FAILED)


def summary_text(o: Outcome, *, source: str | None = None, target: str | None = None,
                 runner: str | None = None) -> str:
    """What the command prints when done (``source``, ``target``: the input and output as
    given, URIs with --spark; ``runner``: what scored)."""
    s, rb, job = o.summary, o.rulebook, o.job
    rate = s.leads / o.seconds if o.seconds else 0.0
    runner = runner or f"{o.workers} worker{'s' if o.workers != 1 else ''}"
    header = [f"{s.rows_in:,} rows from {source or job.input} in {o.seconds:.1f} s "
              f"({rate:,.0f} leads/s, {runner})", rows_line(s),
              f"rule base {rb.name} v{rb.version} (sha256 {rb.sha256[:12]}), "
              f"as of {o.as_of.isoformat()}"]
    footer = [""]
    if o.unread_columns:
        n, shown = len(o.unread_columns), ", ".join(o.unread_columns[:6])
        more = f", ... ({n - 6} more)" if n > 6 else ""
        footer += [f"{plural(n, 'input column')} no field of the mapping reads: {shown}{more} "
                   "(qualify map check lists them)", ""]
    if o.comparison is not None:
        footer += [render_comparison(o.comparison, rb.sha256), ""]
    if job.watcher is not None:
        footer += [*job.watcher.lines(), ""]
    footer.append(f"wrote {target or job.output}")
    if o.errors_path:
        footer.append(f"      {o.errors_path} ({plural(s.errors, 'failed row')})")
    if o.changes_path and o.comparison is not None:
        footer.append(f"      {o.changes_path} ({plural(o.comparison.changed, 'changed lead')})")
    if job.report:
        footer.append(f"      {job.report}")
    return render_summary(s, rb, job.locale, header=header, footer=footer)
