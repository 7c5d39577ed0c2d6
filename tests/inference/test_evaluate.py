"""`evaluate`: the training test scores reproduced and recorded, mirrored views, another data set's classes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from vjepa_tune.cli import main

CLASSES = ["other", "sitting_down", "standing_up", "waving"]


def _first_video(root: Path, cls: str) -> Path:
    return sorted((root / cls).glob("*.mp4"))[0]


def _run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------ evaluate
def test_evaluate_reproduces_the_training_test_scores_and_writes_its_records(
    lora_run: Path, capsys: pytest.CaptureFixture
) -> None:
    code, stdout, _ = _run_cli(capsys, "evaluate", str(lora_run), "--json")
    assert code == 0
    metrics = json.loads(stdout)
    trained = json.loads((lora_run / "metrics.json").read_text())
    assert metrics["top1"] == pytest.approx(trained["test_acc"])
    assert metrics["confusion"] == trained["test"]["confusion"]
    # the same predictions get the same intervals: Wilson from the counts, the bootstrap from its seed
    for key in ("top1", "mean_class_acc", "macro_f1"):
        assert metrics[f"{key}_ci"] == pytest.approx(trained["test"][f"{key}_ci"]), key
    assert metrics["num_videos"] == trained["num_test"] and metrics["skipped_videos"] == 0
    out_dir = lora_run / "evaluation" / "test-1x1"
    written = {"metrics.json", "confusion.csv", "confusion.png", "predictions.csv"}
    assert written <= {p.name for p in out_dir.iterdir()}
    rows = list(csv.DictReader((out_dir / "predictions.csv").open()))
    splits = json.loads((lora_run / "splits.json").read_text())
    assert [r["id"] for r in rows] == [entry["id"] for entry in splits["test"]]
    assert sum(int(r["correct"]) for r in rows) / len(rows) == pytest.approx(metrics["top1"])
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-5)

    code, stdout, _ = _run_cli(
        capsys, "evaluate", str(lora_run), "--split", "val", "--num_clips", "2", "--num_crops", "3"
    )
    assert code == 0 and "val split" in stdout and "2 clips x 3 crops" in stdout
    val = json.loads((lora_run / "evaluation" / "val-2x3" / "metrics.json").read_text())
    low, high = (int(100 * v + 0.5) for v in val["top1_ci"])  # whole percent rounded half up, as tables print it
    assert f"top-1 {100 * val['top1']:.1f}% ({low}–{high}), mean class acc " in stdout
    assert "(95% intervals)" in stdout
    multi = list(csv.DictReader((lora_run / "evaluation" / "val-2x3" / "predictions.csv").open()))
    assert len(multi) == len(splits["val"])


def test_flip_averages_mirrored_views_in_evaluate_and_predict_and_warns_for_runs_trained_unmirrored(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, stdout, stderr = _run_cli(capsys, "evaluate", str(lora_run), "--flip", "true", "--json")
    assert code == 0 and "warning" not in stderr
    mirrored = json.loads(stdout)
    assert mirrored["flip"] is True and mirrored["num_videos"] == json.loads(
        (lora_run / "metrics.json").read_text())["num_test"]
    flip_rows = list(csv.DictReader((lora_run / "evaluation" / "test-1x1-flip" / "predictions.csv").open()))
    code, _, _ = _run_cli(capsys, "evaluate", str(lora_run))
    plain_rows = list(csv.DictReader((lora_run / "evaluation" / "test-1x1" / "predictions.csv").open()))
    assert [r["id"] for r in flip_rows] == [r["id"] for r in plain_rows]
    assert any(abs(float(a[f"p_{c}"]) - float(b[f"p_{c}"])) > 1e-4
               for a, b in zip(flip_rows, plain_rows, strict=True) for c in CLASSES), "mirrored views count"

    from vjepa_tune import load_run

    video = _first_video(synth_root, "waving")
    run = load_run(lora_run)
    both = run.predict(video, flip=True, progress=False).probs
    assert not torch.allclose(both, run.predict(video, progress=False).probs)
    assert float(both.sum()) == pytest.approx(1, abs=1e-5)
    code, stdout, _ = _run_cli(capsys, "predict", str(lora_run), str(video), "--flip", "true", "--json")
    assert code == 0 and json.loads(stdout)["settings"]["flip"] is True

    unmirrored = tmp_path / "unmirrored"
    shutil.copytree(lora_run, unmirrored)
    config = yaml.safe_load((unmirrored / "config.yaml").read_text())
    config["data"]["hflip"] = False
    (unmirrored / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, stderr = _run_cli(capsys, "predict", str(unmirrored), str(video), "--flip", "true")
    assert code == 0 and "trained without horizontal flips" in stderr
    code, _, stderr = _run_cli(capsys, "evaluate", str(unmirrored), "--flip", "true")
    assert code == 0 and "trained without horizontal flips" in stderr


def test_evaluate_on_another_data_set_maps_its_classes_to_the_runs(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    listed = [(_first_video(synth_root, c), c) for c in ("waving", "standing_up", "other")]
    good = tmp_path / "good.txt"
    good.write_text("".join(f"{path} {cls}\n" for path, cls in listed))
    listing = ["--data.format", "list", "--data.root", str(tmp_path), "--data.list_file"]
    code, stdout, _ = _run_cli(
        capsys, "evaluate", str(lora_run), *listing, str(good), "--out", str(tmp_path / "eval"), "--json"
    )
    assert code == 0
    metrics = json.loads(stdout)
    assert metrics["num_videos"] == 3 and metrics["split"] is None
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert sorted(r["label"] for r in rows) == ["other", "standing_up", "waving"]

    foreign = tmp_path / "foreign.txt"
    foreign.write_text(f"{listed[0][0]} jumping\n{listed[1][0]} waving\n")
    code, _, stderr = _run_cli(capsys, "evaluate", str(lora_run), *listing, str(foreign))
    assert code == 2 and "'jumping'" in stderr and "not among the run's classes" in stderr
