"""A kept table keeps values while they are reused, and rests while they are not."""

from __future__ import annotations

import pytest

from qualify import kept
from qualify.kept import Kept


def test_keeps_and_starts_over_when_full() -> None:
    table: Kept[int] = Kept(2)
    assert table.keep("a", 1) == 1 and table.get("a") == 1
    table.keep("b", 2)
    assert table.get("b") == 2  # two hits so far: as many as entries, so it paid
    table.keep("c", 3)  # full: starts over, without resting
    assert (table.get("a"), table.get("c"), table.rest) == (None, 3, 0)


def test_rests_while_values_go_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept, "REST", 2)
    table: Kept[int] = Kept(3)
    for i in range(4):  # new keys only: the table fills with no hit
        assert table.get(i) is None
        table.keep(i, i)
    assert table.rest == 6 and not table.keeping
    for _ in range(6):
        table.keep("x", 1)  # kept nowhere while it rests
        assert table.get("x") is None
    assert table.keeping
    table.keep("x", 1)
    assert table.get("x") == 1


def test_size_zero_keeps_nothing_and_never_hashes() -> None:
    table: Kept[int] = Kept(0)
    assert table.keep({1}, 5) == 5  # an unhashable key: never looked at
    assert table.get({1}) is None
