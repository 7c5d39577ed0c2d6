"""`vjepa-tune pretrain` end to end: the run folder and its records, the model folder (the target encoder, loadable
by plain transformers and by `train`), the probe and the best model, the monitors on degenerate, diverging and
ordinary data, exact resume after a real SIGKILL, two processes as one, and the refusals of bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from vjepa_tune.cli import main
from vjepa_tune.config import PretrainConfig
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.evaluation.statistics import wilson_interval
from vjepa_tune.models.specs import tiny_checkpoint_dir
from vjepa_tune.pretraining.engine import make_optimizer, plan_steps
from vjepa_tune.pretraining.objective import JepaObjective, ema_momentum
from vjepa_tune.pretraining.probe import probe_overlap_warning
from vjepa_tune.runs.folder import read_pretrain_config
from vjepa_tune.synth.encoding import write_video

SRC = Path(__file__).resolve().parents[2] / "src"
QUICK = ["--model", "tiny", "--batch_size", "4", "--log_every", "1", "--report_to", "none"]


def _pretrain(root: Path, out: Path, *extra: str) -> int:
    return main(["pretrain", "--data.root", str(root), "--out", str(out), *QUICK, *extra])


def _only_run(out: Path) -> Path:
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    return run


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _tensorboard(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


# ------------------------------------------------------------------------------------------------ the records
def test_a_pretraining_run_folder_holds_its_records(pretrained_run: Path) -> None:
    cfg = read_pretrain_config(pretrained_run)
    assert cfg.model == "tiny" and cfg.max_steps == 4 and cfg.probe.every == 2
    recorded = yaml.safe_load((pretrained_run / "config.yaml").read_text())
    assert "split" not in recorded["data"] and "enabled" not in recorded["cache"], "no flag, so not recorded"
    assert "split" in recorded["probe"]["data"], "the probe splits its labelled videos"
    splits = json.loads((pretrained_run / "splits.json").read_text())
    assert len(splits["train"]) == 8 and splits["val"] == splits["test"] == []
    assert {"clip0.mp4", "day2/cam1/clip3.mp4", "day2/cam2/clip7.mp4"} <= {v["id"] for v in splits["train"]}

    m = _metrics(pretrained_run)
    assert m["approach"] == "pretrain" and m["format"] == "videos" and m["num_videos"] == 8
    assert m["steps"] == m["total_steps"] == 4 and m["effective_batch"] == 4 and m["epochs"] == 2
    assert m["clips_seen"] == 16, "two epochs of the 8 videos"
    assert [h["step"] for h in m["history"]] == [1, 2, 4], "the first step, every --log_every and the last"
    for entry in m["history"]:
        assert {"loss", "lr", "ema_momentum", "grad_norm", "target_std", "target_rank", "pred_std"} <= entry.keys()
        assert all(np.isfinite(entry[k]) for k in ("loss", "grad_norm", "target_std", "target_rank", "pred_std"))
    assert [p["step"] for p in m["probes"]] == [0, 2, 4], "at the start, every --probe.every and at the end"
    for probe in m["probes"]:
        assert probe["split"] == "random" and probe["num_val"] == 4 and probe["num_test"] == 4
        assert probe["val_ci"] == list(wilson_interval(probe["val_correct"], probe["num_val"]))
        assert probe["test_ci"] == list(wilson_interval(probe["test_correct"], probe["num_test"]))
        assert (pretrained_run / probe["run"] / "metrics.json").is_file()
        assert not (pretrained_run / probe["run"] / "model").exists(), "a probe keeps its scores, not its head"
    assert m["collapse"] == [] and m["stopped"] is None

    for folder in ("model", "best_model"):
        assert {p.name for p in (pretrained_run / folder).iterdir()} == {
            "config.json", "model.safetensors", "video_preprocessor_config.json"}
    assert not (pretrained_run / "checkpoint").exists(), "a finished run drops its resumable state"
    assert not {"features", "encoder"} & {p.name for p in (pretrained_run / "probes").iterdir()}, "scratch is gone"
    report = (pretrained_run / "report.md").read_text()
    assert m["verdict"] in report and "at the start" in m["verdict"] and "after 4 steps" in m["verdict"]
    for plot in ("loss", "collapse", "probe"):
        assert (pretrained_run / "plots" / f"{plot}.png").stat().st_size > 0
        assert f"(plots/{plot}.png)" in report
    log = (pretrained_run / "pretrain.log").read_text()
    assert "step 1/4: loss" in log and "probe after 0 steps: validation accuracy" in log
    assert "  probe: epoch 1/1: train loss" in log and "probe: epoch 1/1" in (
        pretrained_run / "probes" / "step-000002" / "train.log").read_text()
    assert [s for s, _ in _tensorboard(pretrained_run, "pretrain/loss")] == [1, 2, 4]
    assert [s for s, _ in _tensorboard(pretrained_run, "collapse/target_rank")] == [1, 2, 4]
    assert [s for s, _ in _tensorboard(pretrained_run, "probe/val_acc")] == [0, 2, 4]


def test_the_learning_rate_warms_up_then_follows_a_cosine_and_the_ema_momentum_its_schedule(
    footage_root: Path, tmp_path: Path
) -> None:
    assert _pretrain(footage_root, tmp_path, "--max_steps", "6", "--batch_size", "8", "--learning_rate", "1e-3",
                     "--warmup_ratio", "0.34", "--ema.start", "0.99", "--ema.end", "0.999") == 0
    history = _metrics(_only_run(tmp_path))["history"]
    cosine = [0.5e-3 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]  # after 2 warm-up steps, towards 0 at step 6
    assert [h["lr"] for h in history] == pytest.approx([5e-4, 1e-3, *cosine])
    assert [h["ema_momentum"] for h in history] == pytest.approx([ema_momentum(s, 6, 0.99, 0.999) for s in range(6)])


def test_the_model_folder_is_the_target_encoder_and_plain_transformers_loads_it(footage_root: Path,
                                                                                tmp_path: Path) -> None:
    # The target never moves (momentum 1) while the context encoder and predictor train: model/ must hold the
    # source's encoder exactly, with the trained predictor.
    assert _pretrain(footage_root, tmp_path, "--max_steps", "2", "--learning_rate", "1e-3", "--ema.start", "1",
                     "--ema.end", "1") == 0
    model_dir = _only_run(tmp_path) / "model"
    code = f"""
