"""What a run saves of its model and training: the state it resumes from (random streams included), and the best
model, rebuilt from its base model and its trained weights, refusing a base model that is not the one it trained."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import trainable_state_dict
from vjepa_tune.models.build import build_model
from vjepa_tune.runs.checkpoint import (
    frozen_fingerprint,
    load_run_model,
    load_state,
    model_meta,
    remove_state,
    rng_states,
    save_model,
    save_state,
    set_rng_states,
    trainable_weights,
)
from vjepa_tune.runs.folder import STATE_FILE, write_config

CLASSES = ["a", "b", "c"]


def test_the_state_comes_back_with_every_random_stream_where_it_was(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    save_state(tmp_path, {"train_state": {"epoch": 2}, "rng": rng_states()})
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    saved = load_state(tmp_path)
    assert saved["train_state"] == {"epoch": 2}
    set_rng_states(saved["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
    remove_state(tmp_path)
    assert not (tmp_path / STATE_FILE.parent).exists() and load_state(tmp_path) is None


def _saved_run(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    cfg = TrainConfig(model="random:tiny", strategy="lora", seed=5, data=DataConfig(root=tmp_path, crop_size=64))
    model = build_model(cfg.model, cfg.strategy, cfg.lora, CLASSES, cfg.seed)
    frozen = frozen_fingerprint(model)
    with torch.no_grad():  # "training": every trained weight moves
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5)
    run_dir = tmp_path / "run"
    write_config(run_dir, cfg)
    save_model(run_dir, trainable_weights(model), model_meta(cfg, CLASSES, frozen, train_clip_s=1.28))
    return run_dir, model


def test_a_run_model_is_rebuilt_with_its_trained_weights_on_the_base_it_was_trained_on(tmp_path: Path) -> None:
    run_dir, trained = _saved_run(tmp_path)
    loaded, cfg, classes = load_run_model(run_dir)
    assert classes == CLASSES and cfg.strategy == "lora" and not loaded.training
    original, again = trained.state_dict(), loaded.state_dict()
    assert original.keys() == again.keys() and all(torch.equal(original[k], again[k]) for k in original)
    assert trainable_state_dict(loaded).keys() == trainable_state_dict(trained).keys()
    meta = json.loads((run_dir / "model" / "model.json").read_text())
    assert (meta["model"], meta["strategy"], meta["init_seed"], meta["train_clip_s"]) == ("random:tiny", "lora", 5,
                                                                                          1.28)


def test_a_base_model_that_is_not_the_one_trained_on_is_refused(tmp_path: Path) -> None:
    run_dir, _ = _saved_run(tmp_path)
    path = run_dir / "model" / "model.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "frozen_fingerprint": meta["frozen_fingerprint"] + 1.0}))
    with pytest.raises(BadInput, match="does not match the one .* was trained on"):
        load_run_model(run_dir)


def test_a_folder_without_a_trained_model_says_so(tmp_path: Path) -> None:
    write_config(tmp_path / "run", TrainConfig())
    with pytest.raises(BadInput, match="holds no trained model"):
        load_run_model(tmp_path / "run")
    with pytest.raises(BadInput, match="does not exist"):
        load_run_model(tmp_path / "nowhere")
