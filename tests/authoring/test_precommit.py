"""The pre-commit configuration runs `qualify rules check` and `qualify rules test` on the
rule files a commit touches, and both pass on the repository as it is."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.authoring.conftest import Run
from tests.conftest import ROOT

CONFIG = ROOT / ".pre-commit-config.yaml"


@pytest.fixture(scope="module")
def hooks() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    return {h["id"]: h for h in repo["hooks"]}


def selected(hook: dict[str, Any]) -> list[str]:
    """The repository files pre-commit would pass to the hook (run on all files)."""
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "rules").rglob("*") if p.is_file()]
    keep = re.compile(hook.get("files", ""))
    drop = re.compile(hook["exclude"]) if "exclude" in hook else None
    return sorted(f for f in files if keep.search(f) and not (drop and drop.search(f)))


class TestConfig:
    def test_hooks(self, hooks: dict[str, dict[str, Any]]) -> None:
        """Two local hooks, each running a `qualify rules` command from the environment."""
        assert set(hooks) == {"qualify-rules-check", "qualify-rules-test"}
        assert hooks["qualify-rules-check"]["entry"].startswith("qualify rules check")
        assert hooks["qualify-rules-test"]["entry"].startswith("qualify rules test")
        assert all(h["language"] == "system" for h in hooks.values())

    def test_check_skips_test_files(self, hooks: dict[str, dict[str, Any]]) -> None:
        """check sees rule bases only; test sees rule bases and their test files."""
        assert "rules/default.yaml" in selected(hooks["qualify-rules-check"])
        assert "rules/default.test.yaml" not in selected(hooks["qualify-rules-check"])
        assert "rules/default.test.yaml" in selected(hooks["qualify-rules-test"])

    @pytest.mark.parametrize("hook_id", ["qualify-rules-check", "qualify-rules-test"])
    def test_passes_on_the_repository(self, hooks: dict[str, dict[str, Any]], run: Run,
                                      hook_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each hook, given the files pre-commit would give it, exits 0 (from the repo root)."""
        monkeypatch.chdir(ROOT)
        hook = hooks[hook_id]
        args = shlex.split(hook["entry"])[2:]  # after "qualify rules"
        files = selected(hook)
        assert files
        result = run(*args, *files)
        assert result.exit_code == 0, result.output

    def test_test_hook_runs_each_suite_once(self, run: Run,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A rule base and its test file both changed: the suite runs once."""
        monkeypatch.chdir(ROOT)
        out = run("test", "rules/default.yaml", "rules/default.test.yaml").stdout
        assert out.count("coverage of rules/default.yaml") == 1
        assert Path(ROOT / "rules/default.test.yaml").is_file()
