"""Options and parsing shared by the commands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

RULES_OPTION = click.option(  # shared by every command that reads a rule base
    "--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The rule base (default: the bundled rules/default.yaml).")


def parse_as_of(_: Any, __: Any, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date as YYYY-MM-DD") from None
