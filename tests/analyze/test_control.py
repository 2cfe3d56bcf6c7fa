"""Control: the leads it takes to reach N conversions, against a count written here."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from qualify.analyze.control import from_top
from tests.analyze.conftest import Synthetic


def expected_in_top(y: np.ndarray, s: np.ndarray, k: int) -> float:
    """Expected conversions among the top k by score, ties broken at random."""
    got = 0.0
    for v in sorted(set(s.tolist()), reverse=True):
        tie = s == v
        size = int(tie.sum())
        take = min(size, k)
        got += take * y[tie].sum() / size
        k -= take
        if k == 0:
            break
    return got


class TestFromTop:
    def test_smallest_top_that_reaches_the_target(self) -> None:
        """The count is the smallest k whose expected conversions reach the target."""
        rng = np.random.default_rng(2)
        y = rng.random(300) < 0.35
        s = rng.integers(0, 8, size=300).astype(float)
        for target in (1, 10, 50, int(y.sum())):
            k = next(k for k in range(1, 301) if expected_in_top(y, s, k) >= target - 1e-9)
            assert from_top(y, s, target)[0] == k

    def test_unreachable(self) -> None:
        """More than all conversions: no count."""
        y = np.array([True, False, True])
        assert from_top(y, np.array([1.0, 2.0, 3.0]), 3) == (None, None)


class TestTargetInTheReport:
    def test_per_grade_and_from_the_top(self, synthetic: Synthetic,
                                        report: dict[str, Any]) -> None:
        """Per grade: ceil(N / its rate), counted from the verdicts; from the top: as above."""
        control = report["control"]
        assert control["target"] == 200
        lines = list(synthetic.outcome)
        y = np.asarray([synthetic.outcome[k] for k in lines])
        s = np.asarray([float(synthetic.verdicts[k].score) for k in lines])
        k = next(k for k in range(1, len(y) + 1) if expected_in_top(y, s, k) >= 200 - 1e-9)
        assert control["top_leads"] == k
        for g in control["per_grade"]:
            mine = [synthetic.outcome[k] for k in lines if synthetic.verdicts[k].grade
                    == g["grade"]]
            assert g["available"] == len(mine)
            assert g["leads_needed"] == (math.ceil(200 * len(mine) / sum(mine))
                                         if sum(mine) else None)

    def test_printed(self, report: dict[str, Any], text: str) -> None:
        """The printed plan carries the same numbers."""
        c = report["control"]
        assert f"from the top by score: {c['top_leads']:,} leads" in text
        for g in c["per_grade"]:
            if g["leads_needed"] is not None:
                assert f"grade {g['grade']} only: {g['leads_needed']:,} leads" in text


@pytest.mark.parametrize("n", [0, -3])
def test_target_must_be_positive(synthetic: Synthetic, n: int) -> None:
    """--target 0 is refused by the option itself."""
    from tests.analyze.conftest import run

    result = run(str(synthetic.path), "--outcome", "converted", "--target", str(n))
    assert result.exit_code == 2
