"""The public face of the package: one sorted __all__, every name importable."""

import qualify


def test_all_is_sorted_and_importable() -> None:
    assert qualify.__all__ == sorted(qualify.__all__)
    for name in qualify.__all__:
        assert getattr(qualify, name) is not None


def test_no_private_names_exported() -> None:
    assert not [n for n in qualify.__all__ if n.startswith("_")]
