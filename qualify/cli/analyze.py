"""``qualify analyze``: score a lead list with known outcomes and relate verdicts to them.

Exit codes: 0 the analysis ran; 2 it could not (a file, the rule base, the mapping, no such
outcome column, one outcome only).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from qualify.cli.options import RULES_OPTION, parse_as_of
from qualify.errors import QualifyError, RulebaseError
from qualify.exits import Exit, exit_with

if TYPE_CHECKING:
    from qualify.analyze.report import Analysis

PATH = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("input_path", metavar="INPUT", type=PATH)
@click.option("--outcome", required=True, metavar="COLUMN",
              help="The input column with the outcome (1/0, true/false, yes/no).")
@click.option("--positive", multiple=True, metavar="VALUE",
              help="An outcome value that means converted (repeat); every other non-blank "
                   "value then means not converted.")
@RULES_OPTION
@click.option("--map", "mapping", type=PATH, default=None,
              help="A mapping profile (YAML): input columns -> lead fields.")
@click.option("--as-of", callback=parse_as_of, default=None, metavar="YYYY-MM-DD",
              help="The date date-rules use (default: today, UTC).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Text for people, JSON for programs.")
@click.option("--suggest", type=PATH, default=None, metavar="OUT.yaml",
              help="Write the rule base with points re-fitted from the outcomes.")
@click.option("--target", type=click.IntRange(1), default=None, metavar="N",
              help="Work out how many leads it takes to reach N conversions.")
@click.option("--report", type=PATH, default=None, metavar="OUT.html",
              help="Also write the analysis as a self-contained HTML page, with the "
                   "call-first list.")
@click.option("--call-list", type=PATH, default=None, metavar="OUT.csv",
              help="Also write the call-first list (leads to call, best score first) as CSV.")
def analyze(*, input_path: Path, outcome: str, positive: tuple[str, ...],
            rules_path: Path | None, mapping: Path | None, as_of: dt.date | None, fmt: str,
            suggest: Path | None, target: int | None, report: Path | None,
            call_list: Path | None) -> None:
    """Relate each verdict for INPUT (CSV, JSONL or Parquet) to its known outcome.

    Measure (the score's AUC, conversion per grade, status, next step and score band, a
    gains table), analyse (each qualifier and trait against the outcome: the rules that
    hurt first; fields that leak the outcome; proposals: conditions on columns no rule
    reads, better thresholds, cuts of numbers by supervised binning), improve (--suggest:
    points re-fitted, with the cross-validated AUC before and after, and the rules diff)
    and control (--target: leads needed). --report writes it all as one HTML page for a
    sales manager, with the call-first list; --call-list writes that list as CSV.
    Every input row is analysed or counted: not scored, or without an outcome.
    """
    need_extra("qualify analyze")
    from qualify.analyze.outcomes import AnalyzeError
    from qualify.batch.pipeline import BatchError

    for option, path, suffixes, kind in (("--suggest", suggest, (".yaml", ".yml"), "a rule base"),
                                         ("--report", report, (".html", ".htm"), "HTML"),
                                         ("--call-list", call_list, (".csv",), "CSV")):
        if path is not None and path.suffix.lower() not in suffixes:
            raise click.UsageError(f"{option} {path}: it is {kind}; name it {suffixes[0]}")
    _distinct(input_path, rules_path, mapping,
              {"--suggest": suggest, "--report": report, "--call-list": call_list})
    try:
        analysis = run(input_path, outcome, positive, rules_path=rules_path, mapping=mapping,
                       as_of=as_of, suggest=suggest, target=target)
    except RulebaseError as e:
        exit_with(e.problems)
    except (AnalyzeError, BatchError, QualifyError) as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(Exit.CANNOT_START) from None
    from qualify.analyze.report import text, to_json

    wrote = _write_pages(analysis, report, call_list)
    if fmt == "json":
        click.echo(json.dumps(to_json(analysis), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join([*text(analysis), *([""] if wrote else []), *wrote]))


def _distinct(input_path: Path, rules_path: Path | None, mapping: Path | None,
              outputs: dict[str, Path | None]) -> None:
    """No output may overwrite an input, or another output."""
    from qualify.rulebook import default_rules_path

    seen = {Path(p).resolve(): what for what, p in (
        ("the rule base", rules_path or default_rules_path()), ("the input", input_path),
        ("the mapping", mapping)) if p is not None}
    for option, path in outputs.items():
        if path is None:
            continue
        real = path.resolve()
        if real in seen:
            what = {"--suggest": "the suggestion", "--report": "the report"}.get(
                option, "the call list")
            raise click.UsageError(f"{option} {path} is {seen[real]}; write {what} under "
                                   "another name")
        seen[real] = option


def _write_pages(a: Analysis, report: Path | None, call_list: Path | None) -> list[str]:
    """The HTML page and the call-first list; a file that cannot be written: exit 2.
    Returns a line per file written."""
    from qualify.analyze.calls import call_list as ranked
    from qualify.analyze.calls import write_csv
    from qualify.analyze.html import write_report
    from qualify.batch.readers import InputError
    from qualify.batch.writers import OutputError

    if report is None and call_list is None:
        return []
    calls = ranked(a.data)
    which = "open leads" if calls.open_only else "leads"
    wrote = []
    try:
        if call_list is not None:
            write_csv(call_list, a.data, calls)
            wrote.append(f"wrote {call_list} (call-first list: {len(calls.leads):,} {which})")
        if report is not None:
            write_report(report, a, calls, str(call_list) if call_list else None)
            wrote.append(f"wrote {report}")
    except (InputError, OutputError) as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(Exit.CANNOT_START) from None
    return wrote


def need_extra(command: str) -> None:
    """The statistics and the round-trip YAML come with the ``analyze`` extra."""
    import importlib.util

    missing = [m for m in ("sklearn", "scipy", "ruamel.yaml")
               if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise click.ClickException(
            f"'{command}' needs {', '.join(missing)}, which are not installed; "
            "install with: pip install 'qualify[analyze]'")


def run(input_path: Path, outcome: str, positive: tuple[str, ...], *, rules_path: Path | None,
        mapping: Path | None, as_of: dt.date | None, suggest: Path | None,
        target: int | None) -> Analysis:
    from qualify.analyze.collect import collect
    from qualify.analyze.control import plan
    from qualify.analyze.fit import suggest as fit_suggest
    from qualify.analyze.fit import write_suggestion
    from qualify.analyze.report import analyse
    from qualify.authoring.diff import compare, text_report
    from qualify.rulebook import default_rules_path, load_rulebook_text

    data = collect(input_path, outcome, positive, rules=rules_path, mapping=mapping,
                   as_of=as_of)
    a = analyse(data)
    if suggest is not None:
        s = fit_suggest(data)
        source = rules_path or default_rules_path()
        old_text = Path(source).read_text(encoding="utf-8")
        try:
            new_text = write_suggestion(old_text, s, suggest)
        except OSError as e:
            raise QualifyError(f"{suggest}: {e.strerror or e}") from None
        new = load_rulebook_text(new_text, str(suggest))
        a.suggestion, a.suggested_file = s, str(suggest)
        a.diff = list(text_report(data.rulebook, new, compare(data.rulebook, new), None))
    if target is not None:
        a.plan = plan(data.outcomes(), data.scores(), a.measures.grades, target)
    return a
