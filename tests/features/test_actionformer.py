"""The path to a stronger detector: features of long recordings written with `--format actionformer` load as
ActionFormer's THUMOS14 dataset code reads them.

ActionFormer is not installed here; the checks follow what its `libs/datasets/thumos14.py` (THUMOS14Dataset) and
`libs/core/config.py` document and do: the config's `dataset` section gives `json_file`, `feat_folder`,
`file_prefix` (None: none), `file_ext`, `num_classes`, `input_dim`, `feat_stride`, `num_frames`, `default_fps`;
the loader builds `label -> label_id` from every annotation of the file and asserts it has `num_classes` entries,
keeps the videos whose `subset` (lower case) is in the split and whose `feat_folder/<prefix><key><ext>` exists,
takes `default_fps` (else the video's `fps`) and `duration`, loads the array as float32 (T, C) and hands the model
(C, T); a time s maps to the feature grid as (s x fps - 0.5 x num_frames) / feat_stride, so row t stands for the
time (t x feat_stride + 0.5 x num_frames) / fps, which its post-processing inverts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vjepa_tune.cli import main
from vjepa_tune.data.annotations import read_annotations
from vjepa_tune.data.windows import window_starts


@pytest.fixture(scope="module")
def exported(long_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("actionformer") / "features"
    assert main(["features", "tiny", str(long_videos / "videos"), "--out", str(out), "--format", "actionformer",
                 "--annotations", str(long_videos / "annotations.json")]) == 0
    return out


def _load_like_actionformer(config: dict, split: list[str]) -> list[dict]:
    dataset = config["dataset"]
    with open(dataset["json_file"]) as f:
        database = json.load(f)["database"]
    label_dict = {a["label"]: a["label_id"] for video in database.values() for a in video["annotations"]}
    assert len(label_dict) == dataset["num_classes"]
    items = []
    for key, video in database.items():
        if video["subset"].lower() not in split:
            continue
        path = Path(dataset["feat_folder"]) / ((dataset["file_prefix"] or "") + key + dataset["file_ext"])
        assert path.exists(), f"ActionFormer would silently skip {key}: no {path}"
        fps = dataset["default_fps"] if dataset["default_fps"] is not None else video["fps"]
        feats = np.load(path).astype(np.float32)
        segments = np.asarray([a["segment"] for a in video["annotations"]], dtype=np.float32)
        labels = np.asarray([label_dict[a["label"]] for a in video["annotations"]], dtype=np.int64)
        items.append({
            "id": key, "fps": fps, "duration": video["duration"], "feats": np.ascontiguousarray(feats.T),
            "segments": (segments * fps - 0.5 * dataset["num_frames"]) / dataset["feat_stride"], "labels": labels,
        })
    return items


def test_actionformer_reads_the_exported_features_with_their_stride_and_times(exported: Path,
                                                                              long_videos: Path) -> None:
    config = yaml.safe_load((exported / "actionformer.yaml").read_text())
    assert config["dataset_name"] == "thumos"
    assert (config["train_split"], config["val_split"]) == (["validation"], ["test"])
    dataset = config["dataset"]
    assert (dataset["feat_stride"], dataset["num_frames"], dataset["default_fps"]) == (4, 16, 25.0)
    assert (dataset["input_dim"], dataset["num_classes"], dataset["file_ext"]) == (128, 4, ".npy")
    features_json = json.loads((exported / "features.json").read_text())
    assert features_json["actionformer"] == {"feat_stride": 4, "num_frames": 16, "default_fps": 25.0,
                                             "input_dim": 128}
    assert read_annotations(Path(dataset["json_file"])) == read_annotations(long_videos / "annotations.json")

    train = _load_like_actionformer(config, config["train_split"])
    test = _load_like_actionformer(config, config["val_split"])
    assert [item["id"] for item in train] == ["long_0000", "long_0001"] and [i["id"] for i in test] == ["long_0002"]
    for item in train + test:
        meta = json.loads((exported / f"{item['id']}.json").read_text())
        channels, rows = item["feats"].shape
        assert channels == dataset["input_dim"]
        assert rows == len(window_starts(meta["num_frames"], 16, 4)) <= dataset["max_seq_len"]
        centres = (np.asarray(meta["row_start_s"]) + np.asarray(meta["row_end_s"])) / 2
        as_actionformer_times = (np.arange(rows) * dataset["feat_stride"] + 0.5 * dataset["num_frames"]) / item["fps"]
        np.testing.assert_allclose(as_actionformer_times, centres, atol=1e-6)
        assert item["duration"] == pytest.approx(meta["duration_s"])
        half_window = 0.5 * dataset["num_frames"] / dataset["feat_stride"]
        assert np.all(item["segments"] >= -half_window) and np.all(item["segments"] <= rows - 1 + half_window), (
            "every action lies within the time the rows cover")
        assert item["labels"].min() >= 0 and item["labels"].max() < dataset["num_classes"]


def test_annotated_videos_without_features_are_left_out_by_name_and_unusable_settings_refused(
    long_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos, annotations = long_videos / "videos", str(long_videos / "annotations.json")
    out = tmp_path / "two"
    assert main(["features", "tiny", str(videos / "long_0000.mp4"), str(videos / "long_0001.mp4"), "--out", str(out),
                 "--window_frames", "32", "--stride_frames", "32", "--format", "actionformer", "--annotations",
                 annotations]) == 0
    assert "1 annotated video of" in capsys.readouterr().err
    assert list(read_annotations(out / "annotations.json").videos) == ["long_0000", "long_0001"]
    refusals = [
        (["--annotations", annotations], "give --format actionformer too"),
        (["--format", "actionformer", "--pool", "time"], "needs one row per window"),
        (["--format", "actionformer", "--annotations", str(tmp_path / "missing.json")], "cannot read the annotation"),
    ]
    for argv, said in refusals:
        assert main(["features", "tiny", str(videos), "--out", str(tmp_path / "x"), *argv]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
