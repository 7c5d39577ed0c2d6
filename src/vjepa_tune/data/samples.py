"""What every part of the pipeline passes around: labelled video samples and the class list.

A `Sample` is one video file with its label and group. `id` is the sample's stable identity (its path relative to the
data root, with forward slashes): it keys every random draw and every stored feature, so it must not depend on where
the data set is mounted. `group` is the unit that must never be split across train/val/test (the NTU performer, the
UCF-101 source-video group, or one declared with `--data.group_pattern` or `--data.list_groups`); `None` when the
data set has no groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    id: str
    group: str | None = None
    official_split: str | None = None
    """'train' or 'test' (or 'val') where the data set's own protocol assigns one; None otherwise."""

    @property
    def key(self) -> str:
        """The id without its video extension: what random draws are keyed on, so that a copy made by
        `data prepare` (every video becomes .mp4) gets the same splits, subsamples and augmentations."""
        return strip_video_extension(self.id)


def strip_video_extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return stem if dot and "/" not in ext else name


@dataclass
class DatasetIndex:
    """All samples of a data set, with its class names (index = label)."""

    samples: list[Sample]
    classes: list[str]
    format: str
    root: Path
    notes: list[str] = field(default_factory=list)
    """Human-readable remarks made while reading (e.g. how `other` was drawn); shown by `data check`."""

    @property
    def has_groups(self) -> bool:
        return any(s.group is not None for s in self.samples)

    @property
    def has_official_split(self) -> bool:
        return any(s.official_split is not None for s in self.samples)

    def counts(self, samples: list[Sample] | None = None) -> dict[str, int]:
        counts = {name: 0 for name in self.classes}
        for s in self.samples if samples is None else samples:
            counts[self.classes[s.label]] += 1
        return counts


@dataclass
class Splits:
    """train / val / test sample lists and how they were made."""

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    method: str
    """random, group, or official:<protocol>; said in logs and splits.json."""

    def items(self) -> list[tuple[str, list[Sample]]]:
        return [("train", self.train), ("val", self.val), ("test", self.test)]
