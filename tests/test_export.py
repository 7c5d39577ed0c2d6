"""`vjepa-tune export`: merged models plain transformers loads, peft adapters, the model card, refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.cli import main
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.transforms import ClipTransform
from vjepa_tune.data.video import probe_video, sample_frame_indices

CLASSES = ["other", "sitting_down", "standing_up", "waving"]
RunFactory = Callable[[str], Path]
"""The `trained_run` session fixture: strategy -> a finished one-epoch run folder."""

# Runs in a fresh interpreter that never imports vjepa_tune: what a user of the exported folder has.
_LOAD_WITH_TRANSFORMERS = """
import json, sys
import numpy as np, torch
from transformers import AutoVideoProcessor, VJEPA2ForVideoClassification

pixels = torch.from_numpy(np.load(sys.argv[1]))
frames = torch.from_numpy(np.load(sys.argv[2]))
found = {}
for folder in sys.argv[3:]:
    model = VJEPA2ForVideoClassification.from_pretrained(folder).eval()
    processor = AutoVideoProcessor.from_pretrained(folder)
    inputs = processor(frames.permute(0, 3, 1, 2), return_tensors="pt")
    with torch.no_grad():
        direct = model(pixel_values_videos=pixels).logits[0].tolist()
        processed = model(**inputs).logits[0].tolist()
    found[folder] = {"direct": direct, "processed": processed, "id2label": model.config.id2label,
                     "processor": type(processor).__name__}
found["vjepa_tune_imported"] = any(name.split(".")[0] == "vjepa_tune" for name in sys.modules)
print(json.dumps(found))
"""


def _export(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["export", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _clip(synth_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw frames (T, H, W, 3) of one test video, sampled as the run samples them, and the run's input."""
    video = sorted((synth_root / "waving").glob("*.mp4"))[0]
    info = probe_video(video)
    frames = read_frames(video, sample_frame_indices(info, 16), info)
    return frames, ClipTransform(64, train=False)(frames)[None]


def _logits(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values_videos=pixels).logits[0]


