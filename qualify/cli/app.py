"""The ``qualify`` command line.

    qualify score LEAD.json [--explain] [--locale zh] [--rules PATH] [--as-of YYYY-MM-DD]
    qualify rules check [PATH] [--format json] [--strict]
    qualify serve [--rules PATH] [--host 127.0.0.1] [--port 8000] [--workers N]
    qualify batch INPUT --out OUTPUT [...]
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from qualify.cli.options import RULES_OPTION, parse_as_of
from qualify.errors import QualifyError, RulebaseError
from qualify.exits import CannotStart, Exit, exit_with
from qualify.explain import passed_over
from qualify.leads import BadJSON, read_leads
from qualify.rulebook import default_rules_path, load_rulebook


def _load_engine(rules_path: Path | None) -> Any:
    from qualify.engine import Engine

    try:
        return Engine(load_rulebook(rules_path or default_rules_path()))
    except RulebaseError as e:
        exit_with(e.problems)


class LazyGroup(click.Group):
    """Subcommands imported on first use, so ``qualify score`` never loads FastAPI."""

    lazy: ClassVar[dict[str, str]] = {
        "rules": "qualify.cli.rules:rules",
        "map": "qualify.cli.map:map_group",
        "analyze": "qualify.cli.analyze:analyze",
        "batch": "qualify.cli.batch:batch",
        "serve": "service.cli:serve",
        "outbox": "service.cli:outbox",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            try:
                command = getattr(importlib.import_module(module), attr)
            except ImportError as e:
                raise CannotStart(
                    f"'qualify {name}' needs an optional part that is not installed ({e.name});"
                    " install with: pip install -e '.[dev]'") from None
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qualify")
def main() -> None:
    """qualify: rules-based lead qualification."""


@main.command()
@click.argument("lead", type=click.Path(allow_dash=True, dir_okay=False))
@RULES_OPTION
@click.option("--explain", is_flag=True, help="Print the human explanation, not JSON.")
@click.option("--locale", type=click.Choice(["en", "zh"]), default=None,
              help="Language of labels and explanation (default: the rule base's).")
@click.option("--as-of", callback=parse_as_of, default=None, metavar="YYYY-MM-DD",
              help="The date date-rules use (default: today, UTC).")
def score(lead: str, rules_path: Path | None, explain: bool, locale: str | None,
          as_of: dt.date | None) -> None:
    """Score LEAD (a JSON object, a JSON array, a .jsonl file, or - for stdin)."""
    engine = _load_engine(rules_path)
    failed = 0
    try:
        stream = sys.stdin if lead == "-" else open(lead, encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        raise CannotStart(f"{lead}: {e.strerror}") from None
    with stream:
        try:
            leads = read_leads(lead, stream)
            many = not isinstance(leads, list) or len(leads) > 1  # one compact verdict a line
            for number, raw in leads:
                where = f"{lead}:{number}"
                if isinstance(raw, BadJSON):
                    click.echo(f"{where}: invalid JSON: {raw.message}", err=True)
                    failed += 1
                    continue
                try:
                    verdict = engine.score(raw, as_of=as_of, locale=locale)
                    d = engine.decide(raw, as_of) if explain else None
                except QualifyError as e:  # a bad lead, or the engine failed on it
                    click.echo(f"{where}: {e}", err=True)
                    failed += 1
                    continue
                if d is not None:
                    click.echo("\n".join([*verdict.explanation, *passed_over(
                        engine.rulebook, d.stage2_fact, d.lead, d.step.id, verdict.locale)]))
                else:
                    click.echo(verdict.model_dump_json(indent=None if many else 2))
        except UnicodeDecodeError:
            raise CannotStart(f"{lead}: not UTF-8 text") from None
    engine.close()
    if failed:
        raise SystemExit(Exit.FAILED)