import sys, torch
from transformers import VJEPA2ForVideoClassification, VJEPA2Model
run = VJEPA2ForVideoClassification.from_pretrained({str(model_dir)!r}).eval()
tiny = VJEPA2ForVideoClassification.from_pretrained({str(tiny_checkpoint_dir())!r}).eval()
encoder = VJEPA2Model.from_pretrained({str(model_dir)!r}).eval()
mine, theirs = run.state_dict(), tiny.state_dict()
enc = [k for k in mine if k.startswith("vjepa2.encoder.")]
same = lambda keys: all(torch.equal(mine[k], theirs[k]) for k in keys)
assert enc and same(enc), "the encoder is the target: untouched at momentum 1"
assert same([k for k in mine if k.startswith(("pooler.", "classifier."))]), "pooler and classifier as they came"
assert not same([k for k in mine if k.startswith("vjepa2.predictor.")]), "the predictor trained"
assert all(torch.equal(v, mine["vjepa2." + k]) for k, v in encoder.state_dict().items())
assert not any(name.startswith("vjepa_tune") for name in sys.modules)
print("plain transformers loads it")
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "plain transformers loads it" in done.stdout, done.stderr[-3000:]


def test_train_starts_from_a_pretraining_runs_model_folder(pretrained_run: Path, synth_root: Path, tmp_path: Path,
                                                           store_dir: Path) -> None:
    assert main(["train", "--model", str(pretrained_run / "model"), "--strategy", "head_only", "--data.root",
                 str(synth_root), "--num_epochs", "1", "--out", str(tmp_path), "--cache.dir", str(store_dir)]) == 0
    assert _metrics(_only_run(tmp_path))["model"] == str(pretrained_run / "model")


