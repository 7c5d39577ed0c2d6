"""Something-Something v2: labels.json, train.json, validation.json and <id>.webm videos.
"""

from __future__ import annotations

import json
from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import first_few, no_videos_error, sample_id, videos_by_stem
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted, verb

SSV2_ANNOTATION_DIRS = (".", "labels", "annotations")
SSV2_VIDEO_DIRS = (".", "videos", "20bn-something-something-v2")
SSV2_SPLIT_FILES = {"train.json": "train", "validation.json": "test"}
"""The official validation set is the test side; validation for model selection is carved from train."""


def ssv2_annotations(root: Path) -> Path | None:
    for sub in SSV2_ANNOTATION_DIRS:
        folder = root / sub
        if (folder / "labels.json").is_file() and any((folder / f).is_file() for f in SSV2_SPLIT_FILES):
            return folder
    return None


def read_ssv2(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """Something-Something v2; class = template with its brackets removed, as labels.json spells it."""
    annotations = ssv2_annotations(root)
    if annotations is None:
        raise BadInput(
            f"--data.format ssv2: no labels.json with train.json or validation.json in {root} or its "
            f"{', '.join(SSV2_ANNOTATION_DIRS[1:])} folders."
        )
    labels_path = annotations / "labels.json"
    labels = _read_json(labels_path)
    if not isinstance(labels, dict) or not all(str(v).isdigit() for v in labels.values()):
        raise BadInput(
            f'{labels_path}: expected an object mapping template text to an id string such as "0".'
        )
    by_id = sorted(labels.items(), key=lambda kv: int(kv[1]))
    classes = [template for template, _ in by_id]
    label_of = {template: i for i, template in enumerate(classes)}

    stems = videos_by_stem(root / sub for sub in SSV2_VIDEO_DIRS)
    samples, missing, notes = [], [], []
    for file_name, role in SSV2_SPLIT_FILES.items():
        path = annotations / file_name
        if not path.is_file():
            notes.append(f"no {file_name}: no official {role} side.")
            continue
        entries = _read_json(path)
        if not isinstance(entries, list):
            raise BadInput(f'{path}: expected a list of {{"id", "template"}} entries.')
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise BadInput(
                    f'{path}, entry {n}: expected an object with "id" and "template", got {entry!r}.'
                )
            template = str(entry["template"]).replace("[", "").replace("]", "")
            if template not in label_of:
                raise BadInput(
                    f"{path}, entry {n} (id {entry['id']}): template {template!r} is not a label of "
                    f"{labels_path}."
                )
            video_id = str(entry["id"])
            paths = stems.get(video_id)
            if not paths:
                missing.append(video_id)
                continue
            samples.append(
                Sample(
                    path=paths[0],
                    label=label_of[template],
                    id=sample_id(paths[0], root),
                    official_split=role,
                )
            )
    if not samples:
        raise no_videos_error(root, "ssv2", f"<id>.webm files in {first_few(str(root / s) for s in SSV2_VIDEO_DIRS)}")
    if missing:
        notes.append(f"{counted(len(missing), 'annotated video')} {verb(len(missing), 'is', 'are')} missing: "
                     f"{first_few(missing)}.")
    notes.append(
        "official split: train.json = train, validation.json = test; validation is carved from train."
    )
    return DatasetIndex(samples=samples, classes=classes, format="ssv2", root=root, notes=notes)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"{path} is not valid JSON: {err}.") from err
