"""Batch rescoring on Apache Spark: the batch's partition scorer, run by ``mapInArrow``.

The one module that talks to Spark (pyspark is imported here only, and lazily: ``import
qualify`` never needs it). ``score(df, ...)`` gives the rows ``qualify batch`` writes, column
for column and value for value: each Python worker turns the Arrow batches Spark hands it into
records with the batch reader's ``arrow_items`` and scores them with the batch's own
``score_partition``, building its engine once per rule base (by sha256) and keeping it for
every later partition. A bad row is an error row, never a failed task.

``line`` is a row's place in the input as Spark reads it (a first pass counts the rows of
each partition): for one file, the row number of a Parquet or JSON-lines file and the line
of a CSV file (after its header), as locally, as long as no CSV value spans lines and no
JSON line is blank.

``run(job, master)`` is ``qualify batch --spark MASTER``: read INPUT with Spark, score, write
OUTPUT and ``OUTPUT.errors.csv`` with Spark, and sum up the output with one Spark aggregation
(nothing but counts reach the driver). ``SparkError`` is a client's mistake (no Java, a bad
master URL, an input that is not there): one line, with what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualify.batch.job import Job, Outcome
from qualify.batch.pipeline import (
    ERROR_COLUMNS,
    BatchError,
    key_columns,
    needed,
    no_columns,
    prepare,
)
from qualify.batch.readers import FORMATS, arrow_items
from qualify.batch.rows import INT_COLUMNS, Layout
from qualify.batch.runner import Scorer, Spec, layout_of, score_partition
from qualify.batch.summary import FIRST_ERRORS, ROW, Summary
from qualify.errors import QualifyError, RulebaseError
from qualify.rulebook import Rulebook
from qualify.tuning import BATCH_GC_THRESHOLD, tune_gc, tune_malloc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LINE = "__qualify_line"  # the row's number, added before scoring
STATS = "__qualify_stats"  # summary.row_stats of each row: what the summary sums
VERDICT = "verdict"  # JSON-lines output: each row's whole verdict
_PID, _POS = "__qualify_pid", "__qualify_pos"
ENGINES = 4  # rule bases a Python worker keeps an engine for
JAVA = 17  # the oldest Java Spark 4 runs on
TASK_ROWS = 20_000  # leads a Spark task scores at most (seconds of work for one core)


class SparkError(QualifyError):
    """Spark cannot run the job as asked (no Java, a bad master URL, a missing input): one
    line, naming what is wrong and what to do."""


# ----------------------------------------------------------------------------- workers

_scorers: OrderedDict[str, Scorer] = OrderedDict()  # this Python worker's engines


def _scorer(spec: Spec) -> Scorer:
    """This worker's scorer for ``spec``: built on its first partition, then reused (Spark
    reuses its Python workers across tasks)."""
    key = hashlib.sha256(repr(spec).encode()).hexdigest()
    scorer = _scorers.get(key)
    if scorer is None:
        if not _scorers:
            tune_malloc()
            tune_gc(BATCH_GC_THRESHOLD)
        while len(_scorers) >= ENGINES:
            _scorers.popitem(last=False)[1].close()
        scorer = _scorers[key] = Scorer(spec)
        gc.freeze()  # the engine lives as long as the worker: out of the collector's sight
    return scorer


def score_batches(spec: Spec, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow``'s function: Arrow batches of input columns (and ``LINE``) in, Arrow
    batches of output rows out, made by the batch's own ``score_partition``."""
    import pyarrow as pa

    scorer = _scorer(spec)
    for batch in batches:
        lines = batch.column(LINE).to_pylist()
        part = score_partition(scorer, arrow_items(batch.drop_columns([LINE]), lines))
        out = scorer.encode(part.rows, None)  # the Parquet writer's Arrow batch
        if part.verdicts is not None:
            out = out.append_column(VERDICT, pa.array(part.verdicts, pa.string()))
        if part.stats is not None:
            out = out.append_column(STATS, pa.array(part.stats, pa.string()))
        yield out


# ----------------------------------------------------------------------------- scoring

def _schema(layout: Layout, verdicts: bool, stats: bool) -> Any:
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    names = [*layout.names, *([VERDICT] if verdicts else []), *([STATS] if stats else [])]
    return StructType([StructField(n, LongType() if n in INT_COLUMNS else StringType())
                       for n in names])


