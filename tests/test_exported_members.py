"""The public face of the package, as httpx guards its own (tests/test_exported_members.py
there): ``__all__`` is exactly the public names, sorted, and each one importable."""

from __future__ import annotations

import importlib
import types

import pytest

# packages whose __init__ is a public face: everything public in it is exported
FACES = ["qualify", "qualify.analyze", "qualify.batch"]
# every module that declares __all__ (a face, or a module naming what others may import)
DECLARING = [*FACES, "qualify.patterns", "service.inbound"]


def _public(module: types.ModuleType) -> list[str]:
    """Names defined or imported in ``module`` that are not private; submodules aside (a
    package gets an attribute for each submodule that is imported)."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and not isinstance(value, types.ModuleType))


@pytest.mark.parametrize("name", FACES)
def test_all_is_every_public_name_sorted(name: str) -> None:
    """``__all__ == sorted(public names)``: nothing public is left out of ``__all__``, nothing
    in it is missing or private, and it is sorted."""
    module = importlib.import_module(name)
    assert module.__all__ == _public(module)


@pytest.mark.parametrize("name", DECLARING)
def test_all_is_sorted_and_importable(name: str) -> None:
    """``__all__`` is sorted, and ``from <module> import *`` gives exactly its names, each
    a real object."""
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(module.__all__)
    assert all(value is not None for value in namespace.values())
