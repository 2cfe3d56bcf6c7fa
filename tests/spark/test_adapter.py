"""qualify.spark without a cluster: pyspark stays unloaded until asked for, and the names of
Spark's inputs and outputs (URIs, folders) read as the local batch reads file names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qualify.batch.pipeline import BatchError
from qualify.spark import _format, sibling


def test_no_pyspark_on_import() -> None:
    """``import qualify``, the batch command and qualify.spark load no pyspark."""
    code = ("import sys, qualify, qualify.cli.batch, qualify.spark; "
            "sys.exit('pyspark' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(("path", "fmt"), [
    ("s3a://lake/contacts.parquet", "parquet"), ("abfss://c@a.dfs.core.windows.net/x.csv", "csv"),
    ("hdfs:///leads/", "parquet"), ("leads.jsonl", "jsonl"), ("out/leads.json", "jsonl")])
def test_format_by_name(path: str, fmt: str) -> None:
    """The format comes from the last name's extension; a folder without one is Parquet."""
    assert fmt == _format(path)


def test_unknown_format() -> None:
    """An extension Spark's reader here does not take: a one-line error with the known ones."""
    with pytest.raises(BatchError, match=r"unknown format '\.xlsx' \(use \.csv"):
        _format("s3a://lake/leads.xlsx")


def test_sibling_keeps_the_scheme() -> None:
    """The errors file sits beside the output, URI and all."""
    assert sibling("s3a://lake/out/scored.parquet", "errors") == "s3a://lake/out/scored.errors.csv"
    assert sibling("scored.parquet", "errors") == "scored.errors.csv"
