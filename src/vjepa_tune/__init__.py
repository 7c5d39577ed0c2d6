"""vjepa-tune: fine-tune V-JEPA 2 video models for action recognition and detection."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from vjepa_tune.version import __version__

# OpenMP threads that spin while waiting make small models hundreds of times slower whenever the cores are shared
# (a DataLoader worker, a second process, a busy CI machine; docs/design.md, "OpenMP waiting"). It only takes effect
# before torch is first imported, which is why it sits here; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["__version__", "load_run"]

if TYPE_CHECKING:
    from vjepa_tune.inference.predictor import load_run

_LAZY = {"load_run": "vjepa_tune.inference.predictor"}
"""Names served from their modules on first use, so that `import vjepa_tune` does not import torch."""


def __getattr__(name: str) -> Any:
    """`vjepa_tune.load_run` is `vjepa_tune.inference.load_run` itself: its signature, its docstring."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vjepa_tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
