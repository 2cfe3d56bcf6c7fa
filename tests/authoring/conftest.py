"""Fixtures for the rule-authoring commands: rule bases and test files written to tmp_path,
and the ``qualify rules`` CLI run in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qualify.cli import main
from qualify.rulebook import default_rules_path

DEFAULT_TEXT = default_rules_path().read_text(encoding="utf-8")
DEFAULT_TESTS = default_rules_path().with_name("default.test.yaml")

Write = Callable[..., Path]
Run = Callable[..., Result]


def variant(*edits: tuple[str, str], text: str = DEFAULT_TEXT) -> str:
    """The default rule base with each (old, new) edit applied once (each must match)."""
    for old, new in edits:
        assert old in text, f"edit does not apply: {old!r}"
        text = text.replace(old, new, 1)
    return text


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """write(name, text) -> the path of a file written in a fresh folder."""
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return _write


@pytest.fixture
def run() -> Run:
    """run("check", path, ...) -> the click Result of ``qualify rules check path ...``."""
    def _run(*args: object) -> Result:
        result = CliRunner().invoke(main, ["rules", *map(str, args)], prog_name="qualify")
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exception  # never a stack trace for a user's mistake
        return result
    return _run
