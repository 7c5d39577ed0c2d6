"""Reading a data set: the format's reader from a table (`READERS`), `auto` detection by looking at the files,
and groups declared by a file-name pattern.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from vjepa_tune.config import DataConfig, group_regex
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import VIDEO_EXTENSIONS, first_few
from vjepa_tune.data.sources.folder import read_folder
from vjepa_tune.data.sources.kinetics import kinetics_csvs, read_kinetics
from vjepa_tune.data.sources.list_file import read_list, root_list_file
from vjepa_tune.data.sources.ntu import looks_like_ntu, read_ntu
from vjepa_tune.data.sources.ssv2 import read_ssv2, ssv2_annotations
from vjepa_tune.data.sources.ucf101 import UCF_LISTS, UCF_VIDEOS, read_ucf101
from vjepa_tune.data.sources.videos import read_videos
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted, verb

READERS: dict[str, Callable[[DataConfig, Path, int], DatasetIndex]] = {
    "folder": read_folder,
    "list": read_list,
    "ntu": read_ntu,
    "ucf101": read_ucf101,
    "ssv2": read_ssv2,
    "kinetics": read_kinetics,
    "videos": read_videos,
}


def detect_format(root: Path, list_file: Path | None = None, list_groups: bool = False) -> str:
    """The layout of a data set, cheap checks first and a full scan last; `folder` when nothing else fits."""
    root = Path(root)
    if list_file is not None or list_groups:
        return "list"
    if (
        (root / UCF_LISTS / "classInd.txt").is_file()
        or (root / UCF_VIDEOS).is_dir()
        or root.name == UCF_VIDEOS
    ):
        return "ucf101"
    if ssv2_annotations(root) is not None:
        return "ssv2"
    if kinetics_csvs(root):
        return "kinetics"
    if looks_like_ntu(root):
        return "ntu"
    if root_list_file(root) is not None:
        return "list"
    return "folder"


def group_of(pattern: re.Pattern[str], name: str) -> str | None:
    """The group `--data.group_pattern` finds in a video's file name (searched without folders and extension):
    its named group `group`, else its first capture group; None when it does not match or captures nothing."""
    stem, ext = os.path.splitext(os.path.basename(name))
    found = pattern.search(stem if ext.lower() in VIDEO_EXTENSIONS else os.path.basename(name))
    if found is None:
        return None
    return found.group("group" if "group" in pattern.groupindex else 1) or None


def _apply_group_pattern(index: DatasetIndex, pattern: re.Pattern[str]) -> None:
    """Give every sample the group its file name names; a name without one is refused, listing the first few."""
    groups = [group_of(pattern, s.id) for s in index.samples]
    unmatched = [os.path.basename(s.id) for s, g in zip(index.samples, groups, strict=True) if g is None]
    if unmatched:
        raise BadInput(
            f"--data.group_pattern '{pattern.pattern}' finds no group in {len(unmatched)} of {len(groups)} video "
            f"file names: {first_few(unmatched)}. It is searched in each file name without its folders and extension "
            "(e.g. 'rec7_clip1' of walk/rec7_clip1.mp4) and must capture a non-empty group in every one."
        )
    replaced = index.has_groups
    index.samples = [
        Sample(s.path, s.label, s.id, group, s.official_split) for s, group in zip(index.samples, groups, strict=True)
    ]
    index.notes.append(
        f"groups from --data.group_pattern '{pattern.pattern}': {len(set(groups))} groups"
        + (f" (in place of the {index.format} format's own groups)." if replaced else ".")
    )


def _check_root(data: DataConfig) -> Path:
    if data.root is None:
        if data.list_file is not None and data.format in ("auto", "list"):
            return Path(data.list_file).parent
        raise BadInput("--data.root is required: the folder that holds the data set.")
    root = Path(data.root).expanduser()
    if not root.exists():
        raise BadInput(f"--data.root {root} does not exist.")
    if not root.is_dir():
        raise BadInput(f"--data.root {root} is not a folder.")
    if not any(root.iterdir()):
        raise BadInput(f"--data.root {root} is empty: no videos found.")
    return root


def read_dataset(data: DataConfig, seed: int = 42, *, unlabelled: bool = False) -> DatasetIndex:
    """Read the data set that `data` describes; `seed` keys the only random draw (NTU action4's `other`).

    `unlabelled` (pretraining, which ignores labels): with `auto`, a folder that no labelled layout fits is read as
    `videos` (every video at any depth) instead of `folder` (one class per subfolder, loose videos ignored), so a
    flat or nested folder of footage reads whole.
    """
    if data.format != "auto" and data.format not in READERS:
        raise BadInput(
            f"--data.format {data.format!r} is not a format; choose auto or one of {', '.join(READERS)}."
        )
    pattern = group_regex(data)
    root = _check_root(data)
    fmt = detect_format(root, data.list_file, data.list_groups) if data.format == "auto" else data.format
    if unlabelled and data.format == "auto" and fmt == "folder":
        fmt = "videos"
    index = READERS[fmt](data, root, seed)
    if pattern is not None:
        _apply_group_pattern(index, pattern)
    if data.format == "auto":
        index.notes.insert(0, f"format detected: {fmt} (set --data.format to override).")
    counts = Counter(s.label for s in index.samples)
    empty = [name for i, name in enumerate(index.classes) if counts[i] == 0]
    if empty:
        index.notes.append(f"{counted(len(empty), 'class')} {verb(len(empty), 'has', 'have')} no videos: "
                           f"{first_few(empty)}.")
    return index
