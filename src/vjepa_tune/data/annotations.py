"""The detection annotation file: actions in seconds per video, in the ActivityNet/THUMOS JSON layout.

    {"database": {VIDEO_KEY: {"subset": "test", "duration": 212.3, "fps": 30.0,
                              "annotations": [{"label": "waving", "label_id": 1, "segment": [3.2, 7.9]}]}}}

This is the layout of ActionFormer's `thumos14.json`, kept exactly so that ActionFormer takes our files unchanged:
its THUMOS14 dataset (`libs/datasets/thumos14.py`) reads `database`, and per video `subset` (compared in lower case
with the split names), `fps` (unless the config sets `default_fps`), `duration` and `annotations`, each with `label`,
`label_id` (its class index: it builds `label -> label_id` from every video and asserts it has `num_classes`
entries) and `segment` ([start, end] in seconds); its evaluation reads `label_id` too. So every one of these keys is
required here, a label has one id and an id one label across the whole file, and ids are class indices (whole
numbers >= 0). They need not run 0..n-1 here, since a file may hold only some of a model's classes; ActionFormer
trains only on a file whose ids are exactly 0..num_classes-1, each in use. Any other key (ActivityNet's `version`,
`taxonomy`, `url`, `resolution`; THUMOS's `segment(frames)`) is kept as it is and written back; subsets other than
the usual training/validation/test are allowed.

A segment must end after it starts, start at 0 or later and end within the video: by the duration plus half a
frame, since durations and times are both rounded to frames. This module is the one reader and writer of the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_json_atomic

DATABASE_KEY = "database"
_VIDEO_KEYS = ("subset", "duration", "fps", "annotations")
_ANNOTATION_KEYS = ("label", "label_id", "segment")
JsonValue = object
"""A value as json.load returns it (dict, list, str, int, float, bool or None)."""


@dataclass(frozen=True)
class Segment:
    """A labelled stretch [start_s, end_s) of one video: a ground-truth action, as detection scoring takes it
    (`evaluation.detection`)."""

    label: str
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)) or self.end_s <= self.start_s:
            raise ValueError(f"a segment must end after it starts, got {self.label!r} [{self.start_s}, {self.end_s}]")

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class AnnotatedSegment:
    """One action instance of a video: its class and when it happens."""

    label: str
    label_id: int
    start_s: float
    end_s: float
    extra: Mapping[str, JsonValue] = field(default_factory=dict)
    """Keys of the annotation other than label, label_id and segment, kept as read."""

    def __post_init__(self) -> None:
        _check_extra(self.extra, _ANNOTATION_KEYS)


@dataclass(frozen=True)
class AnnotatedVideo:
    """One video's entry: which subset it belongs to, how long it is, and its actions (possibly none)."""

    subset: str
    duration_s: float
    fps: float
    segments: tuple[AnnotatedSegment, ...] = ()
    extra: Mapping[str, JsonValue] = field(default_factory=dict)
    """Keys of the entry other than subset, duration, fps and annotations, kept as read."""

    def __post_init__(self) -> None:
        _check_extra(self.extra, _VIDEO_KEYS)


@dataclass(frozen=True)
class DetectionAnnotations:
    """Every video of an annotation file, by key, in the file's order."""

    videos: dict[str, AnnotatedVideo]
    extra: Mapping[str, JsonValue] = field(default_factory=dict)
    """Top-level keys other than "database" (ActivityNet's `version`, `taxonomy`), kept as read."""

    def __post_init__(self) -> None:
        _check_extra(self.extra, (DATABASE_KEY,))

    def label_ids(self) -> dict[str, int]:
        """Label -> label_id over every video, in id order: the map ActionFormer builds from the file."""
        found = {s.label: s.label_id for video in self.videos.values() for s in video.segments}
        return dict(sorted(found.items(), key=lambda item: item[1]))

    def in_subsets(self, *subsets: str) -> DetectionAnnotations:
        """The videos of the given subsets, compared in lower case as ActionFormer compares them."""
        wanted = {name.lower() for name in subsets}
        kept = {key: video for key, video in self.videos.items() if video.subset.lower() in wanted}
        return DetectionAnnotations(kept, self.extra)

    def ground_truth(self) -> dict[str, list[Segment]]:
        """Video -> its segments, every video included (those without actions too), for `evaluate_detection`."""
        return {
            key: [Segment(s.label, s.start_s, s.end_s) for s in video.segments] for key, video in self.videos.items()
        }


