"""The README documents every command, and its two setup commands exist."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from qualify.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    ctx = click.Context(main)
    out = []
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        if isinstance(command, click.Group):
            out += [f"{name} {sub}" for sub in command.list_commands(click.Context(command))]
        else:
            out.append(name)
    return out


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_in_the_readme(command: str) -> None:
    """Each `qualify` command and subcommand is shown in the README."""
    assert f"qualify {command}" in README


def test_the_two_commands() -> None:
    """The README's two commands are the Makefile's targets, and CI runs the test one."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "make serve" in README and "make test" in README
    assert "\nserve:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
