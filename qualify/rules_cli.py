"""``qualify rules ...``: check (and, later, test, diff, document) a rule base."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qualify.errors import Problem, QualifyError, RulebaseError
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook


@click.group()
def rules() -> None:
    """Check, test and document rule bases."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def rules_check(path: Path | None, fmt: str, strict: bool) -> None:
    """Check a rule base: every error at once, as file:line:col: code: message (hint)."""
    path = path or default_rules_path()
    problems: list[Problem]
    rulebook: Rulebook | None = None
    try:
        rulebook = load_rulebook(path)
        problems = list(rulebook.warnings)
        if rulebook is not None:
            from qualify.engine import Engine

            Engine(rulebook).close()  # the engine accepts what the loader accepted
    except RulebaseError as e:
        problems = e.problems
    except QualifyError as e:
        problems = [Problem("engine", str(e), str(path), 1, 1)]
    errors = [p for p in problems if p.severity == "error" or strict]
    if fmt == "json":
        click.echo(json.dumps({"file": str(path), "ok": not errors,
                               "problems": [p.to_dict() for p in problems]},
                              ensure_ascii=False, indent=2))
    else:
        for p in problems:
            click.echo(str(p) if p.severity == "error" else f"{p} [warning]",
                       err=bool(errors))
        if not errors:
            n = len(rulebook.rules) if rulebook else 0
            click.echo(f"{path}: ok ({n} rules, {len(problems)} warnings)")
    if errors:
        raise SystemExit(1)
