"""Which videos a run has already seen: the overlap of a list of videos with a run's training and validation
videos (what `evaluate`, `predict` and `data check --against` report).

A video counts as seen by a run when its resolved path is one that the run's splits.json lists under `train` or
`val`, or when its size and content fingerprint (`data.fingerprints`) equal those of a listed video: a copy, a
renamed or moved file; or, when the run trained on a `data prepare` copy, when it is the source of a listed video
(same place under the source folder that the copy's record names; a re-encoding shares no bytes with its source).
Test videos are not "seen": the run never trained or chose its epoch on them.

For runs recorded before splits.json held fingerprints, the identities of the listed files that still exist are
computed when needed; listed files that are gone cannot be recognised in a copy, and the overlap says how many there
were. The run folder itself is read by its owner (`runs.folder.training_videos`), which hands the recorded splits
here as a `TrainingVideos`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_tune.data.copies import prepared_source
from vjepa_tune.data.fingerprints import DEFAULT_WORKERS, FINGERPRINT_SCHEME, FileIdentity, file_identities
from vjepa_tune.data.samples import Splits

SEEN_SPLITS = ("train", "val")


@dataclass(frozen=True)
class SeenVideo:
    """A compared video that the run saw: the side of its split and the listed video it is."""

    split: str
    """train or val."""
    id: str
    """The id (path under the run's data root) of the listed video it matches."""
    by: str
    """path (the same file), content (a copy: equal size and fingerprint) or source (the video a `data prepare`
    copy the run trained on was made from)."""


@dataclass(frozen=True)
class Overlap:
    """How many of some videos a run saw in training, video by video."""

    run_dir: Path
    paths: list[Path]
    seen: list[SeenVideo | None]
    """Per compared path, in order: what it matches, or None for a video the run never saw."""
    sides: tuple[str, ...]
    """The sides of the run's split compared with: train and val, less the side being scored when it is one."""
    listed: int
    """Videos the run lists on those sides."""
    unrecognisable: int
    """Listed videos with no recorded identity whose file is gone: a copy of one of them would be missed."""
    data_root: Path | None
    prepared_from: Path | None = None
    """The sources' folder when the run's data root is a `data prepare` copy: its sources count as seen too."""

    @property
    def num_seen(self) -> int:
        return sum(1 for s in self.seen if s is not None)

    def unseen_paths(self) -> list[Path]:
        return [p for p, s in zip(self.paths, self.seen, strict=True) if s is None]

    def counts(self) -> dict[str, int]:
        """Seen videos per side of the run's split."""
        return {name: sum(1 for s in self.seen if s is not None and s.split == name) for name in SEEN_SPLITS}

    def seen_by(self, how: str) -> int:
        """Seen videos recognised by `how`: path, content or source (`SeenVideo.by`)."""
        return sum(1 for s in self.seen if s is not None and s.by == how)

    def as_dict(self, excluded: bool = False) -> dict[str, Any]:
        """The record kept in metrics.json and prediction documents; `excluded`: --exclude_seen left the seen
        videos out of what was scored."""
        counts = self.counts()
        return {
            "run_dir": str(self.run_dir),
            "videos": len(self.paths),
            "seen": self.num_seen,
            **counts,
            "by_path": self.seen_by("path"),
            "by_content": self.seen_by("content"),
            "by_source": self.seen_by("source"),
            "excluded": self.num_seen if excluded else 0,
            "compared_with": list(self.sides),
            "listed": self.listed,
            "unrecognisable": self.unrecognisable,
            "fingerprint": FINGERPRINT_SCHEME,
            "seen_videos": [
                {"path": str(p), "split": s.split, "matches": s.id, "by": s.by}
                for p, s in zip(self.paths, self.seen, strict=True)
                if s is not None
            ],
        }

    def describe(self, advice: str = "") -> str:
        """One line: `overlap: 27 of 32 videos were seen in training (train 22, val 5; 17 are copies under another
        path)`, then `advice` (what the caller does about them, said only when some were seen), then how many listed
        videos could not be compared."""
        n, k = len(self.paths), self.num_seen
        if k == 0:
            which = "the video was not" if n == 1 else f"none of the {_videos(n)} were"
            text = (
                f"overlap: {which} seen in training (compared by path and content with the run's "
                f"{_videos(self.listed, self._sides_text)}"
                + (f", and with their sources in {self.prepared_from}" if self.prepared_from is not None else "")
                + ")"
            )
        else:
            counts = self.counts()
            parts = ", ".join(f"{name} {counts[name]}" for name in self.sides if counts[name])
            if copies := self.seen_by("content"):
                parts += f"; {copies} {'is a copy' if copies == 1 else 'are copies'} under another path"
            if sources := self.seen_by("source"):
                parts += (f"; {sources} {'is the source' if sources == 1 else 'are the sources'} of the prepared "
                          "copies it trained on")
            text = f"overlap: {k} of {_videos(n)} {'was' if k == 1 else 'were'} seen in training ({parts}){advice}"
        if u := self.unrecognisable:
            where = f"gone from {self.data_root}" if self.data_root is not None else "not found"
            text += (
                f"; {u} of the run's {self.listed} {self._sides_text} videos {'is' if u == 1 else 'are'} {where} "
                f"and {'has' if u == 1 else 'have'} no recorded fingerprint: "
                f"{'a copy of it' if u == 1 else 'copies of them'} would not be recognised"
            )
        return text

    @property
    def _sides_text(self) -> str:
        return " and ".join(self.sides)


def _videos(n: int, kind: str = "") -> str:
    words = f"{kind} video" if kind else "video"
    return f"{n} {words}" if n == 1 else f"{n} {words}s"


def _resolved(path: Path) -> str:
    return os.path.realpath(path)


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@dataclass(frozen=True)
class TrainingVideos:
    """What a run recorded of the videos it was trained and validated on (`runs.folder.training_videos` reads it
    from a run folder's splits.json)."""

    run_dir: Path
    splits: Splits
    """The run's splits, paths under `data_root` (under the run folder when that is unknown)."""
    identities: dict[str, FileIdentity]
    """The size and fingerprint recorded per video id (none for runs recorded before they were)."""
    data_root: Path | None
    """Where the listed videos are: where they were when the run was trained (its data.root, else its list file's
    folder), or where the caller says the data set is now; None when neither is known."""


def seen_in_training(
    paths: Sequence[Path],
    run: TrainingVideos,
    *,
    sides: Sequence[str] = SEEN_SPLITS,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
) -> Overlap:
    """Which of `paths` the run trained or validated on (by path, or by size and fingerprint).

    `sides`: the sides of the run's split to compare with (scoring the run's own val split compares with train only).
    Only the videos whose size equals a listed video's are fingerprinted, so comparing unrelated data sets reads no
    content.
    """
    run_dir, splits, root = run.run_dir, run.splits, run.data_root
    unknown = [name for name in sides if name not in SEEN_SPLITS]
    if unknown or not sides:
        raise ValueError(f"sides must be some of {SEEN_SPLITS}, got {tuple(sides)}")
    sides = tuple(name for name in SEEN_SPLITS if name in sides)
    listed = [(name, s) for name, items in splits.items() if name in sides for s in items]
    known = dict(run.identities)

    paths = [Path(p) for p in paths]
    seen: list[SeenVideo | None] = [None] * len(paths)
    at_path: dict[str, tuple[str, str]] = {}
    if root is not None:
        for name, s in listed:
            at_path.setdefault(_resolved(s.path), (name, s.id))
    for i, p in enumerate(paths):
        if (hit := at_path.get(_resolved(p))) is not None:
            seen[i] = SeenVideo(hit[0], hit[1], "path")

    # Copies: compare sizes first (a stat each), fingerprint only where a size is shared.
    listed_sizes: dict[str, int] = {}
    unrecognisable = 0
    for _, s in listed:
        if s.id in known:
            listed_sizes[s.id] = known[s.id].size
        elif root is not None and (size := _size(s.path)) is not None:
            listed_sizes[s.id] = size
        else:
            unrecognisable += 1
    rest = [i for i in range(len(paths)) if seen[i] is None]
    rest_sizes = {i: _size(paths[i]) for i in rest}
    shared = set(listed_sizes.values()) & {size for size in rest_sizes.values() if size is not None}
    to_compare = [i for i in rest if rest_sizes[i] in shared]
    to_fingerprint = [s for _, s in listed if s.id not in known and listed_sizes.get(s.id) in shared]
    if to_compare:
        found = file_identities([paths[i] for i in to_compare] + [s.path for s in to_fingerprint], workers=workers,
                                progress=progress, desc="comparing with the run's videos")
        for s, identity in zip(to_fingerprint, found[len(to_compare):], strict=True):
            if identity is not None:
                known[s.id] = identity
        first: dict[FileIdentity, tuple[str, str]] = {}
        for name, s in listed:  # train before val: a video listed on both sides counts as train
            if s.id in known:
                first.setdefault(known[s.id], (name, s.id))
        for i, identity in zip(to_compare, found[: len(to_compare)], strict=True):
            if identity is not None and (hit := first.get(identity)) is not None:
                seen[i] = SeenVideo(hit[0], hit[1], "content")
    # Sources: a run trained on a `data prepare` copy saw its sources too (re-encoded: same frames, other bytes).
    source = prepared_source(root)
    if source is not None and root is not None:
        by_stem: dict[str, tuple[str, str]] = {}
        for name, s in listed:
            by_stem.setdefault(_stem_under(s.path, root), (name, s.id))
        for i in (i for i in range(len(paths)) if seen[i] is None):
            if (hit := by_stem.get(_stem_under(paths[i], source))) is not None:
                seen[i] = SeenVideo(hit[0], hit[1], "source")
    return Overlap(run_dir=run_dir, paths=paths, seen=seen, sides=sides, listed=len(listed),
                   unrecognisable=unrecognisable, data_root=root, prepared_from=source)


def _stem_under(path: Path, folder: Path) -> str:
    """`path`'s place under `folder` without its extension ('' when it lies elsewhere)."""
    relative = os.path.relpath(_resolved(path), _resolved(folder))
    return "" if relative.startswith("..") else os.path.splitext(relative)[0]
