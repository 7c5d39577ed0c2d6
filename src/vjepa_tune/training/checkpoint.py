"""Run folders on disk: the resumable training state and the best model.

Layout of a run folder (CLI.md "Outputs"):

    config.yaml        the full resolved configuration (`train --config RUN_DIR/config.yaml` repeats the run)
    splits.json        the exact videos of each split
    metrics.json       written last: its presence marks the run finished
    checkpoint/state.pt  the state after the last finished epoch (trainable weights, optimizer, scheduler,
                       RNG states, epoch, step, history), replaced atomically each epoch
    model/             the best model: `trainable.safetensors` (every trained weight) + `model.json`
    tensorboard/       event files

Only the weights that train are saved: the frozen ones come back from the base model named in config.yaml. Base
weights that the run had to initialise itself (a `random:*` model, or a pooler missing from a backbone-only
checkpoint) are drawn from the generator seeded by the run seed before loading, so a reload recreates them exactly;
`model.json` keeps a fingerprint of them and `load_run_model` refuses a base model that does not match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_atomic, write_text_atomic

STATE_FILE = Path("checkpoint") / "state.pt"
MODEL_DIR = Path("model")
WEIGHTS_FILE = "trainable.safetensors"
MODEL_META_FILE = "model.json"


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the resumable state atomically: a kill mid-write leaves the previous state intact."""
    write_atomic(run_dir / STATE_FILE, lambda aside: torch.save(state, aside))


def load_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_states() -> dict[str, Any]:
    import random

    import numpy as np

    states: dict[str, Any] = {
        "torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def fingerprint(model: torch.nn.Module) -> float:
    """A cheap checksum of every weight, to notice a base model that is not the one a run was trained on."""
    total = 0.0
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            if p.device.type == "meta":
                continue
            total += float(p.detach().float().flatten()[:: max(1, p.numel() // 64)].sum()) * (1 + (i % 7) * 1e-3)
    return total


def save_model(run_dir: Path, weights: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write the best model: every trained weight in safetensors plus what is needed to rebuild the rest."""
    out = run_dir / MODEL_DIR
    contiguous = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    write_atomic(out / WEIGHTS_FILE, lambda aside: save_file(contiguous, aside))
    write_text_atomic(out / MODEL_META_FILE, json.dumps(meta, indent=2), durable=False)
    return out


def load_model_files(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    out = run_dir / MODEL_DIR
    weights, meta = out / WEIGHTS_FILE, out / MODEL_META_FILE
    if not weights.exists() or not meta.exists():
        raise BadInput(
            f"{run_dir} holds no trained model ({MODEL_DIR / WEIGHTS_FILE} is missing): "
            "is it a vjepa-tune run folder whose training finished at least one epoch?"
        )
    return load_file(str(weights)), json.loads(meta.read_text())