def test_merged_exports_load_in_plain_transformers_with_the_runs_logits(
    trained_run: RunFactory, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vjepa_tune import load_run

    exports = {
        "lora": (trained_run("lora"), ["--merge"]),
        "pooler_head_and_lora": (trained_run("pooler_head_and_lora"), []),  # merged only, whatever is asked
        "head_only": (trained_run("head_only"), []),
    }
    frames, pixels = _clip(synth_root)
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    np.save(tmp_path / "frames.npy", frames.numpy())
    expected = {}
    for name, (run_dir, flags) in exports.items():
        code, stdout, stderr = _export(capsys, str(run_dir), str(tmp_path / name), *flags)
        assert code == 0 and "Hugging Face model" in stdout
        assert "Writing model shards" not in stderr, "transformers' progress bar for one small shard stays quiet"
        files = {p.name for p in (tmp_path / name).iterdir()}
        assert files == {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"}
        expected[name] = load_run(run_dir).logits(pixels)[0]
        if name == "pooler_head_and_lora":
            assert "merged only" in stderr
            assert "merged only" in (tmp_path / name / "README.md").read_text()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    folders = [str(tmp_path / name) for name in exports]
    inputs = [str(tmp_path / "pixels.npy"), str(tmp_path / "frames.npy")]
    command = [sys.executable, "-c", _LOAD_WITH_TRANSFORMERS, *inputs, *folders]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.pop("vjepa_tune_imported") is False
    for name in exports:
        result = found[str(tmp_path / name)]
        assert result["id2label"] == {str(i): c for i, c in enumerate(CLASSES)}
        assert result["processor"] == "VJEPA2VideoProcessor"
        assert torch.allclose(torch.tensor(result["direct"]), expected[name], atol=1e-5), name
        # transformers' own preprocessing (resize 73, centre crop 64) matches the run's eval transform.
        assert torch.allclose(torch.tensor(result["processed"]), expected[name], atol=1e-3), name


def test_a_merged_export_is_a_model_vjepa_tune_can_train_from(
    trained_run: RunFactory, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vjepa_tune import load_run
    from vjepa_tune.models.loading import load_model

    run_dir = trained_run("lora")
    assert _export(capsys, str(run_dir), str(tmp_path / "m"), "--merge")[0] == 0
    said: list[str] = []
    model = load_model(str(tmp_path / "m"), num_labels=4, id2label=dict(enumerate(CLASSES)), log=said.append)
    assert said == [], "same labels: the exported head is kept, nothing re-initialised"
    _, pixels = _clip(synth_root)
    assert torch.allclose(_logits(model, pixels), load_run(run_dir).logits(pixels)[0], atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # peft on transformers 5
def test_an_adapter_export_restores_the_runs_logits_on_the_base_model(
    trained_run: RunFactory, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from peft import PeftModel

    from vjepa_tune import load_run
    from vjepa_tune.export import rebuild_base_model

    run_dir = trained_run("lora")
    out = tmp_path / "adapter"
    code, stdout, _ = _export(capsys, str(run_dir), str(out))
    assert code == 0 and "peft adapter" in stdout
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["modules_to_save"] == ["classifier"]
    assert adapter_config["base_model_name_or_path"] == "random:tiny"
    base_config = json.loads((out / "base_model" / "config.json").read_text())
    assert base_config["model_type"] == "vjepa2" and base_config["id2label"]["3"] == "waving"

    _, pixels = _clip(synth_root)
    run_logits = load_run(run_dir).logits(pixels)[0]
    base = rebuild_base_model(run_dir)
    base_logits = _logits(base, pixels)
    restored = PeftModel.from_pretrained(base, str(out)).eval()
    assert torch.allclose(_logits(restored, pixels), run_logits, atol=1e-6)
    assert not torch.allclose(base_logits, run_logits, atol=1e-6), "the adapter and head must change the output"
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "rebuild_base_model" in card and "random:tiny" in card


def test_the_model_card_names_strategy_data_metrics_and_commands(
    trained_run: RunFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    run_dir = trained_run("lora")
    assert _export(capsys, str(run_dir), str(tmp_path / "m"), "--merge")[0] == 0
    card = (tmp_path / "m" / "README.md").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "`lora` strategy" in card and "LoRA rank 16" in card
    assert f"{100 * metrics['test_acc']:.1f}%" in card and f"{metrics['trainable_params']:,}" in card
    assert f"{metrics['num_train']} train / {metrics['num_val']} val / {metrics['num_test']} test" in card
    assert ", ".join(CLASSES) in card
    assert f"vjepa-tune train --config {run_dir.resolve() / 'config.yaml'}" in card
    assert f"vjepa-tune export {run_dir} {tmp_path / 'm'} --merge" in card
    assert "VJEPA2ForVideoClassification.from_pretrained" in card


def test_existing_folders_and_foreign_runs_are_refused_with_exit_code_2(
    trained_run: RunFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    run_dir = trained_run("head_only")
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("someone's file")
    code, _, stderr = _export(capsys, str(run_dir), str(out))
    assert code == 2 and "already exists" in stderr and "--overwrite" in stderr
    assert (out / "keep.txt").exists(), "a refused export touches nothing"

    assert _export(capsys, str(run_dir), str(out), "--overwrite")[0] == 0
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left behind"

    foreign = tmp_path / "not-a-run"
    foreign.mkdir()
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "x")], "does not exist"),
        ([str(foreign), str(tmp_path / "y")], "holds no trained model"),
        ([str(run_dir), str(run_dir), "--overwrite"], "holds the run folder"),
        ([str(run_dir), str(run_dir.parent), "--overwrite"], "holds the run folder"),
    ]
    for argv, message in cases:
        code, _, stderr = _export(capsys, *argv)
        assert code == 2 and message in stderr, (argv, stderr)
    assert (run_dir / "model").is_dir()


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in [folder, *sorted(folder.rglob("*"))]}


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "adapter"])
def test_an_export_is_readable_by_other_users_under_umask_022(
    trained_run: RunFactory, tmp_path: Path, capsys: pytest.CaptureFixture, merge: bool
) -> None:
    out = tmp_path / "served" / "model"
    previous = os.umask(0o022)
    try:
        code, _, _ = _export(capsys, str(trained_run("lora")), str(out), *(["--merge"] if merge else []))
    finally:
        os.umask(previous)
    assert code == 0
    modes = _modes(out)
    weights = "model.safetensors" if merge else "adapter_model.safetensors"
    assert modes[weights] == 0o644 and modes["."] == 0o755
    assert modes == {name: 0o755 if (out / name).is_dir() else 0o644 for name in modes}


def _card_examples(card: str, out: Path, video: Path) -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", card, re.S | re.M)
    return [b.replace('"OUT_DIR', f'"{out}').replace('"video.mp4"', f'"{video}"') for b in blocks]


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # peft on transformers 5
@pytest.mark.parametrize(
    ("run", "flags", "examples"),
    [("tiny", [], 2), ("random:tiny", [], 1), ("tiny", ["--merge"], 1)],
    ids=["adapter-on-a-pretrained-base", "adapter-on-a-random-base", "merged"],
)
def test_the_model_cards_examples_run_and_print_the_runs_class_for_the_video(
    tiny_run: Path, trained_run: RunFactory, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    run: str, flags: list[str], examples: int,
) -> None:
    from vjepa_tune import load_run

    run_dir = tiny_run if run == "tiny" else trained_run("lora")
    out = tmp_path / "exported"
    assert _export(capsys, str(run_dir), str(out), *flags)[0] == 0
    video = sorted((synth_root / "standing_up").glob("*.mp4"))[0]
    expected = load_run(run_dir, device="cpu").predict(video, progress=False)
    blocks = _card_examples((out / "README.md").read_text(), out, video)
    assert len(blocks) == examples
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the card's code is what is tested
        label, score = capsys.readouterr().out.split()
        assert label == expected.label and label in CLASSES, "the run's class name, not LABEL_n"
        assert float(score) == pytest.approx(expected.score, abs=2e-3)


