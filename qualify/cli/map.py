"""``qualify map check MAPPING [INPUT]``: a mapping profile against the rule base, and against
an input file's columns, before any row is scored.

A typo in a column name (``from: Lead Sourc``) used to run, exit 0, and leave the field
missing from every lead. Here it is an error located at the ``from``, with "did you mean";
the input's columns that no field reads are listed, since one of them may be the column the
typo meant.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import click

from qualify.cli.options import RULES_OPTION
from qualify.errors import Problem, RulebaseError
from qualify.exits import CannotStart, Exit, exit_with
from qualify.mapping import Profile, load_profile
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook

PATH = click.Path(dir_okay=False, path_type=Path)
JSONL_SAMPLE = 1000  # JSON Lines have no header: the keys of the first records stand for it


@click.group("map")
def map_group() -> None:
    """Check mapping profiles (input columns -> lead fields)."""


@map_group.command("check")
@click.argument("mapping", type=PATH)
@click.argument("input_path", metavar="[INPUT]", type=PATH, required=False)
@RULES_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Output format.")
def map_check(*, mapping: Path, input_path: Path | None, rules_path: Path | None,
              fmt: str) -> None:
    """Check MAPPING against the rule base (every target a field of it) and, with INPUT
    (.csv, .jsonl or .parquet), against its columns: a field that reads no column INPUT has
    is an error (unless one of its alternatives exists). Lists INPUT's columns no field
    reads. Exit 1 on any error; 2 if the rule base itself does not load or INPUT cannot be
    read."""
    rulebook = _rulebook(rules_path)
    problems: list[Problem] = []
    profile: Profile | None = None
    try:
        profile = load_profile(mapping, rulebook)
    except RulebaseError as e:
        problems = e.problems
    columns: list[str] = []
    if profile is not None and input_path is not None:
        columns = input_columns(input_path)
        problems = profile.check_columns(columns, str(input_path))
    unread = profile.unread_columns(columns) if profile is not None else []
    if fmt == "json":
        click.echo(json.dumps({
            "mapping": str(mapping), "input": str(input_path) if input_path else None,
            "ok": not problems, "problems": [p.to_dict() for p in problems],
            "columns": columns, "unread_columns": unread}, ensure_ascii=False, indent=2))
    else:
        for p in problems:
            click.echo(str(p))
        if unread:
            click.echo(f"{input_path}: {len(unread)} column{'s' * (len(unread) != 1)} no field "
                       f"reads: {', '.join(unread)}")
        if not problems and profile is not None:
            read = f"; {len(columns) - len(unread)} of {len(columns)} columns of {input_path} " \
                   "read" if input_path else ""
            click.echo(f"{mapping}: ok ({len(profile.fields)} fields{read})")
    if problems:
        raise SystemExit(Exit.FAILED)


def _rulebook(path: Path | None) -> Rulebook:
    try:
        return load_rulebook(path or default_rules_path())
    except RulebaseError as e:
        exit_with(e.problems)


def input_columns(path: Path) -> list[str]:
    """The columns of a CSV or Parquet file; for JSON Lines, the keys of its first records."""
    from qualify.batch.readers import BadRecord, InputError, open_reader

    try:
        reader = open_reader(path)
    except InputError as e:
        raise CannotStart(str(e)) from None
    try:
        if reader.columns:
            return list(reader.columns)
        keys: dict[str, None] = {}
        for _, record in itertools.islice(reader, JSONL_SAMPLE):
            if not isinstance(record, BadRecord):
                keys.update(dict.fromkeys(record))
        return list(keys)
    except InputError as e:
        raise CannotStart(str(e)) from None
    finally:
        reader.close()
