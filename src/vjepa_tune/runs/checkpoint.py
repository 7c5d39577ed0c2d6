"""What a run saves of its model and training: the resumable state, the best model, and rebuilding that model.

Only the weights that train are saved: the frozen ones come back from the base model named in model/model.json.
Base weights that the run had to initialise itself (a `random:*` model, or a pooler missing from a backbone-only
checkpoint) are drawn from the generator seeded by the run seed (`models.build`), so a reload recreates them
exactly; model.json keeps a fingerprint of them and `load_run_model` refuses a base model that does not match.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import VJEPA2ForVideoClassification, VJEPA2VideoProcessor

from vjepa_tune.config import StrategyName, TrainConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.files import staged_folder, write_atomic, write_text_atomic
from vjepa_tune.models.adapters import load_trainable_state_dict, trainable_state_dict, unwrap
from vjepa_tune.models.build import build_model
from vjepa_tune.models.loading import quiet_transformers
from vjepa_tune.runs.folder import (
    MODEL_DIR,
    MODEL_META_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    is_pretraining_run,
    pretraining_run_note,
    read_config,
)

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------------ training state
def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the resumable state (`weights`, `optimizer`, `scheduler`, `rng`, `train_state`) atomically: a kill
    mid-write leaves the previous state intact."""
    write_atomic(Path(run_dir) / STATE_FILE, lambda aside: torch.save(state, aside))


def state_snapshot(state: Any, memo: dict[int, Any] | None = None) -> Any:
    """A copy of `state` that training can no longer change: every tensor copied to the CPU (the next optimizer step
    updates the optimizer's moments in place), every other value deep-copied. Tensors shared inside `state` stay
    shared, so the copy saves as `state` would."""
    memo = {} if memo is None else memo
    if id(state) in memo:
        return memo[id(state)]
    if isinstance(state, torch.Tensor):
        copied: Any = state.detach().to("cpu", copy=True)
    elif type(state) is dict:
        copied = {key: state_snapshot(value, memo) for key, value in state.items()}
    elif type(state) is list:
        copied = [state_snapshot(value, memo) for value in state]
    elif type(state) is tuple:
        copied = tuple(state_snapshot(value, memo) for value in state)
    else:  # numbers, strings, NumPy's random state, and any container of them
        copied = copy.deepcopy(state)
    memo[id(state)] = copied
    return copied


class StateWriter:
    """Writes the resumable state on a background thread, so that the next epoch trains while it is written.

    `save` takes a snapshot of the state (`state_snapshot`, the only work on the caller's thread) and returns; the
    write itself is `save_state`'s, atomic, so a process killed mid-write resumes from the previous state. At most
    one write is pending: `save` first waits for the previous one. A failed write is raised in the caller's thread
    at the next `save` or at `close`; `close` (or leaving the `with` block) returns only once the last state is on
    disk, so a finished run can remove it and a failed run keeps it.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-writer")
        self._pending: Future[None] | None = None

    def save(self, run_dir: Path, state: dict[str, Any]) -> None:
        self.wait()
        self._pending = self._pool.submit(save_state, run_dir, state_snapshot(state))

    def wait(self) -> None:
        """Return once the pending write (if any) is on disk; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> StateWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error_type is None:
            self.close()
            return
        # The error that stopped the run is the one to report; the last finished epoch's state still lands on disk.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a failed write behind the run's own error is not the news
            pass


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """The state `save_state` wrote (runs of every earlier version wrote the same keys); None without one."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def remove_state(run_dir: Path) -> None:
    """Drop the resumable state of a finished run (its best model and records stay)."""
    folder = Path(run_dir) / STATE_FILE.parent
    if folder.exists():
        shutil.rmtree(folder)


def rng_states() -> dict[str, Any]:
    """Every global random state a resumed run must continue from."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                              "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ------------------------------------------------------------------------------------------------ the best model
