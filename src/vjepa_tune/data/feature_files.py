"""The features folder that `vjepa-tune features` writes, and the one module that reads and writes it.

    FEATS/features.json            the set: settings, ActionFormer's config values, videos written and skipped
    FEATS/<relative folders>/NAME.npy    (T, C) per video (T x N x C for --pool tokens), float16 or float32
    FEATS/<relative folders>/NAME.json   that video's rows: times, frame counts, window and stride, settings
    FEATS/actionformer.yaml, FEATS/annotations.json   with --format actionformer

A video's key is its path relative to the folder it was found in (or to the common folder of the inputs), without
its extension: `THUMOS/video_test_0000004.mp4` under `THUMOS/` is `video_test_0000004`, the annotation key
ActionFormer looks up as `feat_folder/<key>.npy`. Two videos with the same key (same name, other extensions) are
refused rather than one overwriting the other.

Each `.npy` is written first and its `.json` last, both atomically (`files.py`), so a `.json` stands for a
complete pair; a rerun skips a video whose pair is there with the same settings, an `.npy` whose header holds the
expected shape and dtype, and a file size that matches (`written_features`). Settings that differ from those a
folder was made with are refused, never mixed.

`actionformer_config` writes the config values ActionFormer's dataset code reads (`libs/datasets/thumos14.py`):
row t of a video stands for source frames [t x feat_stride, t x feat_stride + num_frames) at `fps`, so ActionFormer
maps a time s to the feature grid as (s x fps - 0.5 x num_frames) / feat_stride.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_atomic, write_json_atomic, write_text_atomic

FEATURES_FILE = "features.json"
ACTIONFORMER_CONFIG_FILE = "actionformer.yaml"
ANNOTATIONS_FILE = "annotations.json"
FORMAT_VERSION = 1
NUMPY_DTYPES: dict[str, type[np.floating]] = {"fp16": np.float16, "fp32": np.float32}
SETTINGS = ("model", "layers", "layer_norm", "pool", "resize", "window_frames", "stride_frames", "resample_fps",
            "pad_last", "frames_per_clip", "crop_size", "dtype", "precision")
"""The keys of a video's .json (and of features.json) that must agree for files to belong to one set."""
JsonObject = dict[str, object]


def video_key(path: Path, base: Path) -> str:
    """The key of a video found under `base`: its relative path without the extension, with forward slashes."""
    return Path(path).relative_to(base).with_suffix("").as_posix()


def feature_paths(out: Path, key: str) -> tuple[Path, Path]:
    """(NAME.npy, NAME.json) of a video's key."""
    stem = Path(out) / key
    return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")


def settings_of(document: Mapping[str, object]) -> JsonObject:
    return {key: document.get(key) for key in SETTINGS}


def _differences(found: Mapping[str, object], wanted: Mapping[str, object]) -> str:
    changed = [key for key in SETTINGS if found.get(key) != wanted.get(key)]
    return ", ".join(f"{key} {found.get(key)!r} (now {wanted.get(key)!r})" for key in changed)


def check_set(out: Path, settings: Mapping[str, object]) -> None:
    """Refuse to add to a folder whose features.json was made with other settings."""
    path = Path(out) / FEATURES_FILE
    if not path.is_file():
        return
    document = _read_json(path)
    if settings_of(document) != settings_of(settings):
        raise BadInput(f"{out} holds features made with other settings: {_differences(document, settings)}. "
                       "Use another --out, or the same settings to resume.")


def _read_json(path: Path) -> JsonObject:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}; delete it to write that video's features again.") from None
    if not isinstance(document, dict):
        raise BadInput(f"{path} is not a features record (a JSON object); delete it to write it again.")
    return document


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """(shape, dtype, bytes before the data) from an .npy file's header; None when it is not a readable .npy."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            return (tuple(shape), dtype, f.tell()) if not fortran else None
    except (OSError, ValueError):
        return None


def written_features(out: Path, key: str, shape: Sequence[int], dtype: str, settings: Mapping[str, object]) -> bool:
    """Whether `key`'s pair is already complete for these settings: its .json there with the same settings, its .npy
    of this shape and dtype and of the size they make. BadInput when the .json names other settings (a folder of
    another set); False for anything missing or cut short, which is then written again."""
    npy, meta = feature_paths(out, key)
    if not meta.is_file():
        return False
    document = _read_json(meta)
    if settings_of(document) != settings_of(settings):
        raise BadInput(f"{meta} was made with other settings: {_differences(document, settings)}. Use another "
                       "--out, or the same settings to resume.")
    header = npy_header(npy) if npy.is_file() else None
    if header is None:
        return False
    found_shape, found_dtype, offset = header
    expected = np.dtype(NUMPY_DTYPES[dtype])
    size = offset + math.prod(found_shape) * expected.itemsize
    return found_shape == tuple(shape) and found_dtype == expected and npy.stat().st_size == size


def write_video_features(out: Path, key: str, array: np.ndarray, metadata: Mapping[str, object]) -> Path:
    """Write NAME.npy, then NAME.json (each atomically); returns the .npy's path."""
    npy, meta = feature_paths(out, key)
    npy.parent.mkdir(parents=True, exist_ok=True)

    def save(aside: Path) -> None:
        with open(aside, "wb") as f:  # a file object: np.save would add .npy to a path's name
            np.save(f, np.ascontiguousarray(array))

    write_atomic(npy, save)
    write_json_atomic(meta, dict(metadata))
    return npy


