"""What every command's exit status means, and the one way problems reach the terminal.

    0    OK              done: every lead, row, check or case passed
    1    FAILED          it ran, and some leads, rows, rule-base checks or test cases failed
                         (``rules check`` finding errors in the rule base it checks is this)
    2    CANNOT_START    nothing was done: a bad option (click's usage errors are 2 too), or a
                         rule base, mapping, input, master or setting the command cannot use
    3    WORKERS_FAILED  the scoring workers, or the Spark job, failed; nothing written
    4    NOT_WRITTEN     an output could not be written (a full disk, say); nothing half-done
    130  INTERRUPTED     Ctrl-C or SIGTERM

``qualify score``, ``batch``, ``analyze``, ``serve``, ``map check`` and every ``rules``
command follow this table; ``tests/test_exits.py`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import NoReturn

import click

from qualify.errors import Problem


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    CANNOT_START = 2
    WORKERS_FAILED = 3
    NOT_WRITTEN = 4
    INTERRUPTED = 130


class CannotStart(click.ClickException):
    """A file or setting the command cannot use: ``Error: ...`` and exit 2."""

    exit_code = Exit.CANNOT_START


def print_problems(problems: Iterable[Problem]) -> None:
    """Each problem on its own line of stderr: ``file:line:col: code: message (hint)``."""
    for p in problems:
        click.echo(str(p), err=True)


def exit_with(problems: Iterable[Problem], code: Exit = Exit.CANNOT_START) -> NoReturn:
    """Print ``problems`` and exit with ``code``."""
    print_problems(problems)
    raise SystemExit(code)
