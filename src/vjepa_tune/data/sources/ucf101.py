"""UCF-101: UCF-101/<Class>/v_<Class>_gGG_cCC.avi with ucfTrainTestlist/ (classInd.txt and the three folds).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import first_few, no_videos_error, read_lines, sample_id, video_files
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted, verb

UCF_GROUP = re.compile(r"_g(\d+)_c\d+$", re.IGNORECASE)
UCF_VIDEOS = "UCF-101"
UCF_LISTS = "ucfTrainTestlist"


def _ucf_folders(root: Path) -> tuple[Path, Path | None]:
    """(the folder of class folders, the folder holding classInd.txt or None)."""
    video_dir = root / UCF_VIDEOS if (root / UCF_VIDEOS).is_dir() else root
    for lists in (root / UCF_LISTS, video_dir / UCF_LISTS, root.parent / UCF_LISTS, root):
        if (lists / "classInd.txt").is_file():
            return video_dir, lists
    return video_dir, None


def _ucf_class_index(lists: Path) -> list[str]:
    path = lists / "classInd.txt"
    numbered = []
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise BadInput(f"{path}, line {number}: expected `<1-based index> <ClassName>`, got {line!r}.")
        numbered.append((int(parts[0]), parts[1]))
    indices = sorted(i for i, _ in numbered)
    if indices != list(range(1, len(numbered) + 1)):
        raise BadInput(f"{path}: class indices must be 1..{len(numbered)} without gaps or repeats.")
    return [name for _, name in sorted(numbered)]


def _ucf_split_keys(path: Path) -> set[tuple[str, str]]:
    """(class folder, file stem), case-folded, of each `<Class>/<file>.avi [label]` line of a fold list."""
    keys = set()
    for number, line in read_lines(path):
        rel = line.split()[0].replace("\\", "/")
        if "/" not in rel:
            raise BadInput(f"{path}, line {number}: expected `<Class>/<file>.avi`, got {line!r}.")
        folder, name = rel.rsplit("/", 1)
        keys.add((folder.rsplit("/", 1)[-1].casefold(), os.path.splitext(name)[0].casefold()))
    return keys


def read_ucf101(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """UCF-101 with labels from classInd.txt and the class taken from the folder, never from the file name."""
    video_dir, lists = _ucf_folders(root)
    folders = sorted(
        p for p in video_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != UCF_LISTS
    )
    notes = []
    if lists is not None:
        classes = _ucf_class_index(lists)
        notes.append(f"labels from {lists / 'classInd.txt'} (1-based there, 0-based here).")
    else:
        classes = sorted((p.name for p in folders), key=lambda n: (n.casefold(), n))
        notes.append(
            f"no {UCF_LISTS}/classInd.txt found: classes are the folder names sorted case-insensitively, "
            "as classInd.txt orders them; there is no official split."
        )
    label_of = {name: i for i, name in enumerate(classes)}
    label_of_folded = {name.casefold(): i for i, name in enumerate(classes)}

    official: dict[tuple[str, str], str] = {}
    if lists is not None:
        train_list, test_list = lists / f"trainlist0{data.fold}.txt", lists / f"testlist0{data.fold}.txt"
        present = [p for p in (train_list, test_list) if p.is_file()]
        if len(present) == 2:
            official.update({k: "test" for k in _ucf_split_keys(test_list)})
            official.update({k: "train" for k in _ucf_split_keys(train_list)})
            notes.append(f"UCF-101 official split: fold {data.fold} ({train_list.name}, {test_list.name}).")
        elif data.split == "official":
            missing = [str(p) for p in (train_list, test_list) if not p.is_file()]
            raise BadInput(
                f"--data.fold {data.fold}: the official UCF-101 list {first_few(missing)} does not exist."
            )

    samples, unknown, ungrouped, unlisted = [], [], [], []
    for folder in folders:
        label = label_of.get(folder.name, label_of_folded.get(folder.name.casefold()))
        videos = list(video_files(folder))
        if label is None:
            if videos:
                unknown.append(folder.name)
            continue
        for path in videos:
            stem = path.stem
            match = UCF_GROUP.search(stem)
            if match is None:
                ungrouped.append(path.name)
            key = (folder.name.casefold(), stem.casefold())
            if official and key not in official:
                unlisted.append(path.name)
            samples.append(
                Sample(
                    path=path,
                    label=label,
                    id=sample_id(path, root),
                    group=f"g{int(match.group(1)):02d}" if match else None,
                    official_split=official.get(key),
                )
            )
    if unknown:
        raise BadInput(
            f"UCF-101 folders {first_few(unknown)} under {video_dir} are not classes of "
            f"{lists / 'classInd.txt' if lists else 'the data set'}; remove them or fix classInd.txt."
        )
    if not samples:
        raise no_videos_error(root, "ucf101", f"{video_dir}/<Class>/v_<Class>_gGG_cCC.avi")
    if ungrouped:
        notes.append(f"{counted(len(ungrouped), 'video')} {verb(len(ungrouped), 'has', 'have')} no _gGG_ group in "
                     f"{verb(len(ungrouped), 'its', 'their')} name: {first_few(ungrouped)}.")
    if unlisted:
        notes.append(f"{counted(len(unlisted), 'video')} {verb(len(unlisted), 'is', 'are')} in neither "
                     f"fold-{data.fold} list: {first_few(unlisted)}.")
    return DatasetIndex(samples=samples, classes=classes, format="ucf101", root=root, notes=notes)
