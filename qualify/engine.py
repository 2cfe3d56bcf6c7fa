"""The engine: a compiled rule base that turns leads into verdicts.

    engine = Engine.from_path("rules/default.yaml")
    verdict = engine.score({"lead_id": "L1", "budget": "25000"}, as_of=date(2026, 1, 1))

Two stages, one module each: ``decide.py`` matches a lead in durable-rules (read, derive,
stage 1, score, grade and status, stage 2) and ``builder.py`` builds its verdict (evidence,
unknowns, weakest factor, next step and the explanation lines, in the words of
``words.py``). An Engine gives the same verdicts as a fresh one, is safe to share between
threads, and ``close`` frees the engine memory once no call is in flight.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from qualify.builder import LOCALES, Builder
from qualify.compiler import compile_rulebook
from qualify.decide import Decider, Decision, today
from qualify.errors import QualifyError
from qualify.memo import Memo
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook
from qualify.verdict import Verdict

__all__ = ["Decision", "Engine", "today"]


class Engine:
    """A rule base compiled to durable-rules, ready to score leads."""

    def __init__(self, rulebook: Rulebook, *, memo: bool = True) -> None:
        """``memo=False`` sends every lead to durable-rules (memo.py says what it saves) and
        explains every rule afresh (explained parts are otherwise kept per rule and values)."""
        self.rulebook = rulebook
        self.compiled = compiled = compile_rulebook(rulebook)
        self._decider = Decider(rulebook, compiled, memo=memo)
        try:
            self._builder = Builder(rulebook, compiled.rules_1, memo=memo)
        except BaseException:
            self._decider.close()
            raise
        self.reader = self._decider.reader
        self.memos: tuple[Memo, ...] = self._decider.memos  # stage 1 and 2, with their hits

    @classmethod
    def from_path(cls, path: str | Path | None = None, *, memo: bool = True) -> Engine:
        """Load, check and compile a rule base (default: the bundled one)."""
        return cls(load_rulebook(path or default_rules_path()), memo=memo)

    def close(self) -> None:
        """Free the engine's memory; waits for calls in flight. Later calls fail."""
        self._decider.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decide(self, raw: Any, as_of: dt.date | None = None) -> Decision:
        """Match a raw lead. Raises LeadError for a bad lead, EngineError if the engine fails."""
        return self._decider.decide(raw, as_of)

    def explain(self, d: Decision, as_of: dt.date, loc: str) -> Verdict:
        """Build the verdict for a decision: evidence, unknowns, weakest factor, next step."""
        return self._builder.verdict(d, as_of, loc)

    def score(self, raw: Any, *, as_of: dt.date | None = None,
              locale: str | None = None) -> Verdict:
        """The verdict for one lead. Raises LeadError (bad lead) or EngineError."""
        as_of = as_of or today()
        loc = locale or self.rulebook.locale
        if loc not in LOCALES:
            raise QualifyError(f"unknown locale {loc!r} (use en or zh)")
        return self._builder.verdict(self._decider.decide(raw, as_of), as_of, loc)
