"""Bounded tables of results kept for reuse: ``Bounded`` (a full table starts over) and
``Kept`` (the same, and it stops keeping results while they go unused).

Whole-lead results (stage 1's outcome by its fired conditions, a whole tuple of class keys)
pay only where leads repeat as a whole. On leads that rarely do, keeping them costs more
than it saves: in a batch worker on generated leads, stage 1's outcomes were reused for 1 %
of leads and keeping them cost 3.2 µs a lead (the keys, their memory, and freeing them). So
a ``Kept`` table that fills with fewer hits than entries rests: for ``REST`` fills' worth of
lookups it answers and keeps nothing. Then it tries again. Safe to share between threads:
dict reads and writes are atomic; the counts that decide when it rests may race, and no
answer depends on them.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
REST = 8  # table-sizes of lookups a table that did not pay rests for


class Kept(Generic[V]):
    """Up to ``size`` values by key (a full table starts over; ``size`` 0 keeps none)."""

    __slots__ = ("hits", "rest", "size", "table")

    def __init__(self, size: int) -> None:
        self.size = size
        self.table: dict[Hashable, V] = {}
        self.hits = 0  # since the table started over
        self.rest = 0  # lookups left before it keeps values again

    @property
    def keeping(self) -> bool:
        return self.size > 0 and self.rest <= 0

    def get(self, key: Hashable) -> V | None:
        """The value kept under ``key``, or None (a table of size 0 does not look: its keys
        need not be hashable)."""
        if self.rest > 0:  # not ``if self.rest``: two threads may take it below zero
            self.rest -= 1
            return None
        if not self.size:
            return None
        value = self.table.get(key)
        if value is not None:
            self.hits += 1
        return value

    def keep(self, key: Hashable, value: V) -> V:
        """``value``, kept under ``key`` unless the table rests."""
        if not self.keeping:
            return value
        table = self.table
        if len(table) >= self.size:
            if self.hits < len(table):
                self.rest = REST * self.size
            table.clear()
            self.hits = 0
            if self.rest > 0:
                return value
        table[key] = value
        return value


class Bounded(dict[Hashable, V]):
    """Up to ``size`` values by key: a full table starts over; ``size`` 0 keeps none. A dict
    (its ``get`` is the dict's own: the lookups on every lead cost nothing extra)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: Hashable, value: V) -> V:
        """``value``, kept under ``key`` (a full table is cleared first)."""
        if self.size:
            if len(self) >= self.size:
                self.clear()
            self[key] = value
        return value
