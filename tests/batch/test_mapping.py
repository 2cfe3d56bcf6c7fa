"""Mapping profiles in batch: keys to copy, and the input columns a profile reads."""

from __future__ import annotations

from qualify import load_profile_text


class TestProfile:
    def test_keys_and_sources(self) -> None:
        """``keys`` are kept in order; ``sources`` lists every column and path read."""
        p = load_profile_text("name: x\nkeys: [Id, Converted]\nfields:\n"
                              "  lead_id: {from: Id}\n"
                              "  budget: {from: [properties.budget, Budget]}\n"
                              "  stage: {value: new}\n")
        assert p.keys == ("Id", "Converted")
        assert p.sources() == {"Id", "Converted", "properties.budget", "properties",
                               "Budget"}

    def test_apply_is_unchanged(self) -> None:
        """The webhook use of a profile (``apply`` on a nested payload) still works."""
        p = load_profile_text("name: x\nfields:\n  lead_id: {from: data.id}\n"
                              "  needs_product: {from: data.need, values: {Yes: true}}\n")
        assert p.apply({"data": {"id": "7", "need": "yes"}}) == {"lead_id": "7",
                                                                 "needs_product": True}
