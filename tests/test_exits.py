"""Every command's exit status means what ``qualify/exits.py`` says: 0 done, 1 it ran and
something failed, 2 nothing was done (a bad option, or a rule base, mapping or file the
command cannot use), 3 the workers failed, 4 an output not written, 130 interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from qualify.cli import main
from qualify.errors import QualifyError
from qualify.exits import Exit

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
BROKEN = str(EX / "broken_rules.yaml")

CASES = [  # (args, exit status); {tmp} is a fresh folder
    (["score", str(EX / "golden_lead.json"), "--as-of", "2026-01-01"], Exit.OK),
    (["score", str(EX / "bad_lead.json")], Exit.FAILED),
    (["score", "{tmp}/missing.json"], Exit.CANNOT_START),
    (["score", str(EX / "golden_lead.json"), "--rules", BROKEN], Exit.CANNOT_START),
    (["score", str(EX / "golden_lead.json"), "--no-such-option"], Exit.CANNOT_START),
    (["batch", str(EX / "leads.jsonl"), "--out", "{tmp}/o.csv", "--workers", "1",
      "--as-of", "2026-01-01"], Exit.FAILED),  # ten leads with a bad value
    (["batch", "{tmp}/missing.csv", "--out", "{tmp}/o.csv"], Exit.CANNOT_START),
    (["batch", str(EX / "leads.jsonl"), "--out", "{tmp}/o.csv", "--rules", BROKEN],
     Exit.CANNOT_START),
    (["rules", "check", str(ROOT / "rules" / "default.yaml")], Exit.OK),
    (["rules", "check", BROKEN], Exit.FAILED),  # the check ran and found errors
    (["rules", "test", str(EX / "typo.test.yaml")], Exit.FAILED),
    (["rules", "doc", BROKEN], Exit.CANNOT_START),
    (["rules", "diff", BROKEN, str(EX / "v2.yaml")], Exit.CANNOT_START),
    (["map", "check", str(ROOT / "rules" / "mappings" / "hubspot.yaml"), "--rules", BROKEN],
     Exit.CANNOT_START),
]


@pytest.mark.parametrize(("args", "status"), CASES,
                         ids=[" ".join(a[:2]) + f"-{s.name}" for a, s in CASES])
def test_exit_status(args: list[str], status: Exit, tmp_path: Path) -> None:
    """The status the table gives, and a one-line reason on stderr when it is not 0."""
    result = CliRunner().invoke(main, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == status, (result.exit_code, result.output)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit), result


def test_every_library_error_is_a_qualify_error() -> None:
    """One root: a caller catching QualifyError catches every error qualify raises on
    purpose, batch, analysis, patterns and the solver included."""
    from qualify.analyze.outcomes import AnalyzeError
    from qualify.authoring.solver import GiveUp
    from qualify.batch.pipeline import BatchError
    from qualify.batch.readers import InputError
    from qualify.batch.runner import WorkerError
    from qualify.batch.writers import OutputError
    from qualify.patterns import PatternError
    from qualify.spark import SparkError

    for error in (AnalyzeError, GiveUp, BatchError, InputError, WorkerError, OutputError,
                  PatternError, SparkError):
        assert issubclass(error, QualifyError), error
