"""The detection annotation file: ActionFormer's thumos14.json layout, read with a clear error for every bad value."""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vjepa_tune.data.annotations import (
    AnnotatedSegment,
    AnnotatedVideo,
    DetectionAnnotations,
    Segment,
    read_annotations,
    write_annotations,
)
from vjepa_tune.errors import BadInput

ANNOTATIONS = DetectionAnnotations(
    {
        "long-001": AnnotatedVideo(
            subset="validation",
            duration_s=20.0,
            fps=25.0,
            segments=(
                AnnotatedSegment("waving", 1, 1.5, 4.25),
                AnnotatedSegment("sitting_down", 0, 6.0, 9.0),
                AnnotatedSegment("waving", 1, 12.0, 20.0),
            ),
        ),
        "long-002": AnnotatedVideo(subset="test", duration_s=8.0, fps=30.0, segments=()),
        "long-003": AnnotatedVideo(
            subset="Test", duration_s=10.0, fps=30.0, segments=(AnnotatedSegment("other", 3, 0.0, 2.0),)
        ),
    }
)


def valid_file() -> dict:
    return {
        "database": {
            "vid": {
                "subset": "test",
                "duration": 10.0,
                "fps": 30,
                "annotations": [
                    {"label": "waving", "label_id": 1, "segment": [1.0, 3.0]},
                    {"label": "other", "label_id": 0, "segment": [4.0, 6.0]},
                ],
            },
            "vid2": {
                "subset": "test",
                "duration": 5.0,
                "fps": 30,
                "annotations": [{"label": "waving", "label_id": 1, "segment": [0.0, 5.0]}],
            },
        }
    }