def weights_fingerprint(module: torch.nn.Module) -> float:
    """A cheap checksum of every weight, to notice a base model that is not the one a run was trained on."""
    total = 0.0
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            if p.device.type == "meta":
                continue
            total += float(p.detach().float().flatten()[:: max(1, p.numel() // 64)].sum()) * (1 + (i % 7) * 1e-3)
    return total


def frozen_fingerprint(model: torch.nn.Module) -> float:
    """The fingerprint of the weights a strategy keeps frozen: what a reload rebuilds instead of reading."""
    return weights_fingerprint(torch.nn.ParameterList([p for p in model.parameters() if not p.requires_grad]))


def model_meta(cfg: TrainConfig, classes: list[str], frozen: float, train_clip_s: float | None) -> dict[str, Any]:
    """model/model.json: what rebuilds the run's model around its trained weights (`frozen`: the fingerprint of
    the frozen weights, `frozen_fingerprint`), and what prediction needs."""
    return {
        "model": cfg.model,
        "strategy": cfg.strategy,
        "lora": {"rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout},
        "classes": classes,
        "init_seed": cfg.seed,
        "frozen_fingerprint": frozen,
        "crop_size": cfg.data.crop_size,
        "frames_per_clip": cfg.data.frames_per_clip,
        "train_clip_s": train_clip_s,
    }


def trainable_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of every weight that trains, as the state and the best model keep them."""
    return {k: v.detach().cpu().clone() for k, v in trainable_state_dict(model).items()}


def save_model(run_dir: Path, weights: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write the best model: every trained weight (`trainable_weights`) in safetensors plus what is needed to
    rebuild the rest (`model_meta`)."""
    out = Path(run_dir) / MODEL_DIR
    contiguous = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    write_atomic(out / WEIGHTS_FILE, lambda aside: save_file(contiguous, aside))
    write_text_atomic(out / MODEL_META_FILE, json.dumps(meta, indent=2), durable=False)
    return out


def load_model_files(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The best model's trained weights and its model.json."""
    out = Path(run_dir) / MODEL_DIR
    weights, meta = out / WEIGHTS_FILE, out / MODEL_META_FILE
    if is_pretraining_run(run_dir):
        raise BadInput(pretraining_run_note(run_dir))
    if not weights.exists() or not meta.exists():
        raise BadInput(
            f"{run_dir} holds no trained model ({MODEL_DIR / WEIGHTS_FILE} is missing): "
            "is it a vjepa-tune run folder whose training finished at least one epoch?"
        )
    return load_file(str(weights)), json.loads(meta.read_text())


def load_best_weights(run_dir: Path, model: torch.nn.Module) -> torch.nn.Module:
    """The run's model with the best epoch's weights read back into it, in eval mode. The frozen weights never
    changed, so the base model is not built a second time."""
    weights, _ = load_model_files(run_dir)
    load_trainable_state_dict(model, weights)
    return model.eval()


def load_run_model(run_dir: Path, cfg: TrainConfig | None = None, log: Log = lambda _: None
                   ) -> tuple[torch.nn.Module, TrainConfig, list[str]]:
    """Rebuild a run's best model (base model + strategy + every trained weight), with its configuration and classes;
    BadInput for a folder that holds none, or a base model that is not the one the run was trained on."""
    run_dir = Path(run_dir)
    cfg = cfg if cfg is not None else read_config(run_dir)
    weights, meta = load_model_files(run_dir)
    classes = list(meta["classes"])
    strategy: StrategyName = meta["strategy"]
    model = build_model(meta["model"], strategy, cfg.lora, classes, meta["init_seed"], log)
    found, expected = frozen_fingerprint(model), meta.get("frozen_fingerprint")
    if expected is not None and not _close(found, expected):
        raise BadInput(
            f"the base model {meta['model']!r} does not match the one {run_dir} was trained on "
            f"(frozen-weight fingerprint {found:.6g} != {expected:.6g}); was the checkpoint changed?"
        )
    load_trainable_state_dict(model, weights)
    return model.eval(), cfg, classes


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))


# ------------------------------------------------------------------------------------------------ pretraining
ENCODER_PREFIX = "vjepa2.encoder."


def save_encoder_model(folder: Path, model: VJEPA2ForVideoClassification, encoder: torch.nn.Module, *,
                       with_head: bool) -> Path:
    """Write `model` with `encoder`'s weights in place of its own encoder as a Hugging Face folder (replacing
    `folder` all at once): a pretraining run's model/ and best_model/, which `train --model FOLDER` and plain
    transformers load. `with_head`: as `VJEPA2ForVideoClassification` (the source had a pooler and a classifier),
    else as `VJEPA2Model` (encoder and predictor). A video processor config for the model's crop comes with it."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(ENCODER_PREFIX)}
    state.update({ENCODER_PREFIX + k: v for k, v in encoder.state_dict().items()})
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with staged_folder(folder, replace=True) as staging, quiet_transformers():
        if with_head:
            model.save_pretrained(staging, state_dict=state, safe_serialization=True)
        else:
            base = {k.removeprefix("vjepa2."): v for k, v in state.items() if k.startswith("vjepa2.")}
            model.vjepa2.save_pretrained(staging, state_dict=base, safe_serialization=True)
        VJEPA2VideoProcessor(crop_size=model.config.crop_size).save_pretrained(staging)
    return Path(folder)
def load_merged_run_model(run_dir: Path, log: Log = lambda _: None
                          ) -> tuple[VJEPA2ForVideoClassification, TrainConfig, list[str]]:
    """A run's best model as one plain transformers model, LoRA folded into the weights (as `export --merge` writes
    it): its adapted backbone and trained pooler, for work that runs them frozen (`features`)."""
    model, cfg, classes = load_run_model(run_dir, log=log)
    plain = model.merge_and_unload() if isinstance(model, PeftModel) else unwrap(model)
    return plain.eval(), cfg, classes
