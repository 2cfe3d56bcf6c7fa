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

from qualify.cli import RULES_OPTION, parse_as_of
from qualify.errors import QualifyError, RulebaseError

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
def analyze(*, input_path: Path, outcome: str, positive: tuple[str, ...],
            rules_path: Path | None, mapping: Path | None, as_of: dt.date | None, fmt: str,
            suggest: Path | None, target: int | None) -> None:
    """Relate each verdict for INPUT (CSV, JSONL or Parquet) to its known outcome.

    Measure (the score's AUC, conversion per grade, status, next step and score band, a
    gains table), analyse (each qualifier and trait against the outcome: the rules that
    hurt first; fields that leak the outcome; proposals: conditions on columns no rule
    reads, better thresholds), improve (--suggest: points re-fitted, with the
    cross-validated AUC before and after, and the rules diff) and control (--target:
    leads needed).
    Every input row is analysed or counted: not scored, or without an outcome.
    """
    _need_extra()
    from qualify.analyze.outcomes import AnalyzeError
    from qualify.batch.pipeline import BatchError

    if suggest is not None and suggest.suffix.lower() not in (".yaml", ".yml"):
        raise click.UsageError(f"--suggest {suggest}: the suggestion is a rule base; name "
                               "it .yaml")
    if suggest is not None:
        from qualify.rulebook import default_rules_path

        for what, path in (("the rule base", rules_path or default_rules_path()),
                           ("the input", input_path), ("the mapping", mapping)):
            if path is not None and Path(path).resolve() == suggest.resolve():
                raise click.UsageError(f"--suggest {suggest} is {what}; write the "
                                       "suggestion under another name")
    try:
        analysis = run(input_path, outcome, positive, rules_path=rules_path, mapping=mapping,
                       as_of=as_of, suggest=suggest, target=target)
    except RulebaseError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        raise SystemExit(2) from None
    except (AnalyzeError, BatchError, QualifyError) as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
    from qualify.analyze.report import text, to_json

    if fmt == "json":
        click.echo(json.dumps(to_json(analysis), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(text(analysis)))


def _need_extra() -> None:
    """The statistics and the round-trip YAML come with the ``analyze`` extra."""
    import importlib.util

    missing = [m for m in ("sklearn", "scipy", "ruamel.yaml")
               if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise click.ClickException(
            f"'qualify analyze' needs {', '.join(missing)}, which are not installed; "
            "install with: pip install 'qualify[analyze]'")


def run(input_path: Path, outcome: str, positive: tuple[str, ...], *, rules_path: Path | None,
        mapping: Path | None, as_of: dt.date | None, suggest: Path | None,
        target: int | None) -> Analysis:
    from qualify.analyze.collect import collect
    from qualify.analyze.control import plan
    from qualify.analyze.fit import suggest as fit_suggest
    from qualify.analyze.fit import write_suggestion
    from qualify.analyze.measure import measure
    from qualify.analyze.proposals import proposals, thresholds
    from qualify.analyze.report import Analysis
    from qualify.analyze.rules import hurting_first, leaks, rule_stats
    from qualify.authoring.diff import compare, text_report
    from qualify.rulebook import default_rules_path, load_rulebook_text

    data = collect(input_path, outcome, positive, rules=rules_path, mapping=mapping,
                   as_of=as_of)
    m = measure(data)
    a = Analysis(data, m, hurting_first(rule_stats(data)), leaks(data))
    a.proposals = proposals(data)
    a.thresholds = thresholds(data)
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
        a.plan = plan(data.outcomes(), data.scores(), m.grades, target)
    return a
