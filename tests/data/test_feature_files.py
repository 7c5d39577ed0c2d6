"""The features folder's files: keys, what counts as already written, and ActionFormer's dataset config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from vjepa_tune.data.feature_files import (
    ActionFormerValues,
    actionformer_config,
    check_set,
    feature_paths,
    npy_header,
    video_key,
    write_set,
    write_video_features,
    written_features,
)
from vjepa_tune.errors import BadInput

SETTINGS = {"model": "tiny", "layers": [3], "pool": "mean", "dtype": "fp16"}


def test_a_key_is_the_path_under_the_base_folder_without_its_extension(tmp_path: Path) -> None:
    assert video_key(tmp_path / "a" / "b" / "clip.v1.mp4", tmp_path) == "a/b/clip.v1"
    assert feature_paths(tmp_path, "a/clip") == (tmp_path / "a" / "clip.npy", tmp_path / "a" / "clip.json")


def test_only_a_complete_pair_with_the_same_settings_counts_as_written(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    npy = write_video_features(tmp_path, "x/v", array, SETTINGS)
    assert npy_header(npy)[:2] == ((3, 4), np.dtype(np.float16))
    assert written_features(tmp_path, "x/v", (3, 4), "fp16", SETTINGS)
    assert not written_features(tmp_path, "x/v", (4, 4), "fp16", SETTINGS), "another shape: written again"
    assert not written_features(tmp_path, "x/v", (3, 4), "fp32", SETTINGS), "another dtype: written again"
    with pytest.raises(BadInput, match="was made with other settings: pool 'mean' \\(now 'time'\\)"):
        written_features(tmp_path, "x/v", (3, 4), "fp16", {**SETTINGS, "pool": "time"})
    npy.write_bytes(npy.read_bytes()[:-2])
    assert not written_features(tmp_path, "x/v", (3, 4), "fp16", SETTINGS), "cut short: written again"
    npy.unlink()
    assert not written_features(tmp_path, "x/v", (3, 4), "fp16", SETTINGS)
    assert not written_features(tmp_path, "y", (3, 4), "fp16", SETTINGS), "never written"


def test_a_folder_made_with_other_settings_is_refused(tmp_path: Path) -> None:
    check_set(tmp_path, SETTINGS)  # no features.json yet: anything goes
    write_set(tmp_path, {**SETTINGS, "videos": []})
    check_set(tmp_path, SETTINGS)
    with pytest.raises(BadInput, match="layers \\[3\\] \\(now \\[1, 3\\]\\)"):
        check_set(tmp_path, {**SETTINGS, "layers": [1, 3]})


def test_the_actionformer_config_follows_the_subsets_and_avoids_the_thumos_loaders_label_4(tmp_path: Path) -> None:
    values = ActionFormerValues(feat_stride=4, num_frames=16, default_fps=25.0, input_dim=128)
    four = {"sitting_down": 0, "standing_up": 1, "waving": 2, "other": 3}
    config = yaml.safe_load(actionformer_config(values, out=tmp_path, label_ids=four, subsets=["validation", "test"]))
    assert config["dataset_name"] == "thumos"
    assert (config["train_split"], config["val_split"]) == (["validation"], ["test"])
    dataset = config["dataset"]
    assert (dataset["feat_stride"], dataset["num_frames"], dataset["default_fps"]) == (4, 16, 25.0)
    assert (dataset["input_dim"], dataset["num_classes"], dataset["file_ext"]) == (128, 4, ".npy")
    assert dataset["file_prefix"] is None and dataset["feat_folder"] == str(tmp_path.resolve())
    assert dataset["json_file"] == str(tmp_path.resolve() / "annotations.json")
    five = {**four, "jumping": 4}
    config = yaml.safe_load(actionformer_config(values, out=tmp_path, label_ids=five,
                                                subsets=["training", "validation"]))
    assert config["dataset_name"] == "anet", "ActionFormer's thumos loader drops label_id 4"
    assert (config["train_split"], config["val_split"]) == (["training"], ["validation"])
    unlabelled = ActionFormerValues(4, 16, None, 128)
    config = yaml.safe_load(actionformer_config(unlabelled, out=tmp_path, label_ids={}, subsets=["test"]))
    assert config["dataset"]["num_classes"] is None and config["dataset"]["default_fps"] is None
    assert config["train_split"] == config["val_split"] == ["test"]
