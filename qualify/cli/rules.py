"""``qualify rules ...``: check, test, diff, document and describe a rule base.

    qualify rules check [PATH...] [--format json] [--strict]
    qualify rules test [PATH...] [--format json] [--fail-on-empty] [--explain] [--as-of DATE]
    qualify rules diff OLD NEW [--leads FILE] [--top N] [--as-of DATE] [--locale zh]
                           [--format json]
    qualify rules doc [PATH] [--locale zh] [--out FILE]
    qualify rules schema [--tests] [--out FILE]

The work is done in ``qualify.authoring``; this module parses options and prints.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, NoReturn

import click

from qualify.cli.options import parse_as_of
from qualify.exits import CannotStart, Exit, exit_with
from qualify.rulebook import default_rules_path

PATHS = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      help="Output format.")


AS_OF_TEST, AS_OF_DIFF = (
    click.option("--as-of", callback=parse_as_of, default=None, metavar="YYYY-MM-DD",
                 help=f"The date days_since() counts to (default: {default}).")
    for default in ("the test file's as_of, else today", "today"))


def _default_rules() -> Path:
    """The bundled rule base, as a relative path when under the working directory."""
    path = default_rules_path()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group()
def rules() -> None:
    """Check, test, compare and document rule bases."""


@rules.command("check")
@PATHS
@FORMAT
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def rules_check(paths: tuple[Path, ...], fmt: str, strict: bool) -> None:
    """Check rule bases: every error at once, as file:line:col: code: message (hint).

    Warnings point at rules that load but look wrong: a rule that can never fire, a next
    step an earlier one always takes first, a field no rule reads, a golden trait without
    points, a label missing a language. Exit 0 when clean, 1 on errors (--strict: on
    warnings too). With several PATHs, --format json prints a list.
    """
    from qualify.authoring.lint import check_file

    reports = [check_file(p) for p in paths or (_default_rules(),)]
    failed = any(r.errors(strict) for r in reports)
    if fmt == "json":
        docs = [r.to_dict(strict) for r in reports]
        _dump(docs[0] if len(docs) == 1 else docs)
    else:
        for r in reports:
            for line in r.lines(strict):
                click.echo(line, err=bool(r.errors(strict)))
    if failed:
        raise SystemExit(Exit.FAILED)


@rules.command("test")
@PATHS
@FORMAT
@click.option("--fail-on-empty", is_flag=True, help="Fail when no test case was found.")
@click.option("--explain", is_flag=True, help="Print the verdict's explanation of failures.")
@AS_OF_TEST
def rules_test(paths: tuple[Path, ...], fmt: str, fail_on_empty: bool, explain: bool,
               as_of: dt.date | None) -> None:
    """Run the test cases beside rule bases: PASS/FAIL per case, and coverage.

    PATH is a rule base (its tests are NAME.test.yaml beside it), a test file, or a folder
    of test files; the default is the bundled rule base. Exit 0 when every case passes,
    1 on a failure or a mistake in a file (and, with --fail-on-empty, when there are no
    cases).
    """
    from qualify.authoring import testrun

    suites = testrun.run(list(paths) or [_default_rules()], explain=explain, as_of=as_of)
    ok = testrun.passed(suites, fail_on_empty)
    if fmt == "json":
        _dump(testrun.json_report(suites, fail_on_empty))
    else:
        for line in testrun.text_report(suites):
            click.echo(line)
        if fail_on_empty and not testrun.summary(suites)["total"] and \
                not any(s.problems for s in suites):
            click.echo("no test cases found (--fail-on-empty)", err=True)
    if not ok:
        raise SystemExit(Exit.FAILED)


def _load_or_exit(path: Path) -> Any:
    """A loaded rule base, or its problems on stderr and exit 2."""
    from qualify.errors import RulebaseError
    from qualify.rulebook import load_rulebook

    try:
        return load_rulebook(path)
    except RulebaseError as e:
        _exit_with(e)


def _profile_or_exit(path: Path, rulebook: Any) -> Any:
    """A mapping profile checked against ``rulebook``, or its problems on stderr and exit 2."""
    from qualify.errors import RulebaseError
    from qualify.mapping import load_profile

    try:
        return load_profile(path, rulebook)
    except RulebaseError as e:
        _exit_with(e)


def _engine_or_exit(rulebook: Any) -> Any:
    """An engine for a loaded rule base, or the conditions it refuses on stderr and exit 2."""
    from qualify.engine import Engine
    from qualify.errors import RulebaseError

    try:
        return Engine(rulebook)
    except RulebaseError as e:
        _exit_with(e)


def _exit_with(error: Any) -> NoReturn:
    exit_with(error.problems)  # the rule base cannot be used: nothing was done


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise CannotStart(f"{out}: {e.strerror}") from None
    click.echo(f"wrote {out}", err=True)


OUT = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                   help="Write to this file instead of standard output.")


@rules.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--leads", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Leads to measure the impact on (.jsonl, .json or .csv).")
@click.option("--map", "mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A mapping profile (YAML) for --leads: its columns -> lead "
                                 "fields, as in qualify batch --map.")
@click.option("--top", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="How many top movers to show.")
@AS_OF_DIFF
@click.option("--locale", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the conditions in words (default: NEW's).")
@FORMAT
def rules_diff(*, old: Path, new: Path, leads: Path | None, mapping: Path | None, top: int,
               as_of: dt.date | None, locale: str | None, fmt: str) -> None:
    """What changed from rule base OLD to NEW, and with --leads, what it does to leads.

    Lists rules added, removed and changed (conditions, in code and in words; points,
    labels), next steps that moved in the order, and field, grade and score changes. With
    --leads, both rule bases score every lead: how many change status, grade or next step,
    and the top movers with the reasons. Exit 2 if a rule base or the mapping does not
    load; 1 if --leads were given and not one of them could be scored.
    """
    from qualify.authoring import diff
    from qualify.engine import today

    a, b = _load_or_exit(old), _load_or_exit(new)
    changes = diff.compare(a, b, locale)
    result = None
    if mapping is not None and leads is None:
        raise click.UsageError("--map maps the --leads file: give --leads too")
    profile = _profile_or_exit(mapping, b) if mapping is not None else None
    if leads is not None:
        ea = _engine_or_exit(a)
        try:
            eb = _engine_or_exit(b)
        except SystemExit:
            ea.close()
            raise
        try:
            result = diff.impact(ea, eb, diff.read_leads(leads, profile), source=str(leads),
                                 as_of=as_of or today(), top=top)
        except UnicodeDecodeError:
            raise CannotStart(f"{leads}: not UTF-8 text") from None
        finally:
            ea.close()
            eb.close()
    if fmt == "json":
        _dump(diff.json_report(a, b, changes, result))
    else:
        for line in diff.text_report(a, b, changes, result):
            click.echo(line)
    if result is not None and result.scored == 0:
        hint = "" if mapping else "; a CRM or spreadsheet export needs --map MAPPING.yaml"
        click.echo(f"error: not one of the {result.total} leads in {leads} could be scored"
                   f"{hint}", err=True)
        raise SystemExit(Exit.FAILED)


@rules.command("doc")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--locale", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the page (default: the rule base's).")
@OUT
def rules_doc(path: Path | None, locale: str | None, out: Path | None) -> None:
    """The rule base as a Markdown page for the sales team (en or zh)."""
    from qualify.authoring.doc import render

    rulebook = _load_or_exit(path or _default_rules())
    _write(render(rulebook, locale or rulebook.locale), out)


@rules.command("schema")
@click.option("--tests", is_flag=True, help="The schema of test files (*.test.yaml) instead.")
@OUT
def rules_schema(tests: bool, out: Path | None) -> None:
    """The JSON Schema of the rule-base format, for editors (a copy: rules/rulebook.schema.json)."""
    from qualify.authoring.schema import case_file_schema, dumps, rulebook_schema

    _write(dumps(case_file_schema() if tests else rulebook_schema()), out)
