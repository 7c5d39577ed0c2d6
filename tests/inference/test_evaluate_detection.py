"""`evaluate --detection`: a run scored as a detector on annotated long videos, its proposals being the segments of
`predict --window --min_score 0`, with the records and the refusals a user needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vjepa_tune.cli import main
from vjepa_tune.data.annotations import read_annotations, write_annotations
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.detection import (
    ScoredSegment,
    TimeLabelling,
    bootstrap_detection_intervals,
    evaluate_detection,
    score_time_labels,
    time_grid,
)
from vjepa_tune.inference.detection import annotated_videos

SRC = Path(__file__).resolve().parents[2] / "src"


def test_annotated_videos_are_found_by_key_with_any_video_extension(long_videos: Path, tmp_path: Path) -> None:
    truth = read_annotations(long_videos / "annotations.json")
    found = annotated_videos(truth, long_videos / "videos", Path("a.json"))
    assert found == {key: long_videos / "videos" / f"{key}.mp4" for key in truth.videos}
    root = tmp_path / "videos"
    shutil.copytree(long_videos / "videos", root)
    (root / "long_0001.mp4").rename(root / "long_0001.MKV")
    (root / "long_0002.mp4").unlink()
    with pytest.raises(BadInput, match="1 annotated video of a.json has no file under .*: long_0002"):
        annotated_videos(truth, root, Path("a.json"))
    shutil.copy(root / "long_0001.MKV", root / "long_0002.avi")
    shutil.copy(root / "long_0001.MKV", root / "long_0002.mp4")
    with pytest.raises(BadInput, match=r"long_0002 \(long_0002.avi, long_0002.mp4\)"):
        annotated_videos(truth, root, Path("a.json"))


def test_a_run_is_scored_on_the_segments_predict_window_reports_with_the_thumos_protocol(
    lora_run: Path, long_videos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vjepa_tune import load_run

    annotations, videos = long_videos / "annotations.json", long_videos / "videos"
    assert main(["evaluate", str(lora_run), "--detection", str(annotations), "--data.root", str(videos)]) == 0
    printed = capsys.readouterr().out
    assert "detection on 3 videos" in printed and "mAP" in printed and "tIoU 0.3" in printed
    out = lora_run / "evaluation" / "detection-annotations-w1.28-s0.64"
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["window_s"], metrics["stride_s"]) == (1.28, 0.64), "the run's clip length, and half of it"
    detection = metrics["detection"]
    assert list(detection["map"]) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert set(detection["ap_per_class"]) == {"other", "sitting_down", "standing_up", "waving"}
    assert detection["average_map"] == pytest.approx(sum(detection["map"].values()) / 5)

    run = load_run(lora_run)
    truth = read_annotations(annotations)
    predictions = run.predict_windows([videos / f"{k}.mp4" for k in truth.videos], window_s=1.28, stride_s=0.64,
                                      min_score=0.0, progress=False)
    proposals = json.loads((out / "detections.json").read_text())["results"]
    found = {}
    for key, prediction in zip(truth.videos, predictions, strict=True):
        assert [(p["label"], p["score"]) for p in proposals[key]] == [(s.label, s.score) for s in prediction.segments]
        covered = sum(s.end_s - s.start_s for s in prediction.segments)
        assert covered == pytest.approx(prediction.duration_s), "every moment lies in one proposal: no minimum score"
        found[key] = [ScoredSegment(s.label, s.start_s, s.end_s, s.score) for s in prediction.segments]
    again = evaluate_detection(truth.ground_truth(), found)
    assert again.as_dict() == {k: v for k, v in detection.items() if k not in ("average_map_ci", "map_ci")}
    intervals = bootstrap_detection_intervals(truth.ground_truth(), found)
    assert detection["average_map_ci"] == list(intervals.average_map), "bootstrapped over the same videos"
    low, high = detection["average_map_ci"]
    assert low <= detection["average_map"] <= high
    assert set(detection["map_ci"]) == set(detection["map"])
    low, high = metrics["time_labelling"]["share_right_ci"]
    assert low <= metrics["time_labelling"]["share_right"] <= high
    assert metrics["bootstrap"] == {"over": "videos", "resamples": 1000, "seed": 0}
    assert f"mAP {100 * detection['average_map']:.1f}% (" in printed
    times = {key: time_grid(p.duration_s, 1 / 25) for key, p in zip(truth.videos, predictions, strict=True)}
    labelling = sum((score_time_labels(times[key], p.label_at(times[key]), truth.ground_truth()[key])
                     for key, p in zip(truth.videos, predictions, strict=True)), TimeLabelling())
    assert metrics["time_labelling"] == {**labelling.as_dict(), "share_right_ci": [low, high]}

    assert main(["evaluate", str(lora_run), "--detection", str(annotations), "--data.root", str(videos), "--subset",
                 "test", "--window", "0.64", "--json"]) == 0
    subset = json.loads(capsys.readouterr().out)
    assert subset["num_videos"] == 1 and subset["subset"] == "test" and subset["stride_s"] == 0.32
    assert (lora_run / "evaluation" / "detection-annotations-test-w0.64-s0.32" / "metrics.json").is_file()


def test_detection_flags_are_refused_where_they_do_not_apply(
    lora_run: Path, long_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    annotations, videos = long_videos / "annotations.json", long_videos / "videos"
    cases = [
        (["--detection", str(annotations)], "--detection needs --data.root DIR"),
        (["--detection", str(annotations), "--data.root", str(videos), "--split", "val"], "--split do(es) not apply"),
        (["--window", "1.0"], "--window describe(s) a detection evaluation"),
        (["--detection", str(annotations), "--data.root", str(videos), "--subset", "training"],
         "has no video of subset 'training'"),
    ]
    for argv, said in cases:
        assert main(["evaluate", str(lora_run), *argv]) == 2
        assert said in capsys.readouterr().err
    truth = read_annotations(annotations)
    video = next(iter(truth.videos.values()))
    relabelled = type(truth)({"long_0000": type(video)(video.subset, video.duration_s, video.fps, tuple(
        type(s)("jumping", 7, s.start_s, s.end_s) for s in video.segments))})
    write_annotations(tmp_path / "other.json", relabelled)
    assert main(["evaluate", str(lora_run), "--detection", str(tmp_path / "other.json"), "--data.root",
                 str(videos)]) == 2
    assert "labels 'jumping' are not among the run's classes" in capsys.readouterr().err


def test_two_processes_score_detection_as_one_does(lora_run: Path, long_videos: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    argv = ["evaluate", str(lora_run), "--detection", str(long_videos / "annotations.json"), "--data.root",
            str(long_videos / "videos"), "--json"]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                          "vjepa_tune", *argv, "--out", str(tmp_path / "two")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert b["detection"] == a["detection"] and b["time_labelling"] == a["time_labelling"]
    assert b["num_videos"] == 3
    one, two_found = (json.loads((tmp_path / name / "detections.json").read_text())["results"]
                      for name in ("one", "two"))
    assert one.keys() == two_found.keys()
    for key, segments in one.items():  # a batch cut elsewhere may move a score in its ninth digit
        assert [(s["label"], s["segment"]) for s in two_found[key]] == [(s["label"], s["segment"]) for s in segments]
        assert [s["score"] for s in two_found[key]] == pytest.approx([s["score"] for s in segments], abs=1e-6)