def test_probe_videos_that_are_pretraining_videos_by_path_or_as_copies_are_warned_about(
        pretrained_run: Path, footage_root: Path, synth_root: Path, tmp_path: Path) -> None:
    cfg = read_pretrain_config(pretrained_run)
    probe_videos = read_dataset(cfg.probe.data, seed=cfg.seed).samples
    assert probe_overlap_warning(probe_videos, pretrained_run) is None, \
        "the fixture's probe videos are not pretraining ones"
    footage = sorted(footage_root.rglob("*.mp4"))
    shutil.copy(footage[1], tmp_path / "renamed.mp4")
    own = sorted(synth_root.rglob("*.mp4"))[:4]
    lines = [f"{footage[0]} wave", "renamed.mp4 sit", *(f"{v} {v.parent.name}" for v in own)]
    (tmp_path / "probe.txt").write_text("\n".join(lines) + "\n")
    probe = dataclasses.replace(cfg.probe, data=dataclasses.replace(
        cfg.probe.data, root=tmp_path, format="list", list_file=tmp_path / "probe.txt"))
    warning = probe_overlap_warning(read_dataset(probe.data, seed=cfg.seed).samples, pretrained_run)
    assert warning == ("warning: 2 of the probe's 6 videos are pretraining videos (1 by path, 1 copy under another "
                       "path); the probe then scores videos the encoder was pretrained on. Keep the two sets apart.")


