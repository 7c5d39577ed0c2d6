"""Window features of videos for detection tools and embeddings: `vjepa-tune features` and, in Python,
`vjepa_tune.features.extract(model, videos, ...)` returning the arrays (`features.recipe`).

Importing this package imports no torch: `extract` and `write_features` load from the recipe on first use, so that
the command line, which lists `features.command`, starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vjepa_tune.features.recipe import VideoFeatures, extract, write_features

__all__ = ["VideoFeatures", "extract", "write_features"]


def __getattr__(name: str) -> Any:
    """`vjepa_tune.features.extract` is `features.recipe.extract` itself: its signature, its docstring."""
    if name in __all__:
        value = getattr(importlib.import_module("vjepa_tune.features.recipe"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vjepa_tune.features' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
