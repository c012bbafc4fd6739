"""Deprecated aliases for public names that moved (the policy: docs/plugins.md, "Versioning").

A moved public name stays importable from its old module for at least one minor release; reading it
there warns with a `DeprecationWarning` that names the new home. A module declares its moved
names once:

    __getattr__ = moved_names(__name__, {"load_dataset": "zoo.factory"}, since="0.2.0")

The new home is imported on first access only, so an alias never adds an import to its old module.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_names"]


def moved_names(module: str, names: Mapping[str, str], *, since: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) serving ``names`` (old name -> new module) with a warning.

    Raises ``AttributeError`` for any other name, as a module without ``__getattr__`` would.
    """
    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = names[name]
        warnings.warn(f"{module}.{name} moved to {new}.{name} in genzoo {since}; the old name will be "
                      "removed in a later minor release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