def read_video_features(out: Path, key: str) -> tuple[np.ndarray, JsonObject]:
    """A video's array and its .json, as written."""
    npy, meta = feature_paths(out, key)
    return np.load(npy), _read_json(meta)


def write_set(out: Path, document: Mapping[str, object]) -> Path:
    return write_json_atomic(Path(out) / FEATURES_FILE, dict(document))


def read_set(out: Path) -> JsonObject:
    return _read_json(Path(out) / FEATURES_FILE)


@dataclass(frozen=True)
class ActionFormerValues:
    """What ActionFormer's dataset config asks of a feature set."""

    feat_stride: int
    num_frames: int
    default_fps: float | None
    """The frame rate every video was counted at (--fps, or a rate all sources share); None: ActionFormer reads
    each video's `fps` from the annotation file."""
    input_dim: int

    def as_dict(self) -> JsonObject:
        return {"feat_stride": self.feat_stride, "num_frames": self.num_frames, "default_fps": self.default_fps,
                "input_dim": self.input_dim}


def actionformer_config(values: ActionFormerValues, *, out: Path, label_ids: Mapping[str, int],
                        subsets: Sequence[str]) -> str:
    """The dataset part of an ActionFormer config (YAML) for this folder and its annotation file.

    `dataset_name: thumos` reads variable-length features exactly as written here, but its loader drops every
    annotation with label_id 4 (THUMOS14's CliffDiving, a subset of Diving); with a class of id 4 the config names
    `anet` instead, whose loader reads the same files and keeps every class. Splits follow the subsets present:
    THUMOS14's practice (train on `validation`, test on `test`) where those are the ones present.
    """
    names = sorted({s.lower() for s in subsets})
    if "training" in names:
        train = ["training"]
    elif "validation" in names and len(names) > 1:
        train = ["validation"]
    else:
        train = names[:1]
    rest = [name for name in names if name not in train]
    val = ["test"] if "test" in rest else rest[:1] or train
    dataset_name = "anet" if 4 in label_ids.values() else "thumos"
    lines = [
        "# ActionFormer config for V-JEPA 2 features written by `vjepa-tune features --format actionformer`.",
        "# Add the model, opt, loader, train_cfg and test_cfg sections of the config you start from",
        "# (configs/thumos_i3d.yaml in ActionFormer's repository); the dataset section below matches these files.",
    ]
    if dataset_name == "anet":
        lines.append("# `anet`, not `thumos`: ActionFormer's thumos loader drops every label_id 4 (CliffDiving).")
    if not label_ids:
        lines.append(f"# No --annotations given: write {ANNOTATIONS_FILE} in this layout and set num_classes.")
    if len(names) == 1:
        lines.append(f"# The annotations hold one subset ({names[0]}): training and validation use the same videos.")
    dataset = {
        "json_file": str(Path(out).resolve() / ANNOTATIONS_FILE),
        "feat_folder": str(Path(out).resolve()),
        "file_prefix": None,
        "file_ext": ".npy",
        "num_classes": len(label_ids) or None,
        "input_dim": values.input_dim,
        "feat_stride": values.feat_stride,
        "num_frames": values.num_frames,
        "default_fps": values.default_fps,
        "downsample_rate": 1,
        "trunc_thresh": 0.5,
        "crop_ratio": [0.9, 1.0],
        "max_seq_len": 2304,
    }
    lines += [f"dataset_name: {dataset_name}", f"train_split: {json.dumps(train)}", f"val_split: {json.dumps(val)}",
              "dataset: {"]
    lines += [f"  {key}: {_yaml_value(value)}," for key, value in dataset.items()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _yaml_value(value: object) -> str:
    """YAML's null as ActionFormer's configs write it; anything else as JSON, which YAML reads the same."""
    return "~" if value is None else json.dumps(value)


def write_actionformer_config(out: Path, text: str) -> Path:
    return write_text_atomic(Path(out) / ACTIONFORMER_CONFIG_FILE, text)