def test_what_the_run_should_know_of_its_settings_reaches_its_report_and_metrics(
        footage_root: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notes the log gives at the start (probe videos that are pretraining videos, a never-trained predictor
    without a warm-up, a target held still) stay in metrics.json and report.md, beside the verdict they qualify."""
    from vjepa_tune.pretraining import recipe

    overlap = "warning: 2 of the probe's 6 videos are pretraining videos (2 by path); ..."
    monkeypatch.setattr(recipe, "probe_overlap_warning", lambda videos, run_dir: overlap)
    assert _pretrain(footage_root, tmp_path / "runs", "--max_steps", "1", "--ema.start", "1", "--ema.end", "1",
                     "--probe.data.root", str(synth_root), "--probe.num_epochs", "1") == 0
    run = _only_run(tmp_path / "runs")
    notes = _metrics(run)["notes"]
    assert overlap in notes
    assert any(n.startswith("note: the predictor is new or was never trained, and --predictor.warmup_steps is 0")
               for n in notes), "tiny's predictor was never trained"
    assert any(n.startswith("note: --ema.start 1 and --ema.end 1 hold the target encoder still") for n in notes)
    report = (run / "report.md").read_text()
    assert all(f"- {note}\n" in report for note in notes)


def test_a_long_recording_sampled_uniformly_is_warned_about_with_what_to_do() -> None:
    from vjepa_tune.config import DataConfig
    from vjepa_tune.data.video import VideoInfo
    from vjepa_tune.pretraining.setup import long_video_warning

    def info(seconds: float) -> VideoInfo:
        n = int(seconds * 25)
        return VideoInfo(Path("v.mp4"), n, 25.0, seconds, 64, 64, tuple(i / 25 for i in range(n)), None, (0,))

    infos = {"clip.mp4": info(2.0), "cam1/hour.mp4": info(3600.0), "cam2/minute.mp4": info(60.0)}
    warning = long_video_warning(infos, DataConfig(frames_per_clip=16))
    assert warning is not None and warning.startswith(
        "warning: 2 videos of 3 last over 16 s (the longest 3600 s): with --data.sampling uniform, a clip's 16 "
        "frames spread over the whole video, more than 1 s apart")
    assert "give --data.sampling random_window" in warning
    assert long_video_warning({"clip.mp4": info(15.0)}, DataConfig(frames_per_clip=16)) is None
    assert long_video_warning(infos, DataConfig(frames_per_clip=16, sampling="random_window")) is None


def test_a_monitors_clips_per_second_leaves_out_the_probes_and_checkpoints_before_it(
        footage_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint (or probe) between two monitors is not the steps' time: a slow one must not show as a fall in
    throughput."""
    from vjepa_tune.pretraining import recipe

    real = recipe._checkpoint

    def slow_checkpoint(*args, **kwargs):
        time.sleep(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(recipe, "_checkpoint", slow_checkpoint)
    assert _pretrain(footage_root, tmp_path / "runs", "--max_steps", "4", "--checkpoint_every", "2") == 0
    history = _metrics(_only_run(tmp_path / "runs"))["history"]
    after = next(e for e in history if e["step"] == 3)
    assert after["clips_per_s"] > 4 / 3, "4 clips in one step, not in the step and a 3 s checkpoint"


def test_the_best_model_is_the_probe_with_the_best_validation_accuracy(pretrained_run: Path) -> None:
    m = _metrics(pretrained_run)
    vals = [p["val_acc"] for p in m["probes"]]
    best = m["probes"][vals.index(max(vals))]["step"]
    assert m["best_probe_step"] == best and m["best_model_dir"] == "best_model"
    kept = load_file(str(pretrained_run / "best_model" / "model.safetensors"))
    last = load_file(str(pretrained_run / "model" / "model.safetensors"))
    tiny = load_file(str(tiny_checkpoint_dir() / "model.safetensors"))
    encoder = [k for k in kept if k.startswith("vjepa2.encoder.")]
    if best == 0:  # the encoder the run started from
        assert all(torch.equal(kept[k], tiny[k].float()) for k in encoder)
    elif best == m["steps"]:
        assert all(torch.equal(kept[k], last[k]) for k in encoder)
    else:
        assert not all(torch.equal(kept[k], last[k]) for k in encoder)


# ------------------------------------------------------------------------------------------------ training
def test_the_plan_covers_num_epochs_unless_max_steps_ends_it_sooner() -> None:
    cfg = PretrainConfig(batch_size=2, accumulation_steps=2, num_epochs=3)
    plan = plan_steps(cfg, num_videos=10, processes=1)
    assert (plan.step_size, plan.steps_per_epoch, plan.total_steps) == (4, 3, 9)
    epochs = [plan.epoch_steps(e) for e in plan.epochs_from(0)]
    assert [[s for s, _ in steps] for steps in epochs] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert all(sorted(i for _, idx in steps for i in idx) == list(range(10)) for steps in epochs)
    assert [len(idx) for _, idx in epochs[0]] == [4, 4, 2]
    cfg.max_steps = 4
    short = plan_steps(cfg, num_videos=10, processes=2)
    assert (short.step_size, short.total_steps, list(short.epochs_from(0))) == (8, 4, [0, 1])
    assert [s for s, _ in short.epoch_steps(1)] == [2, 3] and short.epoch_steps(1, from_step=3)[0][0] == 3


def test_one_loader_serves_every_epoch_each_clip_in_its_epochs_view(
        footage_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loader per epoch made every epoch start with its workers building whole batches anew (a third of the
    clips a second on 64 videos in steps of 16; BENCHMARKS.md): one loader takes the run's clips, each keyed by its
    epoch, so the augmentations are the ones a loader per epoch gave."""
    from vjepa_tune.pretraining import engine

    loaders: list[list[list[tuple[int, int]]]] = []
    real = engine.batches

    def counted(dataset, planned, num_workers, *args, **kwargs):
        loaders.append(planned)
        return real(dataset, planned, num_workers, *args, **kwargs)

    monkeypatch.setattr(engine, "batches", counted)
    assert _pretrain(footage_root, tmp_path / "runs", "--num_epochs", "3") == 0  # 8 videos: 2 steps an epoch
    assert len(loaders) == 1
    plan = engine.StepPlan(num_videos=8, step_size=4, seed=42, total_steps=6)
    assert loaders[0] == [[(epoch, i) for i in indices] for epoch, _, indices in plan.steps_from(0)]
    assert [epoch for epoch, _, _ in plan.steps_from(0)] == [0, 0, 1, 1, 2, 2]


def test_clips_seen_counts_an_epochs_short_last_step(footage_root: Path, tmp_path: Path) -> None:
    """8 videos in steps of 3: each epoch's last step takes the 2 left, so 4 steps see 3 + 3 + 2 + 3 clips."""
    assert _pretrain(footage_root, tmp_path / "runs", "--batch_size", "3", "--max_steps", "4") == 0
    m = _metrics(_only_run(tmp_path / "runs"))
    assert (m["steps"], m["effective_batch"], m["clips_seen"]) == (4, 3, 11)


def test_a_max_steps_the_epochs_end_before_is_said(footage_root: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _pretrain(footage_root, tmp_path / "runs", "--num_epochs", "1", "--max_steps", "1000") == 0
    printed = capsys.readouterr().out
    steps = _metrics(_only_run(tmp_path / "runs"))["steps"]
    assert steps < 1000 and "--num_epochs 1 ends the run before --max_steps 1000" in printed


def test_the_training_time_includes_the_waits_for_clips(footage_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """metrics.json's train_time_s (and the closing "pretrained N steps in T s") is the time the steps took, waits
    for decoded clips included, as `train`'s is: on a GPU the clips are often what a step waits for."""
    from vjepa_tune.pretraining import recipe

    real = recipe.step_batches

    def slow(*args, **kwargs):
        for local in real(*args, **kwargs):
            time.sleep(0.3)
            yield local

    monkeypatch.setattr(recipe, "step_batches", slow)
    assert _pretrain(footage_root, tmp_path / "runs", "--max_steps", "3") == 0
    assert _metrics(_only_run(tmp_path / "runs"))["train_time_s"] >= 0.9


def test_weight_decay_spares_biases_and_norms_and_the_target_is_not_optimised() -> None:
    from vjepa_tune.models.loading import load_model

    objective = JepaObjective(load_model("tiny", num_labels=4, id2label=None, log=lambda _: None).vjepa2)
    decayed, plain = make_optimizer(objective, PretrainConfig(weight_decay=0.04)).param_groups
    assert decayed["weight_decay"] == 0.04 and plain["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    optimised = {id(p) for group in (decayed, plain) for p in group["params"]}
    assert optimised == {id(p) for p in objective.trainable_parameters()}
    assert not optimised & {id(p) for p in objective.target_encoder.parameters()}


def test_accumulation_and_gradient_checkpointing_cut_a_step_without_changing_it(footage_root: Path,
                                                                               tmp_path: Path) -> None:
    common = ["--max_steps", "3", "--learning_rate", "1e-3", "--ema.start", "0.9", "--ema.end", "0.9"]
    assert _pretrain(footage_root, tmp_path / "whole", *common, "--batch_size", "4") == 0
    assert _pretrain(footage_root, tmp_path / "cut", *common, "--batch_size", "1", "--accumulation_steps", "4",
                     "--gradient_checkpointing") == 0
    a, b = (_metrics(_only_run(tmp_path / name)) for name in ("whole", "cut"))
    assert a["effective_batch"] == b["effective_batch"] == 4
    for x, y in zip(a["history"], b["history"], strict=True):
        for key in ("loss", "grad_norm", "target_std", "target_rank", "pred_std"):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), key


def test_the_predictors_warm_up_holds_the_encoder_and_its_target_then_lets_them_learn(footage_root: Path,
                                                                                     tmp_path: Path) -> None:
    # A fast EMA: the target (whose features the monitors measure on fixed clips) follows the encoder within a step.
    common = ["--max_steps", "4", "--learning_rate", "1e-3", "--ema.start", "0.5", "--ema.end", "0.5"]
    assert _pretrain(footage_root, tmp_path / "warm", *common, "--predictor.warmup_steps", "2") == 0
    assert _pretrain(footage_root, tmp_path / "plain", *common) == 0
    warm, plain = (_metrics(_only_run(tmp_path / name))["history"] for name in ("warm", "plain"))
    assert [e["step"] for e in warm] == [1, 2, 3, 4]
    target = [(e["target_std"], e["target_rank"]) for e in warm]
    assert target[0] == target[1], "steps 1-2 train the predictor only: the encoder and its target stay as loaded"
    assert warm[0]["pred_std"] != warm[1]["pred_std"], "while the predictor learns"
    assert target[2] != target[1] and target[3] != target[2], "from step 3 the encoder learns"
    assert (plain[0]["target_std"], plain[0]["target_rank"]) != (plain[1]["target_std"], plain[1]["target_rank"])
    said = "predictor warm-up: optimizer steps 1-2 train the predictor only; the encoder learns from step 3"
    run = _only_run(tmp_path / "warm")
    assert said in (run / "pretrain.log").read_text() and f"- {said}" in (run / "report.md").read_text()
    assert said in _metrics(run)["notes"]


# ------------------------------------------------------------------------------------------------ the monitors
def _constant_videos(root: Path, count: int = 4, frames: int = 32) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        write_video(root / f"blank{k}.mp4", np.full((frames, 64, 64, 3), 128, dtype=np.uint8), fps=25)
    return root


def test_degenerate_videos_trip_collapse_at_the_first_monitor_and_stop_on_collapse_ends_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _constant_videos(tmp_path / "blank")
    out = tmp_path / "runs"
    assert _pretrain(root, out, "--max_steps", "6", "--log_every", "3", "--stop_on_collapse") == 0
    printed = capsys.readouterr().out
    first = next(line for line in printed.splitlines() if line.startswith("collapse:"))
    assert "nearly identical across tokens and clips from the start (step 1" in first and "usually helps" in first
    run = _only_run(out)
    m = _metrics(run)
    assert m["steps"] == 1 and m["stopped"].startswith("--stop_on_collapse at step 1: collapse:")
    assert m["collapse"][0] == {"step": 1, "message": first}
    assert (run / "model" / "model.safetensors").is_file() and first in (run / "report.md").read_text()
    assert not (run / "tensorboard").exists(), "--report_to none"


def test_a_diverging_run_stops_on_its_non_finite_values_and_keeps_its_last_good_checkpoint(
    footage_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _pretrain(footage_root, tmp_path, "--max_steps", "12", "--learning_rate", "100", "--warmup_ratio", "0.9",
                     "--scheduler", "constant", "--max_grad_norm", "null", "--checkpoint_every", "1")
    assert code == 1
    error = capsys.readouterr().err
    assert "NonFiniteLoss" in error and "nan" in error and "(the weights were not updated with it)" in error
    run = _only_run(tmp_path)
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=False)
    kept = state["state"]["step"]
    assert f"the last good checkpoint (after step {kept}) is kept in {run / 'checkpoint' / 'state.pt'}" in error
    assert all(torch.isfinite(v).all() for v in state["objective"].values())
    assert not (run / "metrics.json").exists()


def test_the_default_run_on_synth_videos_stays_quiet(synth_root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--model", "tiny", "--data.root", str(synth_root), "--out", str(tmp_path),
                 "--max_steps", "12", "--log_every", "3", "--report_to", "none"]) == 0
    assert "collapse:" not in capsys.readouterr().out
    m = _metrics(_only_run(tmp_path))
    assert m["collapse"] == [] and m["format"] == "videos", "a class-folder layout is read as videos, unlabelled"
    assert len(m["history"]) == 5 and m["history"][-1]["loss"] < m["history"][0]["loss"]


# ------------------------------------------------------------------------------------------------ resume, processes
def _spawn(args: list[str], processes: int = 1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    return subprocess.Popen([*launcher, "-m", "vjepa_tune", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_sigkill_then_resume_equals_an_uninterrupted_pretraining_run_and_continues_its_trackers_runs(
        footage_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trackers_read) -> None:
    """The killed run reports to MLflow and W&B; resumed, it goes on in the same MLflow run and W&B run id."""
    trackers_read.isolate(monkeypatch, tmp_path / "home")  # the spawned runs inherit the environment
    common = ["pretrain", "--model", "tiny", "--data.root", str(footage_root), "--max_steps", "10",
              "--batch_size", "2", "--log_every", "1", "--checkpoint_every", "3", "--learning_rate", "1e-3",
              "--ema.start", "0.9", "--ema.end", "0.99"]
    tracked = ["--report_to", "tensorboard,mlflow,wandb"]
    whole_out, killed_out = tmp_path / "whole", tmp_path / "killed"
    whole = _spawn([*common, "--out", str(whole_out), "--report_to", "none"])
    victim = _spawn([*common, "--out", str(killed_out), *tracked])
    deadline = time.monotonic() + 300
    while not list(killed_out.glob("*/checkpoint/state.pt")):
        assert victim.poll() is None, victim.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # mid-run, a step or two after its first checkpoint
    victim.wait()
    run = _only_run(killed_out)
    assert not (run / "metrics.json").exists()
    kept = torch.load(run / "checkpoint" / "state.pt", weights_only=False)["state"]["step"]
    assert 3 <= kept < 10
    ids = json.loads((run / "trackers.json").read_text())
    assert set(ids) == {"mlflow", "wandb"}

    resumed = _finish(_spawn([*common, "--out", str(killed_out), "--resume", "auto", *tracked]))
    assert f"resumed after step {kept}" in resumed
    _finish(whole)
    a, b = _metrics(_only_run(whole_out)), _metrics(run)
    assert a["history"] and [h["step"] for h in b["history"]] == list(range(1, 11))
    for x, y in zip(a["history"], b["history"], strict=True):
        assert {k: v for k, v in x.items() if k != "clips_per_s"} == {k: v for k, v in y.items() if k != "clips_per_s"}

    assert json.loads((run / "trackers.json").read_text()) == ids
    client = trackers_read.mlflow(killed_out)
    mlflow_run = client.get_run(ids["mlflow"])
    assert len(client.search_runs([mlflow_run.info.experiment_id])) == 1, "no second MLflow run"
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.metrics["steps"] == 10
    losses = {m.step: m.value for m in client.get_metric_history(ids["mlflow"], "pretrain/loss")}
    assert losses == {h["step"]: pytest.approx(h["loss"]) for h in b["history"]}, "both attempts' steps, one run"
    *_, last = trackers_read.wandb_runs(run)
    assert last.run_id == ids["wandb"] and last.exit_code == 0 and last.summary["steps"] == 10
    assert load_file(str(run / "model" / "model.safetensors")).keys() == load_file(
        str(_only_run(whole_out) / "model" / "model.safetensors")).keys()
    for name, tensor in load_file(str(run / "model" / "model.safetensors")).items():
        assert torch.equal(tensor, load_file(str(_only_run(whole_out) / "model" / "model.safetensors"))[name])
    steps = [s for s, _ in _tensorboard(run, "pretrain/loss")]
    assert steps == list(range(1, 11)), "the killed attempt's steps after the checkpoint are dropped"
    log = (run / "pretrain.log").read_text()
    headers = [line for line in log.splitlines() if line.startswith("# ") and "vjepa-tune pretrain" in line]
    assert len(headers) == 2 and "--resume auto" in headers[1] and f"resumed after step {kept}" in log


def test_two_processes_pretrain_as_one_with_the_same_effective_batch(footage_root: Path, tmp_path: Path) -> None:
    # Step 1 is the predictor's warm-up: processes then sum the predictor's gradients alone.
    common = ["pretrain", "--model", "tiny", "--data.root", str(footage_root), "--max_steps", "3", "--log_every",
              "1", "--accumulation_steps", "2", "--learning_rate", "1e-3", "--ema.start", "0.9", "--ema.end", "0.9",
              "--predictor.warmup_steps", "1", "--report_to", "none"]
    one = _spawn([*common, "--batch_size", "2", "--out", str(tmp_path / "one")])
    two_log = _finish(_spawn([*common, "--batch_size", "1", "--out", str(tmp_path / "two")], processes=2))
    _finish(one)
    assert "3 optimizer steps of 1 x 2 x 2 processes = 4 clips" in two_log
    assert len(list((tmp_path / "two").iterdir())) == 1, "one run folder, made by the main process"
    a, b = _metrics(_only_run(tmp_path / "one")), _metrics(_only_run(tmp_path / "two"))
    assert a["effective_batch"] == b["effective_batch"] == 4
    for x, y in zip(a["history"], b["history"], strict=True):
        assert (y["lr"], y["ema_momentum"]) == (x["lr"], x["ema_momentum"])
        for key in ("loss", "grad_norm", "target_std", "target_rank", "pred_std"):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), key


# ------------------------------------------------------------------------------------------------ bad input
def _mixed_root(footage_root: Path, tmp_path: Path) -> Path:
    """Three good videos, one that is no video at all and one shorter than a clip."""
    root = tmp_path / "mixed"
    root.mkdir()
    for video in sorted(footage_root.rglob("*.mp4"))[:3]:
        (root / video.name).write_bytes(video.read_bytes())
    (root / "broken.mp4").write_bytes(b"not a video at all")
    _constant_videos(root / "short", count=1, frames=8)
    return root


def test_unreadable_and_too_short_videos_are_reported_and_skipped(footage_root: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = _mixed_root(footage_root, tmp_path)
    assert _pretrain(root, tmp_path / "runs", "--max_steps", "1") == 0
    printed = capsys.readouterr().out
    assert "skipping unreadable video" in printed and "broken.mp4" in printed
    assert "short/blank0.mp4: shorter than a clip: 8 frames, a clip of --data.frames_per_clip 16" in printed
    m = _metrics(_only_run(tmp_path / "runs"))
    assert m["num_videos"] == 3 and m["skipped_videos"] == 2
    assert {s["id"] for s in m["skipped"]} == {"broken.mp4", "short/blank0.mp4"}


def test_a_resumed_run_still_reports_the_videos_it_left_out_when_it_started(
        footage_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vjepa_tune.pretraining import recipe

    root = _mixed_root(footage_root, tmp_path)

    def killed(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # stopped while writing its records, after the last checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(recipe, "write_pretrain_metrics", killed)
        assert _pretrain(root, tmp_path / "runs", "--max_steps", "2", "--checkpoint_every", "1") == 130
    run = _only_run(tmp_path / "runs")
    # The run reads its videos back from splits.json, which keeps the two left out, with their reasons.
    left_out = json.loads((run / "splits.json").read_text())["left_out"]
    assert {e["id"]: e["reason"][:20] for e in left_out} == {"broken.mp4": "not a readable video",
                                                              "short/blank0.mp4": "shorter than a clip:"}
    assert _pretrain(root, tmp_path / "runs", "--max_steps", "2", "--resume", "auto") == 0
    m = _metrics(run)
    assert m["num_videos"] == 3 and m["skipped_videos"] == 2
    assert {s["id"] for s in m["skipped"]} == {"broken.mp4", "short/blank0.mp4"}


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        ("broken", [], "no video in {root} can be pretrained on: 2 videos listed, 2 unreadable"),
        ("short", [], "1 shorter than a clip of 16 frames"),
        ("none", [], "--data.root {root} does not exist"),
        ("good", ["--masks.long_range.spatial_scale", "1,1"], "--masks.long_range.spatial_scale 1 gives blocks that"),
        ("good", ["--masks.short_range.max_temporal_keep", "0"], "--masks.short_range.max_temporal_keep must be a"),
        ("good", ["--predictor.warmup_steps", "-1"], "--predictor.warmup_steps must be a whole number >= 0"),
        ("good", ["--predictor.warmup_steps", "1"], "--predictor.warmup_steps 1 is not below --max_steps 1, so"),
        ("good", ["--predictor.warmup_steps", "9", "--max_steps", "10", "--num_epochs", "1"],
         "--predictor.warmup_steps 9 is not below the run's 2 optimizer steps"),
        ("good", ["--probe.every", "10"], "--probe.every needs the probe's labelled videos"),
        ("good", ["--probe.data.root", "/nonexistent/probe"], "--probe.data.root /nonexistent/probe does not exist"),
        ("good", ["--probe.data.root", "{root}", "--probe.data.split_ratios", "0.5,0.5,0.5"],
         "--probe.data.split_ratios must be three non-negative fractions"),
        ("good", ["--probe.strategy", "lora"], "--probe.strategy 'lora' is not one of head_only, pooler_and_head"),
        ("good", ["--predictor.width", "64"], "--predictor.width applies only to a new predictor"),
        ("good", ["--report_to", "tensorboard,nonsense"], "unknown tracker 'nonsense'"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_leaves_nothing(make: str, extra: list[str], message: str,
                                                             footage_root: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = footage_root if make == "good" else tmp_path / "videos"
    if make == "broken":
        root.mkdir()
        for name in ("a.mp4", "b.mp4"):
            (root / name).write_bytes(b"garbage")
    elif make == "short":
        _constant_videos(root, count=1, frames=8)
    out = tmp_path / "out"
    assert _pretrain(root, out, "--max_steps", "1", *(flag.format(root=root) for flag in extra)) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after any progress bar of the model's loading
    assert error.startswith("vjepa-tune pretrain: error: ") and message.format(root=root) in error, error
    assert "Traceback" not in error and not out.exists(), "a failed command leaves no folder"


def test_pretrain_will_not_resume_a_training_run(trained_run: Callable[[str], Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = trained_run("head_only")
    assert main(["pretrain", "--resume", str(run)]) == 2
    assert "is a `vjepa-tune train` run; `vjepa-tune pretrain` cannot continue it" in capsys.readouterr().err


def test_report_to_mlflow_and_wandb_gets_the_configuration_every_monitor_and_the_final_metrics(
        footage_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trackers_read) -> None:
    trackers_read.isolate(monkeypatch, tmp_path / "home")
    out = tmp_path / "runs"
    assert main(["pretrain", "--data.root", str(footage_root), "--out", str(out), "--model", "tiny",
                 "--batch_size", "4", "--max_steps", "2", "--log_every", "1", "--run_name", "adapted",
                 "--report_to", "tensorboard,mlflow,wandb"]) == 0
    run_dir = out / "adapted"
    metrics = _metrics(run_dir)
    client = trackers_read.mlflow(out)
    (run,) = client.search_runs([client.get_experiment_by_name("vjepa-tune").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "adapted"
    assert run.data.params["model"] == "tiny" and run.data.params["ema.start"] == "0.99925"
    losses = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "pretrain/loss")]
    assert losses == [(h["step"], pytest.approx(h["loss"])) for h in metrics["history"]] and len(losses) == 2
    assert {m.step for m in client.get_metric_history(run.info.run_id, "collapse/target_rank")} == {1, 2}
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"report.md"}

    (wandb_run,) = trackers_read.wandb_runs(run_dir)
    assert wandb_run.exit_code == 0 and wandb_run.config["model"] == "tiny"
    assert [row["_step"] for row in wandb_run.history if "pretrain/loss" in row] == [1, 2]
    assert wandb_run.summary["steps"] == metrics["steps"] == 2