def test_a_pretraining_run_exports_its_best_encoder_as_it_is_with_a_model_card(
    pretrained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "encoder"
    code, stdout, stderr = _export(capsys, str(pretrained_run), str(out), "--merge")
    assert code == 0 and f"exported a Hugging Face model to {out}" in stdout and "nothing to merge" in stderr
    metrics = json.loads((pretrained_run / "metrics.json").read_text())
    kept = pretrained_run / metrics["best_model_dir"]
    for name in ("config.json", "model.safetensors", "video_preprocessor_config.json"):
        assert (out / name).read_bytes() == (kept / name).read_bytes(), name
    card = (out / "README.md").read_text()
    assert "**target encoder**" in card and "the best probe by validation accuracy" in card
    assert f"vjepa-tune pretrain --config {pretrained_run.resolve() / 'config.yaml'}" in card
    assert metrics["verdict"] in card and "| 4 |" in card and "vjepa-tune train --model OUT_DIR" in card

    code, _, stderr = _export(capsys, str(pretrained_run), str(tmp_path / "again"))
    assert code == 0 and "nothing to merge" not in stderr
    step = metrics["best_probe_step"]  # the console says which encoder went out, as the card does
    assert (f"note: exported best_model/, the target encoder the best probe by validation accuracy, "
            f"{'which was the encoder the run started from' if step == 0 else f'after {step} step'}") in stderr
    assert "(model/ holds the one after the last step: --last exports it)" in stderr
    for command in (["evaluate", str(pretrained_run)], ["predict", str(pretrained_run), str(out / "README.md")]):
        assert main(command) == 2
        assert "is a pretraining run (vjepa-tune pretrain): it holds an encoder" in capsys.readouterr().err


def test_export_last_writes_the_encoder_after_the_last_step_and_only_for_a_pretraining_run(
    pretrained_run: Path, trained_run: RunFactory, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "last"
    code, _, stderr = _export(capsys, str(pretrained_run), str(out), "--last")
    assert code == 0 and "note: exported model/, the target encoder after the run's last step" in stderr
    for name in ("config.json", "model.safetensors"):
        assert (out / name).read_bytes() == (pretrained_run / "model" / name).read_bytes(), name
    card = (out / "README.md").read_text()
    assert "pretrained further on" in card and f"vjepa-tune export {pretrained_run} {out} --last" in card

    code, _, stderr = _export(capsys, str(trained_run("head_only")), str(tmp_path / "x"), "--last")
    assert code == 2 and "--last applies only to a pretraining run" in stderr and not (tmp_path / "x").exists()


def test_a_card_whose_best_encoder_is_the_one_the_run_started_from_does_not_call_it_pretrained_further(
    pretrained_run: Path
) -> None:
    from vjepa_tune.export import pretraining_model_card

    metrics = {**json.loads((pretrained_run / "metrics.json").read_text()), "best_probe_step": 0}
    card = pretraining_model_card(pretrained_run, pretrained_run / "best_model", "tiny", "footage", metrics, None)
    assert "# V-JEPA 2 encoder: `tiny` as it came, the best of its continued pretraining on `footage`" in card
    assert "pretrained further" not in card and "which was the encoder the run started from" in card
    held = pretraining_model_card(pretrained_run, pretrained_run / "model", "tiny", "footage", metrics, None,
                                  target_held=True)
    assert "# V-JEPA 2 encoder: `tiny` as it came: its continued pretraining on `footage` held the target encoder " \
           "still (EMA momentum 1)" in held and "pretrained further" not in held


def test_a_pretraining_exports_card_code_loads_the_encoder_with_no_weights_reported_unexpected(
    pretrained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """`tiny` has a pooler and a classifier, so its pretraining run keeps them: the card loads the checkpoint as the
    classifier it is and takes its encoder, where `VJEPA2Model` would print a table of every head tensor as
    unexpected."""
    from transformers import VJEPA2Model

    out = tmp_path / "encoder"
    assert _export(capsys, str(pretrained_run), str(out))[0] == 0
    (code,) = re.findall(r"^```python\n(.*?)^```", (out / "README.md").read_text(), re.S | re.M)
    namespace: dict = {}
    with caplog.at_level("INFO"):
        exec(compile(code.replace('"OUT_DIR', f'"{out}'), "README.md", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr()
    assert "UNEXPECTED" not in printed.out + printed.err and "unexpected" not in caplog.text.lower()
    encoder = namespace["encoder"]
    assert isinstance(encoder, VJEPA2Model)
    frames, size = encoder.config.frames_per_clip, encoder.config.crop_size
    with torch.no_grad():
        features = encoder(pixel_values_videos=torch.zeros(1, frames, 3, size, size)).last_hidden_state
    assert features.shape[-1] == encoder.config.hidden_size


def test_data_check_counts_the_videos_a_pretraining_run_saw(pretrained_run: Path, footage_root: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "--data.root", str(footage_root), "--data.format", "videos", "--against",
                 str(pretrained_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overlap"]["seen"] == 8, report["overlap"]
