"""The `qualify rules` group: every command is there and documented."""

from __future__ import annotations

import pytest

from tests.authoring.conftest import Run

COMMANDS = ["check", "diff", "doc", "schema", "test"]


class TestHelp:
    def test_lists_every_command(self, run: Run) -> None:
        """`qualify rules --help` lists the five commands."""
        out = run("--help").stdout
        for name in COMMANDS:
            assert f"  {name} " in out

    @pytest.mark.parametrize("name", COMMANDS)
    def test_each_command_documents_itself(self, run: Run, name: str) -> None:
        """Every command has a help text and exits 0 on --help."""
        result = run(name, "--help")
        assert result.exit_code == 0
        assert f"Usage: qualify rules {name}" in result.stdout
        assert len(result.stdout.splitlines()) > 4

    def test_bad_option_value_is_a_usage_error(self, run: Run) -> None:
        """A malformed --as-of is refused by click with exit 2, not a stack trace."""
        result = run("test", "--as-of", "tomorrow")
        assert result.exit_code == 2 and "YYYY-MM-DD" in result.stderr
