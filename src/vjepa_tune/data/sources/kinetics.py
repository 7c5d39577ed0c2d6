"""Kinetics: CSVs of label,youtube_id,time_start,time_end,split and <youtube_id>_<start:06d>_<end:06d>.mp4 videos.
"""

from __future__ import annotations

import csv
from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import first_few, no_videos_error, sample_id, videos_by_stem
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted, verb

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
KINETICS_SPLITS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}


def kinetics_csvs(root: Path) -> list[Path]:
    found = []
    for folder in (root, root / "annotations"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.csv")):
            try:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    header = next(csv.reader(handle), [])
            except (OSError, UnicodeDecodeError):
                continue
            if set(KINETICS_COLUMNS) <= {h.strip() for h in header}:
                found.append(path)
    return found


def read_kinetics(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """Kinetics from its CSVs; videos never downloaded are noted, not fatal (Kinetics always has some)."""
    csv_files = kinetics_csvs(root)
    if not csv_files:
        raise BadInput(
            f"--data.format kinetics: no CSV with columns {','.join(KINETICS_COLUMNS)} in {root} or "
            f"{root}/annotations."
        )
    stems = videos_by_stem([root])
    rows = []
    for path in csv_files:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for line_number, row in enumerate(csv.DictReader(handle), start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                split = KINETICS_SPLITS.get(row["split"].lower())
                try:
                    start, end = int(float(row["time_start"])), int(float(row["time_end"]))
                except ValueError as err:
                    raise BadInput(
                        f"{path}, line {line_number}: time_start/time_end must be numbers, got "
                        f"{row['time_start']!r}/{row['time_end']!r}."
                    ) from err
                if split is None:
                    raise BadInput(
                        f"{path}, line {line_number}: split {row['split']!r} is not one of "
                        f"{', '.join(KINETICS_SPLITS)}."
                    )
                rows.append((row["label"], f"{row['youtube_id']}_{start:06d}_{end:06d}", split))

    unlabelled = sum(1 for label, _, _ in rows if not label)
    classes = sorted({label for label, _, _ in rows if label})
    label_of = {name: i for i, name in enumerate(classes)}
    samples, missing = [], []
    for label, stem, split in rows:
        if not label:
            continue
        paths = stems.get(stem)
        if not paths:
            missing.append(stem)
            continue
        path = next((p for p in paths if label in p.relative_to(root).parts), paths[0])
        samples.append(
            Sample(path=path, label=label_of[label], id=sample_id(path, root), official_split=split)
        )
    if not samples:
        raise no_videos_error(
            root,
            "kinetics",
            f"<youtube_id>_<start:06d>_<end:06d>.mp4 files for the rows of {first_few(csv_files)}",
        )
    notes = [f"read {len(rows)} rows from {first_few(p.name for p in csv_files)}."]
    if missing:
        notes.append(
            f"{len(missing)} of {counted(len(rows) - unlabelled, 'listed video')} {verb(len(missing), 'is', 'are')} "
            "missing (normal for Kinetics): "
            f"{first_few(missing)}."
        )
    if unlabelled:
        notes.append(f"skipped {counted(unlabelled, 'row')} without a label (an unlabelled test set).")
    return DatasetIndex(samples=samples, classes=classes, format="kinetics", root=root, notes=notes)
