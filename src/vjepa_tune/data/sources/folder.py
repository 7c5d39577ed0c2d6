"""The `folder` layout: root/<class>/**/<video>, one class per immediate subfolder.
"""

from __future__ import annotations

from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import (
    VIDEO_EXTENSIONS,
    first_few,
    is_video,
    no_videos_error,
    sample_id,
    video_files,
)
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted


def read_folder(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """One class per immediate subfolder of the root; videos may sit at any depth below their class folder."""
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and is_video(p.name))
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = {d.name: list(video_files(d)) for d in class_dirs}
    empty = [name for name, videos in per_class.items() if not videos]
    classes = sorted(name for name, videos in per_class.items() if videos)
    if not classes:
        if loose:
            raise BadInput(
                f"{root} holds {counted(len(loose), 'video')} ({first_few(loose)}) but no class folders: --data.format "
                f"folder expects {root}/<class>/<video>. Move the videos into one folder per class, or "
                "describe them in a list file (--data.format list --data.list_file FILE)."
            )
        raise no_videos_error(
            root, "folder", f"{root}/<class>/<video> with extensions {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    samples = [
        Sample(path=path, label=label, id=sample_id(path, root))
        for label, name in enumerate(classes)
        for path in per_class[name]
    ]
    notes = []
    if loose:
        notes.append(
            f"ignored {counted(len(loose), 'video')} directly in the root, outside any class folder: "
            f"{first_few(loose)}."
        )
    if empty:
        notes.append(f"ignored {counted(len(empty), 'folder')} without videos: {first_few(empty)}.")
    return DatasetIndex(samples=samples, classes=classes, format="folder", root=root, notes=notes)
