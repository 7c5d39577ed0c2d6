"""What a run saves of its model and training: the state it resumes from (random streams included, written on a
background thread while the next epoch trains, atomically), and the best model, rebuilt from its base model and its
trained weights, refusing a base model that is not the one it trained."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import trainable_state_dict
from vjepa_tune.models.build import build_model
from vjepa_tune.runs.checkpoint import (
    StateWriter,
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
SRC = Path(__file__).resolve().parents[2] / "src"


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


def _training_state(seed: int = 0) -> tuple[dict, torch.nn.Module, torch.optim.Optimizer]:
    """A state as the recipe saves it, after one optimizer step of a small model (AdamW has its moments)."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(8, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    model(torch.randn(3, 8)).square().sum().backward()
    optimizer.step()
    scheduler.step()
    state = {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": rng_states(),
             "train_state": {"epoch": 1, "history": [{"epoch": 1, "train_loss": 0.5}]}}
    return state, model, optimizer


def _assert_same(a: object, b: object, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


def test_a_state_written_in_the_background_equals_the_state_saved_when_save_was_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vjepa_tune.runs import checkpoint

    state, model, optimizer = _training_state()
    save_state(tmp_path / "sync", state)
    expected = load_state(tmp_path / "sync")
    next_epoch_done = threading.Event()

    def after_the_next_step(run_dir: Path, saved: dict) -> None:  # the write starts only once training moved on
        assert next_epoch_done.wait(30)
        save_state(run_dir, saved)

    monkeypatch.setattr(checkpoint, "save_state", after_the_next_step)
    with StateWriter() as writer:
        writer.save(tmp_path / "background", state)
        # The next epoch goes on at once: the moments and weights change in place while the write is pending.
        model(torch.randn(3, 8)).sum().backward()
        optimizer.step()
        with torch.no_grad():
            model.weight.add_(1.0)
            state["weights"]["weight"].add_(1.0)
        next_epoch_done.set()
    _assert_same(expected, load_state(tmp_path / "background"))
    changed = optimizer.state_dict()["state"][0]["exp_avg"]
    assert not torch.equal(changed, expected["optimizer"]["state"][0]["exp_avg"]), "the test changed nothing"


def test_at_most_one_state_write_is_pending_and_the_last_one_wins(tmp_path: Path) -> None:
    with StateWriter() as writer:
        for epoch in range(1, 4):
            writer.save(tmp_path, {"train_state": {"epoch": epoch}, "weights": {"w": torch.full((4,), epoch)}})
    saved = load_state(tmp_path)
    assert saved["train_state"] == {"epoch": 3} and torch.equal(saved["weights"]["w"], torch.full((4,), 3))
    assert [p.name for p in (tmp_path / STATE_FILE.parent).iterdir()] == [STATE_FILE.name], "no aside file left"


def test_a_failed_background_write_is_raised_at_the_next_save_and_at_the_end(tmp_path: Path) -> None:
    save_state(tmp_path, {"train_state": {"epoch": 1}})
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the state's folder should be")
    writer = StateWriter()
    writer.save(blocker, {"train_state": {"epoch": 2}})  # returns: the failure happens on the writer's thread
    with pytest.raises(OSError):
        writer.save(tmp_path, {"train_state": {"epoch": 3}})
    writer.save(blocker, {"train_state": {"epoch": 4}})
    with pytest.raises(OSError):
        writer.close()
    assert load_state(tmp_path)["train_state"] == {"epoch": 1}, "the failed writes changed nothing"


def test_a_run_that_fails_still_gets_its_last_state_and_reports_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the run's own error"), StateWriter() as writer:
        writer.save(tmp_path, {"train_state": {"epoch": 2}})
        raise RuntimeError("the run's own error")
    assert load_state(tmp_path)["train_state"] == {"epoch": 2}


_KILLED_MID_WRITE = textwrap.dedent("""
    import sys, threading, torch
    from pathlib import Path
    from vjepa_tune.runs import checkpoint

    run, started = Path(sys.argv[1]), Path(sys.argv[2])
    checkpoint.save_state(run, {"train_state": {"epoch": 1}, "weights": {"w": torch.ones(4)}})

    def stalled(obj, file):  # half a file, then never done: the process is killed in the middle of the write
        with open(file, "wb") as out:
            out.write(b"PK\x03\x04 half a state")
        started.touch()
        threading.Event().wait()

    torch.save = stalled
    writer = checkpoint.StateWriter()
    writer.save(run, {"train_state": {"epoch": 2}, "weights": {"w": torch.zeros(4)}})
    print("save returned", flush=True)
    threading.Event().wait()
""")


def test_a_process_killed_while_its_state_is_written_in_the_background_keeps_the_previous_state(tmp_path: Path
                                                                                                ) -> None:
    run, started = tmp_path / "run", tmp_path / "write-started"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_MID_WRITE, str(run), str(started)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "save returned", "save waits for nothing"
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = load_state(run)
    assert saved["train_state"] == {"epoch": 1} and torch.equal(saved["weights"]["w"], torch.ones(4))
