"""Synthetic leads whose outcome is drawn from known weights on the traits they fire.

The default rule base scores ``generate(N, SEED)``; each lead converts with probability
``logistic(INTERCEPT + sum of WEIGHTS of its traits)``, drawn with a seeded generator. One
golden trait (``nearby``) is given a negative weight on purpose: the analysis must say it
hurts, and the fit must propose changing its kind rather than flip it silently.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from qualify import Engine, Rulebook
from qualify.cli.analyze import analyze
from qualify.synthetic import generate
from qualify.verdict import Verdict
from tests.conftest import AS_OF

N = 3000
SEED = 7
INTERCEPT = -0.4
WEIGHTS = {  # log-odds per trait; well apart, so their order can be recovered
    "big_order": 2.4, "urgent_need": 1.6, "positive_attitude": 1.0, "fits_plan": 0.6,
    "center_of_influence": 0.3, "financially_sound": 1.2,
    "nearby": -0.8,  # golden in the rule base, against its kind here
    "negative_attitude": -2.0, "no_follow_up": -1.3, "small_deal": -0.9,
    "value_hard_to_show": -0.5, "business_declining": -0.3, "stale_contact": -1.6,
    "no_referral_value": -1.0, "far_away": -0.2,
}
BLANK_EVERY = 97  # every 97th lead has a blank outcome
BAD_EVERY = 101  # every 101st lead has a value the rule base refuses


@dataclass
class Synthetic:
    path: Path
    verdicts: dict[int, Verdict]  # line -> verdict, for the leads scored
    outcome: dict[int, bool]  # line -> outcome, for the leads with one
    truth: dict[int, float]  # line -> the generating logit
    leads: dict[int, dict[str, Any]]  # line -> the lead as written
    blank: int
    bad: int


def _logit(v: Verdict) -> float:
    return INTERCEPT + sum(WEIGHTS[t["id"]] for t in v.traits)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory, default_rulebook: Rulebook) -> Synthetic:
    path = tmp_path_factory.mktemp("analyze") / "leads.jsonl"
    rnd = random.Random(SEED)
    engine = Engine(default_rulebook)
    verdicts: dict[int, Verdict] = {}
    outcome: dict[int, bool] = {}
    truth: dict[int, float] = {}
    blank = bad = 0
    lines = []
    leads = {}
    for line, lead in enumerate(generate(N, seed=SEED), 1):
        record: dict[str, Any] = dict(lead)
        if line % BAD_EVERY == 0:
            record["budget"] = "lots"
            bad += 1
        else:
            v = engine.score(record, as_of=AS_OF)
            verdicts[line] = v
            truth[line] = _logit(v)
        p = 1 / (1 + math.exp(-truth.get(line, 0.0)))
        y = rnd.random() < p
        if line % BLANK_EVERY == 0:
            record["converted"] = ""
            blank += line % BAD_EVERY != 0
        else:
            record["converted"] = int(y) if line % 2 else ("yes" if y else "no")
            if line in verdicts:
                outcome[line] = y
        leads[line] = record
        lines.append(json.dumps(record, ensure_ascii=False))
    engine.close()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Synthetic(path, verdicts, outcome, truth, leads, blank, bad)


def run(*args: str) -> Result:
    return CliRunner().invoke(analyze, [*args, "--as-of", AS_OF.isoformat()])


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.fixture(scope="session")
def suggested_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("suggested")


@pytest.fixture(scope="session")
def report(synthetic: Synthetic, suggested_dir: Path) -> dict[str, Any]:
    """The JSON analysis of the synthetic leads, with --target 200 and --suggest."""
    return run_json(str(synthetic.path), "--outcome", "converted", "--target", "200",
                    "--suggest", str(suggested_dir / "from_json.yaml"))


@pytest.fixture(scope="session")
def text(synthetic: Synthetic, suggested_dir: Path) -> str:
    """The printed analysis of the synthetic leads, with --target 200 and --suggest."""
    result = run(str(synthetic.path), "--outcome", "converted", "--target", "200",
                 "--suggest", str(suggested_dir / "from_text.yaml"))
    assert result.exit_code == 0, result.output
    return result.stdout