# ------------------------------------------------------------------------------------------------ reading
def read_annotations(path: Path) -> DetectionAnnotations:
    """Read and check an annotation file; any problem is a BadInput naming the file, the video and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read the annotation file {path}: {e.strerror or e}.") from e
    except UnicodeDecodeError as e:
        raise BadInput(f"{path} is not a UTF-8 text file, so not an annotation file: {e}.") from e
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise BadInput(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}.") from e
    if not isinstance(data, dict) or not isinstance(data.get(DATABASE_KEY), dict):
        raise BadInput(
            f'{path}: an annotation file is a JSON object whose "{DATABASE_KEY}" object holds one entry per video, '
            'each with "subset", "duration", "fps" and "annotations" (the ActivityNet/THUMOS layout).'
        )
    videos = {key: _read_video(path, key, entry) for key, entry in data[DATABASE_KEY].items()}
    annotations = DetectionAnnotations(videos, {k: v for k, v in data.items() if k != DATABASE_KEY})
    check_annotations(annotations, str(path))
    return annotations


def _no_duplicate_keys(path: Path) -> Callable[[list[tuple[str, JsonValue]]], dict[str, JsonValue]]:
    """A json.loads hook: json keeps the last of two equal keys silently, which would drop a video or a field."""

    def pairs_to_dict(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        for key, value in pairs:
            if key in out:
                raise BadInput(f"{path}: the key {key!r} appears twice in one object; which one is meant is unclear.")
            out[key] = value
        return out

    return pairs_to_dict


def _read_video(path: Path, key: str, entry: JsonValue) -> AnnotatedVideo:
    where = f"{path}, video {key!r}"
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: the entry must be a JSON object, got {type(entry).__name__}.")
    _require_keys(where, entry, _VIDEO_KEYS)
    subset = entry["subset"]
    if not isinstance(subset, str):
        raise BadInput(f'{where}: "subset" must be a string, got {subset!r}.')
    annotations = entry["annotations"]
    if not isinstance(annotations, list):
        raise BadInput(f'{where}: "annotations" must be a list, got {type(annotations).__name__}.')
    return AnnotatedVideo(
        subset=subset,
        duration_s=_number(where, "duration", entry["duration"]),
        fps=_number(where, "fps", entry["fps"]),
        segments=tuple(_read_segment(f"{where}, annotation {i}", item) for i, item in enumerate(annotations)),
        extra={k: v for k, v in entry.items() if k not in _VIDEO_KEYS},
    )


def _read_segment(where: str, item: JsonValue) -> AnnotatedSegment:
    if not isinstance(item, dict):
        raise BadInput(f"{where}: an annotation must be a JSON object, got {type(item).__name__}.")
    _require_keys(where, item, _ANNOTATION_KEYS)
    label, label_id, bounds = item["label"], item["label_id"], item["segment"]
    if not isinstance(label, str) or not label:
        raise BadInput(f'{where}: "label" must be a non-empty string, got {label!r}.')
    if isinstance(label_id, bool) or not isinstance(label_id, int):
        raise BadInput(f'{where}: "label_id" must be a whole number (the class index), got {label_id!r}.')
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise BadInput(f'{where}: "segment" must be [start, end] in seconds, got {bounds!r}.')
    return AnnotatedSegment(
        label=label,
        label_id=label_id,
        start_s=_number(where, "segment", bounds[0]),
        end_s=_number(where, "segment", bounds[1]),
        extra={k: v for k, v in item.items() if k not in _ANNOTATION_KEYS},
    )


def _require_keys(where: str, entry: Mapping[str, JsonValue], keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        names = ", ".join(f'"{k}"' for k in missing)
        raise BadInput(f"{where}: missing {names} (present: {', '.join(entry) or 'nothing'}).")


def _number(where: str, name: str, value: JsonValue) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f'{where}: "{name}" must be a finite number, got {value!r}.')
    return float(value)


# ------------------------------------------------------------------------------------------------ checking
def check_annotations(annotations: DetectionAnnotations, source: str) -> None:
    """Raise BadInput, naming `source` (the file), the video and the field, at the first value that breaks the
    rules in the module docstring. Run on reading and before writing, so that a written file always reads back."""
    id_of: dict[str, tuple[int, str]] = {}
    label_of: dict[int, tuple[str, str]] = {}
    for key, video in annotations.videos.items():
        where = f"{source}, video {key!r}"
        if not video.subset:
            raise BadInput(f'{where}: "subset" must not be empty.')
        if not (math.isfinite(video.duration_s) and video.duration_s > 0):
            raise BadInput(f'{where}: "duration" must be a positive number of seconds, got {video.duration_s!r}.')
        if not (math.isfinite(video.fps) and video.fps > 0):
            raise BadInput(f'{where}: "fps" must be a positive number, got {video.fps!r}.')
        latest_end = video.duration_s + 0.5 / video.fps
        for i, s in enumerate(video.segments):
            here = f"{where}, annotation {i} ({s.label!r})"
            if not s.label:
                raise BadInput(f'{here}: "label" must not be empty.')
            if s.label_id < 0:
                raise BadInput(f'{here}: "label_id" must be a class index >= 0, got {s.label_id}.')
            if not s.end_s > s.start_s:
                raise BadInput(f'{here}: "segment" must end after it starts, got [{s.start_s}, {s.end_s}].')
            if s.start_s < 0 or s.end_s > latest_end:
                raise BadInput(
                    f'{here}: "segment" [{s.start_s}, {s.end_s}] lies outside the video, which lasts '
                    f"{video.duration_s} s."
                )
            first_id, first_key = id_of.setdefault(s.label, (s.label_id, key))
            if first_id != s.label_id:
                raise BadInput(
                    f'{here}: "label_id" {s.label_id}, but {s.label!r} has label_id {first_id} in video '
                    f"{first_key!r}; a label has one id throughout the file."
                )
            first_label, first_key = label_of.setdefault(s.label_id, (s.label, key))
            if first_label != s.label:
                raise BadInput(
                    f'{here}: "label_id" {s.label_id} is already the id of {first_label!r} in video '
                    f"{first_key!r}; an id names one label throughout the file."
                )


def _check_extra(extra: Mapping[str, JsonValue], known: Iterable[str]) -> None:
    clash = sorted(set(extra) & set(known))
    if clash:
        raise ValueError(f"extra keys must not repeat the fields read and written by name: {clash}")


# ------------------------------------------------------------------------------------------------ writing
def write_annotations(path: Path, annotations: DetectionAnnotations) -> Path:
    """Write the file atomically (a temporary file renamed into place, with the umask's permissions), after the
    same checks as reading, so that nothing unreadable is ever written."""
    path = Path(path)
    check_annotations(annotations, str(path))
    database = {
        key: {
            "subset": video.subset,
            "duration": video.duration_s,
            "fps": video.fps,
            "annotations": [
                {"label": s.label, "label_id": s.label_id, "segment": [s.start_s, s.end_s], **s.extra}
                for s in video.segments
            ],
            **video.extra,
        }
        for key, video in annotations.videos.items()
    }
    return write_json_atomic(path, {DATABASE_KEY: database, **annotations.extra})
