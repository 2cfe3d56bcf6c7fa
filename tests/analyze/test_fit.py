"""Improve: the fit recovers the generating weights' signs and order, its AUC approaches the
generating model's, and the suggested rule base is the original with only points changed."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import kendalltau

from qualify import Engine, load_rulebook
from qualify.analyze.fit import rewrite, round_points, score_with
from qualify.rulebook import default_rules_path
from tests.analyze.conftest import WEIGHTS, Synthetic
from tests.analyze.test_measure import mann_whitney_auc
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def suggested(report: dict[str, Any], text: str, suggested_dir: Path
              ) -> tuple[dict[str, Any], Path, str]:
    """The JSON report, the rule base it wrote, the printed report (same run, as text)."""
    return report, suggested_dir / "from_json.yaml", text


class TestRecovery:
    def test_signs(self, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """Every fitted coefficient has the sign of its generating weight."""
        coef = suggested[0]["suggestion"]["coefficients"]
        assert {t: c > 0 for t, c in coef.items()} == {t: w > 0 for t, w in WEIGHTS.items()}

    def test_order(self, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """The coefficients rank the traits as the weights do: Kendall's tau >= 0.9, and
        every pair of weights 0.4 or more apart in the right order."""
        coef = suggested[0]["suggestion"]["coefficients"]
        ids = list(WEIGHTS)
        tau = kendalltau([WEIGHTS[i] for i in ids], [coef[i] for i in ids]).statistic
        assert tau >= 0.9
        for a in ids:
            for b in ids:
                if WEIGHTS[a] >= WEIGHTS[b] + 0.4:
                    assert coef[a] > coef[b], (a, b)

    def test_auc_approaches_the_generating_model(
            self, synthetic: Synthetic, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """Cross-validated: the fitted weights come within 0.01 of the generating model's
        AUC; the rounded points beat the current ones and stay within 0.05 of it."""
        s = suggested[0]["suggestion"]
        truth = mann_whitney_auc([synthetic.truth[k] for k, y in synthetic.outcome.items() if y],
                                 [synthetic.truth[k] for k, y in synthetic.outcome.items()
                                  if not y])
        assert s["cv_auc_fitted"] == pytest.approx(truth, abs=0.01)
        assert s["cv_auc_after"] > s["cv_auc_before"]
        assert s["cv_auc_after"] >= truth - 0.05

    def test_a_sign_against_the_kind_is_a_proposal_not_a_flip(
            self, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """nearby fits negative: reported as a proposal, its points kept (+5)."""
        report, _, text = suggested
        assert report["suggestion"]["flips"] == ["nearby"]
        assert report["suggestion"]["points"]["nearby"] == 5
        assert "proposal: nearby fits as bad" in text

    def test_kinds_and_scale(self, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """Golden > 0, bad < 0, multiples of 5; the largest |coefficient| becomes the largest
        |points| of the rule base (15): big_order."""
        s = suggested[0]["suggestion"]
        rb = load_rulebook(default_rules_path())
        for t in rb.traits:
            p = s["points"][t.id]
            assert p % 5 == 0
            assert (p > 0) == (t.kind == "golden")
        assert s["points"]["big_order"] == 15
        assert s["scale"] == pytest.approx(15 / max(abs(c) for c in
                                                    s["coefficients"].values()))
        rules = {r["id"]: r["suggested_points"] for r in suggested[0]["rules"]}
        assert all(rules[t] == s["points"][t] for t in WEIGHTS)


class TestRewrite:
    def test_only_points_lines_change(self, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """The written rule base is the original byte for byte but for points lines."""
        _, out, _ = suggested
        old = default_rules_path().read_text(encoding="utf-8").splitlines()
        new = out.read_text(encoding="utf-8").splitlines()
        changed = [line for line in difflib.unified_diff(old, new, lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert changed
        assert all(line[1:].lstrip().startswith("points:") for line in changed), changed
        assert len(old) == len(new)

    def test_the_diff_is_printed(self, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """Each trait whose points changed is in the printed rules diff."""
        report, _, text = suggested
        rb = load_rulebook(default_rules_path())
        for t in rb.traits:
            new = report["suggestion"]["points"][t.id]
            if new != t.points:
                assert f"changed  trait {t.id}: points {t.points:+d} -> {new:+d}" in text

    def test_the_engine_scores_as_the_fit_assumed(
            self, synthetic: Synthetic, suggested: tuple[dict[str, Any], Path, str]) -> None:
        """The suggested rule base, scored by the engine, gives what the fit computed:
        base + the new points of the traits that fire, within the score's bounds."""
        _, out, _ = suggested
        rb = load_rulebook(out)
        engine = Engine(rb)
        points = {t.id: t.points for t in rb.traits}
        try:
            for line in list(synthetic.verdicts)[:300]:
                v = engine.score(synthetic.leads[line], as_of=AS_OF)
                fired = {h["id"] for h in v.traits}
                x = np.asarray([[t.id in fired for t in rb.traits]], dtype=float)
                assert v.score == score_with(rb, x, points)[0]
        finally:
            engine.close()

    def test_comments_and_quotes_survive(self) -> None:
        """A round trip with no change gives the text back unchanged."""
        text = default_rules_path().read_text(encoding="utf-8")
        assert rewrite(text, {}) == text

    @pytest.mark.parametrize(("value", "kind", "expected"), [
        (12.4, "golden", 10), (12.6, "golden", 15), (0.4, "golden", 5), (-7.4, "bad", -5),
        (-7.6, "bad", -10), (-1.0, "bad", -5)])
    def test_rounding(self, value: float, kind: str, expected: int) -> None:
        """Nearest 5, never 0 or against the kind."""
        assert round_points(value, kind) == expected