def numbered(df: DataFrame, first: int = 1) -> tuple[DataFrame, int]:
    """``df`` with ``LINE``: ``first`` for its first row, in Spark's order of partitions
    and rows; and its number of rows. A first pass counts the rows of each partition."""
    from pyspark.sql import functions as F

    pid = F.spark_partition_id()
    tagged = df.select("*", pid.alias(_PID), F.monotonically_increasing_id().alias(_POS))
    counts = {int(p): int(n) for p, n in tagged.groupBy(_PID).count().collect()}
    offsets, total = [], 0
    for p in range(max(counts, default=-1) + 1):
        offsets.append(total)
        total += counts.get(p, 0)
    if not offsets:
        line = F.lit(None).cast("long")
    else:  # monotonically_increasing_id: the partition in the upper 31 bits, the row below
        start = F.element_at(F.array(*[F.lit(o + first) for o in offsets]), F.col(_PID) + 1)
        line = start + F.col(_POS) - F.col(_PID).cast("long") * (1 << 33)
    return tagged.select(*[F.col(f"`{c}`") for c in df.columns], line.alias(LINE)), total


def spread(df: DataFrame, total: int) -> DataFrame:
    """``df`` (with ``LINE``) in partitions of about ``TASK_ROWS`` rows, in line order, where
    Spark's input splits hold more: a 128 MB split of Parquet can hold millions of leads,
    hours of scoring for one core, and all of it again if its executor dies."""
    from pyspark.sql import functions as F

    wanted = -(-total // TASK_ROWS)
    if wanted <= df.rdd.getNumPartitions():
        return df
    return df.repartitionByRange(wanted, F.col(LINE)).sortWithinPartitions(LINE)


def scored(df: DataFrame, spec: Spec, rulebook: Rulebook) -> DataFrame:
    """``df`` (with ``LINE``) scored by ``mapInArrow``: the output columns, and ``VERDICT``
    and ``STATS`` as ``spec`` asks."""
    schema = _schema(layout_of(spec, rulebook), spec.verdicts, spec.row_stats)
    return df.mapInArrow(partial(score_batches, spec), schema)


def _fit(df: DataFrame, job: Job, fmt: str, where: str) -> tuple[DataFrame, Spec, Rulebook]:
    """The rule base and mapping loaded and checked against ``df``'s columns, as the local
    batch checks them against a file's; ``df`` cut to the columns scoring reads."""
    spec, rulebook, profile = prepare(job)
    columns = () if fmt == "jsonl" else tuple(df.columns)  # JSON: keys of its own, as locally
    keys = key_columns(job, profile, columns, where)
    if profile is not None and columns:
        problems = profile.check_columns(columns, where)
        if problems:
            raise RulebaseError(problems)
    if columns and not (profile is not None and profile.model.passthrough):
        wanted = needed(rulebook, profile, keys)
        df = df.select(*[f"`{c}`" for c in df.columns if c in wanted])
    spec = dataclasses.replace(spec, keys=keys, output_format="parquet",
                               no_columns=no_columns(columns, rulebook, profile))
    return df, spec, rulebook


def score(df: DataFrame, rules: str | Path | None = None, mapping: str | Path | None = None,
          as_of: dt.date | None = None, locale: str | None = "en", *,
          keys: tuple[str, ...] = ()) -> DataFrame:
    """``df``'s leads scored on its cluster: the rows ``qualify batch`` writes (``line``
    numbers ``df``'s rows from 1, in Spark's order). Raises RulebaseError, BatchError."""
    job = Job(input=Path("<DataFrame>"), output=Path("scored.parquet"),
              rules=Path(rules) if rules else None, mapping=Path(mapping) if mapping else None,
              as_of=as_of, locale=locale, keys=keys)
    df, spec, rulebook = _fit(df, job, "parquet", "<DataFrame>")
    return scored(spread(*numbered(df)), spec, rulebook)


# ----------------------------------------------------------------------------- the command

def check_java() -> None:
    """Spark runs on a JVM, Java 17 or later: say so before pyspark says it in a stack trace."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if java is None or not Path(java).exists():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH"
        raise SparkError(f"Spark needs Java 17 or later ({where}): install a Java runtime "
                         "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
    try:
        said = subprocess.run([java, "-version"], capture_output=True, text=True,
                              timeout=30, check=False).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SparkError(f"{java} does not run ({e}); install a Java 17 runtime") from None
    found = re.search(r'version "(1\.)?(\d+)', said)
    if found and int(found.group(2)) < JAVA:
        raise SparkError(f"Spark needs Java {JAVA} or later, and {java} is Java "
                         f"{found.group(2)}: install a newer one and set JAVA_HOME to it")


@contextlib.contextmanager
def session(master: str, app: str = "qualify batch") -> Iterator[SparkSession]:
    """A Spark session on ``master``: the running one if it has that master (left running),
    else a new one, stopped at the end."""
    check_java()
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkError("pyspark is not installed: pip install 'qualify[spark]'") from None
    active = SparkSession.getActiveSession()
    if active is not None:  # one per process: Spark would hand back this one, on its master
        if active.sparkContext.master != master:
            raise SparkError(f"this process already runs Spark on {active.sparkContext.master}"
                             f", not {master}: use that master, or run qualify apart")
        yield active
        return
    builder = (SparkSession.builder.master(master).appName(app)
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.log.level", os.environ.get("QUALIFY_SPARK_LOG_LEVEL", "ERROR")))
    if master.startswith("local"):  # workers on this machine: this Python, with qualify
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        spark = builder.getOrCreate()
    except Exception as e:
        raise SparkError(f"cannot start Spark on master {master!r} ({reason(e)}): is it "
                         "running, and reachable from here? A master URL is local[N], "
                         "spark://HOST:7077, yarn or k8s://https://HOST:PORT") from None
    try:
        yield spark
    finally:
        spark.stop()


def _format(path: str) -> str:
    """csv, jsonl or parquet, by the name's extension (a folder without one: Parquet)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    if not suffix:
        return "parquet"
    if suffix == ".json":
        return "jsonl"
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise BatchError(f"{path}: unknown format '{suffix}' (use {known}, or a folder of "
                         "Parquet files)")
    return FORMATS[suffix]


def sibling(path: str, kind: str) -> str:
    """``s3a://b/scored.parquet`` -> ``s3a://b/scored.errors.csv`` (as locally)."""
    head, _, name = path.rstrip("/").rpartition("/")
    stem = name[:name.rfind(".")] if "." in name else name
    return f"{head}/{stem}.{kind}.csv" if head else f"{stem}.{kind}.csv"


def read(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """INPUT as Spark reads it; CSV cells stay text (no type inference), as locally."""
    reader = spark.read
    try:
        if fmt == "csv":
            return (reader.option("header", True).option("inferSchema", False)
                    .option("escape", '"').csv(path))  # "" inside quotes, as csv writers do
        if fmt == "jsonl":
            return reader.json(path)
        return reader.parquet(path)
    except Exception as e:
        raise SparkError(f"{path}: cannot read it as {fmt} ({reason(e)})") from None


def write(df: DataFrame, path: str, fmt: str, columns: Sequence[str],
          files: int | None = None) -> None:
    """The scored rows at ``path`` (a folder of part files, replaced whole; ``files``: so
    many part files)."""
    from pyspark.sql import functions as F

    if files is not None:
        df = df.coalesce(files)
    cols = [F.col(f"`{c}`") for c in columns]
    if fmt == "csv":
        (df.select(*cols).write.mode("overwrite").option("header", True)
         .option("escape", '"').csv(path))  # a quote inside a value doubled, as locally
    elif fmt == "parquet":
        df.select(*cols).write.mode("overwrite").parquet(path)
    else:  # as encode_jsonl: the columns, nulls included, then the whole verdict
        row = F.to_json(F.struct(*cols), {"ignoreNullFields": "false"})
        line = F.concat(F.expr("substring(__row, 1, length(__row) - 1)"),
                        F.lit(', "verdict": '), F.coalesce(F.col(VERDICT), F.lit("null")),
                        F.lit("}"))
        (df.select(row.alias("__row"), VERDICT).select(line.alias("value"))
         .write.mode("overwrite").text(path))


_STATS_SCHEMA = "f string, o array<string>, b array<string>, p map<string,bigint>, u array<string>"
_KINDS = {"status": "status", "grade": "grade", "scores": "scores", "traits": "traits",
          "weakest": "weakest", "next_step": "next_step", "error_fields": "f",
          "missing_points": "p", "missing_leads": "o", "missing_status": "b", "unread": "u"}


def summarize(df: DataFrame) -> Summary:
    """The run's Summary from the scored rows, by one Spark aggregation: every row gives
    (kind, key, n) entries, summed by kind and key (a few hundred sums reach the driver);
    and a second, small one for the first errors."""
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    stats = F.from_json(F.col(STATS), _STATS_SCHEMA)

    line = F.col("line")

    def entry(kind: str, key: Column, n: Column, at: Column) -> Column:
        return F.struct(F.lit(kind).alias("k"), key.cast("string").alias("v"),
                        n.cast("long").alias("n"),
                        F.struct(line.alias("l"), at.cast("int").alias("i")).alias("at"))

    def one(kind: str, key: Column) -> Column:
        return F.array(entry(kind, key, F.lit(1), F.lit(0)))

    def each(kind: str, keys: Column) -> Column:
        return F.transform(F.coalesce(keys, F.array().cast("array<string>")),
                           lambda v, i: entry(kind, v, F.lit(1), i))

    bucket = F.least(F.floor(F.col("score") / 10) * 10, F.lit(90))  # as summary._BUCKET
    points = F.transform(F.map_entries(F.coalesce(stats["p"], F.create_map().cast(
        "map<string,bigint>"))), lambda e, i: entry("p", e["key"], e["value"], i))
    entries = F.concat(
        one("rows", F.lit("")), one("errors", F.when(F.col("error").isNotNull(), F.lit(""))),
        one("status", F.col("status")), one("grade", F.col("grade")),
        one("grade_status", F.concat_ws("\t", F.col("grade"), F.col("status"))),
        one("scores", bucket), one("weakest", F.col("weakest")),
        one("next_step", F.col("next_step")), one("f", stats["f"]),
        each("traits", F.filter(F.split(F.col("traits"), ";"), lambda t: t != "")),
        each("o", stats["o"]), each("b", stats["b"]), each("u", stats["u"]), points)
    # summed by kind and key; keys in the order they first appear (line, place in the row),
    # as the local batch's counters meet them: rankings break ties the same way
    sums = (df.select(F.explode(entries).alias("e")).where(F.col("e.v").isNotNull())
            .groupBy("e.k", "e.v").agg(F.sum("e.n").alias("n"), F.min("e.at").alias("at"))
            .orderBy("at").select("k", "v", "n").collect())
    s = Summary()
    by_kind: dict[str, Counter[str]] = {}
    for kind, key, n in sums:
        by_kind.setdefault(kind, Counter())[key] = int(n)
    s.leads = by_kind.get("rows", Counter())[""]
    s.errors = by_kind.get("errors", Counter())[""]
    for name, kind in _KINDS.items():
        counts = by_kind.get(kind, Counter())
        if name == "scores":
            getattr(s, name).update({int(k): n for k, n in counts.items()})
        else:
            getattr(s, name).update(counts)
    for key, n in by_kind.get("grade_status", Counter()).items():
        grade, _, status = key.partition("\t")
        if status:  # error rows have neither
            s.grade_status[grade, status] = n
    first = (df.where(F.col("error").isNotNull()).select("line", "error")
             .orderBy("line").limit(FIRST_ERRORS).collect())
    s.first_errors = [(int(line), str(error)) for line, error in first]
    return s


def run(job: Job, master: str, source: str, target: str) -> Outcome:
    """``qualify batch SOURCE --out TARGET --spark MASTER``: see the module docstring.
    Raises SparkError, BatchError, RulebaseError; a failed Spark job raises its own error."""
    from pyspark import StorageLevel

    in_fmt, out_fmt = _format(source), _format(target)
    if source.rstrip("/") == target.rstrip("/"):
        raise BatchError(f"{target}: --out is the input; write the output under another name")
    if job.report is not None and job.report.suffix.lower() not in (".html", ".htm"):
        raise BatchError(f"{job.report}: the report is HTML; name it .html")
    # prepare() reads the output's format from its name; Spark's may be a folder's
    plan = dataclasses.replace(job, output=Path(f"scored.{out_fmt}"))
    with session(master) as spark:
        df = read(spark, source, in_fmt)
        df, spec, rulebook = _fit(df, plan, in_fmt, source)
        spec = dataclasses.replace(spec, row_stats=True, verdicts=out_fmt == "jsonl")
        started = time.perf_counter()
        numbered_df, rows_in = numbered(df, 2 if in_fmt == "csv" else 1)
        out = scored(spread(numbered_df, rows_in), spec, rulebook).persist(
            StorageLevel.MEMORY_AND_DISK)
        try:
            layout = layout_of(spec, rulebook)
            write(out, target, out_fmt, layout.names)
            field = f"nullif(get_json_object({STATS}, '$.f'), '{ROW}') as field"
            errors = out.where(out["error"].isNotNull()).selectExpr(*ERROR_COLUMNS[:2], field,
                                                                    ERROR_COLUMNS[3])
            write(errors, sibling(target, "errors"), "csv", ERROR_COLUMNS, files=1)
            summary = summarize(out)
        finally:
            out.unpersist()
        summary.rows_in = rows_in
        cores = spark.sparkContext.defaultParallelism
    outcome = Outcome(job, rulebook, spec.as_of, cores, summary=summary,
                      seconds=time.perf_counter() - started)
    outcome.errors_path = Path(sibling(target, "errors"))
    return outcome


def reason(e: BaseException) -> str:
    """One line of why Spark failed: the Java exception's own line where Py4J wraps one
    ("An error occurred while calling ..." says nothing), else the first line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    java = next((line[2:] for line in lines if line.startswith(": ")), None)
    text = java or (lines[0] if lines else type(e).__name__)
    return text[:300]
