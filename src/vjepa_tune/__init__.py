"""vjepa-tune: fine-tune V-JEPA 2 video models for action recognition and detection."""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting make small models hundreds of times slower whenever the cores are shared
# (a DataLoader worker, a second process, a busy CI machine): a tiny run took 1.3 s instead of 143 s here. It only
# takes effect before torch is first imported, which is why it sits here; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["__version__", "load_run"]


def load_run(run_dir):  # noqa: ANN001, ANN201 - thin lazy re-export
    """Load a finished run for prediction: `load_run(RUN_DIR).predict("video.mp4")`."""
    from vjepa_tune.inference import load_run as _load_run

    return _load_run(run_dir)
