"""Control: from a target of N conversions, the leads it takes at the measured rates.

From the top by score: leads are taken highest score first; a tie group is taken at its
own conversion rate, so the count is the expected one whatever the order within the tie.
Per grade: N divided by the grade's rate (rounded up), and whether the grade has that many
leads; and taking whole grades from the best down, the leads needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qualify.analyze.measure import Group


@dataclass(frozen=True, slots=True)
class GradeNeed:
    grade: str
    rate: float
    leads_needed: int | None  # None: the grade never converted
    available: int

    @property
    def enough(self) -> bool:
        return self.leads_needed is not None and self.leads_needed <= self.available


@dataclass(frozen=True, slots=True)
class Plan:
    target: int
    top_leads: int | None  # leads from the top by score (None: all of them are too few)
    top_score: int | None  # the lowest score taken
    per_grade: list[GradeNeed]
    grades_down: int | None  # leads taking whole grades best first, then part of the next
    converted: int  # conversions among all analysed leads


def from_top(y: npt.NDArray[np.bool_], score: npt.NDArray[np.float64],
             target: int) -> tuple[int | None, int | None]:
    """(leads, lowest score taken) to expect ``target`` conversions from the top."""
    taken, got = 0, 0.0
    for v in np.unique(score)[::-1]:
        tie = score == v
        size, conv = int(tie.sum()), int(y[tie].sum())
        if got + conv >= target:
            need = math.ceil((target - got) * size / conv - 1e-9) if conv else size
            return taken + need, int(v)
        taken, got = taken + size, got + conv
    return None, None


def plan(y: npt.NDArray[np.bool_], score: npt.NDArray[np.float64], grades: list[Group],
         target: int) -> Plan:
    """``grades``: best first, as measured."""
    top, cut = from_top(y, score, target)
    per = [GradeNeed(g.key, g.rate, math.ceil(target / g.rate - 1e-9) if g.converted
                     else None, g.leads) for g in grades]
    down: int | None = None
    taken, got = 0, 0
    for g in grades:
        if got + g.converted >= target:
            down = taken + math.ceil((target - got) / g.rate - 1e-9)
            break
        taken, got = taken + g.leads, got + g.converted
    return Plan(target, top, cut, per, down, int(y.sum()))