def write_raw(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------------ round trip
def test_annotations_written_read_back_equal(tmp_path: Path) -> None:
    path = write_annotations(tmp_path / "sub" / "gt.json", ANNOTATIONS)
    assert read_annotations(path) == ANNOTATIONS
    assert list(read_annotations(path).videos) == ["long-001", "long-002", "long-003"]  # the file's order


def test_the_written_file_has_exactly_actionformers_thumos14_layout(tmp_path: Path) -> None:
    data = json.loads(write_annotations(tmp_path / "gt.json", ANNOTATIONS).read_text())
    assert list(data) == ["database"]
    video = data["database"]["long-001"]
    assert video == {
        "subset": "validation",
        "duration": 20.0,
        "fps": 25.0,
        "annotations": [
            {"label": "waving", "label_id": 1, "segment": [1.5, 4.25]},
            {"label": "sitting_down", "label_id": 0, "segment": [6.0, 9.0]},
            {"label": "waving", "label_id": 1, "segment": [12.0, 20.0]},
        ],
    }
    assert data["database"]["long-002"]["annotations"] == []


def test_actionformers_thumos14_reader_takes_the_written_file(tmp_path: Path) -> None:
    """What ActionFormer's THUMOS14Dataset._load_json_db does with the file (libs/datasets/thumos14.py), step by
    step: label -> label_id from every video, videos chosen by `subset.lower()`, fps, duration, segments in seconds
    and labels through the map; then segments in feature rows as its __getitem__ converts them."""
    data = json.loads(write_annotations(tmp_path / "gt.json", ANNOTATIONS).read_text())
    db = data["database"]
    label_dict = {act["label"]: act["label_id"] for value in db.values() for act in value["annotations"]}
    assert label_dict == {"waving": 1, "sitting_down": 0, "other": 3}
    split = ["test"]
    chosen = [key for key, value in db.items() if value["subset"].lower() in split]
    assert chosen == ["long-002", "long-003"]
    value = db["long-001"]
    segments = np.asarray([act["segment"] for act in value["annotations"]], dtype=np.float32)
    labels = np.squeeze(np.asarray([[label_dict[act["label"]]] for act in value["annotations"]], np.int64), axis=1)
    assert labels.tolist() == [1, 0, 1]
    feat_stride, num_frames = 4, 16
    rows = (segments * value["fps"] - 0.5 * num_frames) / feat_stride
    assert rows[0].tolist() == pytest.approx([(1.5 * 25 - 8) / 4, (4.25 * 25 - 8) / 4])
    assert value["duration"] == 20.0


def test_keys_beyond_the_layout_are_kept_through_a_round_trip(tmp_path: Path) -> None:
    # ActivityNet's top-level version and taxonomy, its per-video url and resolution, THUMOS's segment(frames).
    data = valid_file()
    data["version"] = "VERSION 1.3"
    data["taxonomy"] = [{"nodeName": "waving", "nodeId": 1}]
    data["database"]["vid"]["url"] = "https://example.org/vid"
    data["database"]["vid"]["annotations"][0]["segment(frames)"] = [30.0, 90.0]
    read = read_annotations(write_raw(tmp_path, data))
    assert read.extra == {"version": "VERSION 1.3", "taxonomy": [{"nodeName": "waving", "nodeId": 1}]}
    assert read.videos["vid"].extra == {"url": "https://example.org/vid"}
    assert read.videos["vid"].segments[0].extra == {"segment(frames)": [30.0, 90.0]}
    again = json.loads(write_annotations(tmp_path / "again.json", read).read_text())
    assert again == data


def test_extra_keys_may_not_repeat_a_field_of_the_layout() -> None:
    with pytest.raises(ValueError, match="duration"):
        AnnotatedVideo("test", 10.0, 30.0, extra={"duration": 3})


# ------------------------------------------------------------------------------------------------ views
def test_label_ids_subsets_and_ground_truth_for_evaluation() -> None:
    assert ANNOTATIONS.label_ids() == {"sitting_down": 0, "waving": 1, "other": 3}
    assert list(ANNOTATIONS.in_subsets("test").videos) == ["long-002", "long-003"]  # "Test" too, as ActionFormer
    assert list(ANNOTATIONS.in_subsets("VALIDATION", "test").videos) == ["long-001", "long-002", "long-003"]
    truth = ANNOTATIONS.ground_truth()
    assert truth["long-001"] == [Segment("waving", 1.5, 4.25), Segment("sitting_down", 6.0, 9.0),
                                 Segment("waving", 12.0, 20.0)]
    assert truth["long-002"] == []  # a video without actions is still evaluated


def test_subsets_beyond_training_validation_and_test_are_allowed(tmp_path: Path) -> None:
    data = valid_file()
    data["database"]["vid"]["subset"] = "held-out-2024"
    assert read_annotations(write_raw(tmp_path, data)).videos["vid"].subset == "held-out-2024"


def test_an_end_within_half_a_frame_past_the_duration_is_accepted(tmp_path: Path) -> None:
    data = valid_file()
    data["database"]["vid"]["annotations"][0]["segment"] = [8.0, 10.0 + 0.5 / 30]  # durations round to frames
    assert read_annotations(write_raw(tmp_path, data)).videos["vid"].segments[0].end_s == pytest.approx(10 + 1 / 60)


# ------------------------------------------------------------------------------------------------ writing
def test_the_file_is_written_with_the_umasks_permissions_and_no_temporary_file_left(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        path = write_annotations(tmp_path / "gt.json", ANNOTATIONS)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["gt.json"]


def test_annotations_that_would_not_read_back_are_not_written(tmp_path: Path) -> None:
    path = write_annotations(tmp_path / "gt.json", ANNOTATIONS)
    before = path.read_bytes()
    bad = DetectionAnnotations(
        {"v": AnnotatedVideo("test", 5.0, 30.0, (AnnotatedSegment("waving", 1, 4.0, 9.0),))}
    )
    with pytest.raises(BadInput, match=r"gt\.json, video 'v', annotation 0 \('waving'\): \"segment\" .* outside"):
        write_annotations(path, bad)
    assert path.read_bytes() == before  # the old file stands, whole
    assert [p.name for p in tmp_path.iterdir()] == ["gt.json"]


# ------------------------------------------------------------------------------------------------ validation
def _set(*keys: str | int, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _delete(*keys: str | int) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


FIRST = ("database", "vid", "annotations", 0)
BAD_FILES: dict[str, tuple[Callable[[dict], None], list[str]]] = {
    # case: (what is changed in a valid file, what the message must name besides the file)
    "no database": (_delete("database"), ['"database"']),
    "database not an object": (_set("database", value=[1, 2]), ['"database"']),
    "video not an object": (_set("database", "vid", value=[]), ["video 'vid'", "JSON object"]),
    "missing subset": (_delete("database", "vid", "subset"), ["video 'vid'", '"subset"']),
    "missing duration": (_delete("database", "vid", "duration"), ["video 'vid'", '"duration"']),
    "missing fps": (_delete("database", "vid", "fps"), ["video 'vid'", '"fps"']),
    "missing annotations": (_delete("database", "vid", "annotations"), ["video 'vid'", '"annotations"']),
    "missing label": (_delete(*FIRST, "label"), ["video 'vid', annotation 0", '"label"']),
    "missing label_id": (_delete(*FIRST, "label_id"), ["video 'vid', annotation 0", '"label_id"']),
    "missing segment": (_delete(*FIRST, "segment"), ["video 'vid', annotation 0", '"segment"']),
    "subset not a string": (_set("database", "vid", "subset", value=3), ["video 'vid'", '"subset"']),
    "empty subset": (_set("database", "vid", "subset", value=""), ["video 'vid'", '"subset"']),
    "duration not a number": (_set("database", "vid", "duration", value="10"), ["video 'vid'", '"duration"']),
    "duration zero": (_set("database", "vid", "duration", value=0), ["video 'vid'", '"duration"']),
    "fps negative": (_set("database", "vid", "fps", value=-30), ["video 'vid'", '"fps"']),
    "annotations not a list": (_set("database", "vid", "annotations", value={}), ["video 'vid'", '"annotations"']),
    "annotation not an object": (_set(*FIRST, value="waving"), ["video 'vid', annotation 0"]),
    "empty label": (_set(*FIRST, "label", value=""), ["video 'vid', annotation 0", '"label"']),
    "label_id a float": (_set(*FIRST, "label_id", value=1.0), ["video 'vid', annotation 0", '"label_id"']),
    "label_id a bool": (_set(*FIRST, "label_id", value=True), ["video 'vid', annotation 0", '"label_id"']),
    "label_id negative": (_set(*FIRST, "label_id", value=-1), ["video 'vid', annotation 0", '"label_id"']),
    "segment of three": (_set(*FIRST, "segment", value=[1, 2, 3]), ["video 'vid', annotation 0", '"segment"']),
    "segment of text": (_set(*FIRST, "segment", value=["1", "2"]), ["video 'vid', annotation 0", '"segment"']),
    "segment NaN": (_set(*FIRST, "segment", value=[float("nan"), 2]), ["annotation 0", '"segment"']),
    "end before start": (_set(*FIRST, "segment", value=[3.0, 1.0]), ["annotation 0", '"segment"', "after it starts"]),
    "end equal to start": (_set(*FIRST, "segment", value=[3.0, 3.0]), ["annotation 0", "after it starts"]),
    "start before 0": (_set(*FIRST, "segment", value=[-1.0, 3.0]), ["video 'vid', annotation 0", "outside"]),
    "end past the duration": (_set(*FIRST, "segment", value=[8.0, 10.1]), ["video 'vid', annotation 0", "outside"]),
    "one label, two ids": (
        _set("database", "vid2", "annotations", 0, "label_id", value=2),
        ["video 'vid2', annotation 0", '"label_id" 2', "'waving' has label_id 1 in video 'vid'"],
    ),
    "one id, two labels": (
        _set("database", "vid2", "annotations", 0, "label", value="sitting_down"),
        ["video 'vid2', annotation 0", "already the id of 'waving' in video 'vid'"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_every_bad_value_is_refused_naming_the_file_the_video_and_the_field(tmp_path: Path, case: str) -> None:
    change, named = BAD_FILES[case]
    data = copy.deepcopy(valid_file())
    change(data)
    path = write_raw(tmp_path, data)
    with pytest.raises(BadInput) as caught:
        read_annotations(path)
    message = str(caught.value)
    assert str(path) in message
    for part in named:
        assert part in message, f"{case}: {part!r} not in {message!r}"


def test_a_video_key_given_twice_is_refused_rather_than_one_entry_silently_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    entry = json.dumps(valid_file()["database"]["vid"])
    path.write_text(f'{{"database": {{"vid": {entry}, "vid": {entry}}}}}')
    with pytest.raises(BadInput, match=r"gt\.json: the key 'vid' appears twice"):
        read_annotations(path)


def test_a_file_that_is_missing_or_not_json_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"cannot read the annotation file .*absent\.json"):
        read_annotations(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"database": {')
    with pytest.raises(BadInput, match=r"broken\.json is not valid JSON \(line 1"):
        read_annotations(broken)
