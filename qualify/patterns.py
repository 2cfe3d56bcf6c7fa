"""Regular expressions written by ops (``matches()`` in rules, ``patterns`` in mappings),
matched in linear time with RE2.

Leads supply the text, so no pattern may let a value stall a worker: Python's ``re``
backtracks, and ``(a+)+$`` against 28 a's and a ``!`` took 29 s. RE2 runs in time linear in
the text whatever the pattern, and refuses the two constructs that need backtracking
(backreferences such as ``\\1`` and lookaround such as ``(?=...)``); the error says so.
Other differences from Python's ``re``: ``\\d``, ``\\w`` and ``\\b`` are ASCII only, and ``$``
matches only at the very end of the text (not before a final newline).
"""

from __future__ import annotations

import re
from typing import Protocol

import re2

from qualify.errors import QualifyError

__all__ = ["Pattern", "PatternError", "compile_pattern"]


class Pattern(Protocol):
    def search(self, text: str) -> object | None: ...


class PatternError(QualifyError, ValueError):
    """A pattern RE2 cannot compile; the message is meant for whoever wrote the pattern."""


# RE2's words for a backreference or a lookaround
_BACKTRACKING = re.compile(r"invalid (escape sequence: \\[1-9]|perl operator: \(\?(=|!|<))")


def compile_pattern(text: str, *, ignore_case: bool = False) -> Pattern:
    """Compile ``text`` for ``search``; raises :class:`PatternError` with a reason."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    options.never_capture = True  # only "does it match" is asked: faster
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(text, options)  # type: ignore[no-any-return]
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        if _BACKTRACKING.match(reason):
            reason += (" (backreferences and lookaround are not supported: patterns run on"
                       " RE2, which never backtracks, so no lead can stall matching)")
        raise PatternError(reason) from None
