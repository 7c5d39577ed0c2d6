"""What every reader shares: which files are videos, walking folders for them, sample ids, list-file lines and
messages that name the first few offenders.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from vjepa_tune.errors import BadInput

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"})
MAX_LISTED = 5
"""How many offending names a message or note spells out before it only counts the rest."""


def is_video(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def walk_videos(folder: Path) -> Iterator[tuple[str, str]]:
    """(full path, file name) of every video under `folder`, sorted, skipping hidden files and folders
    (`.git`, macOS `._x`). Plain strings: pathlib objects cost more than the walk on 100k-file data sets."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and is_video(name):
                yield os.path.join(dirpath, name), name


def video_files(folder: Path) -> Iterator[Path]:
    return (Path(full) for full, _ in walk_videos(folder))


def sample_id(path: Path | str, root: Path) -> str:
    """The path relative to the root with forward slashes; an absolute path for a video outside the root."""
    text, base = os.fspath(path), os.path.join(os.fspath(root), "")
    if text.startswith(base):
        return text[len(base) :].replace(os.sep, "/")
    return Path(text).absolute().as_posix()


def first_few(names: Iterable[object]) -> str:
    """The first few names and a count of the rest, for messages and notes."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:MAX_LISTED])
    return shown if len(names) <= MAX_LISTED else f"{shown} and {len(names) - MAX_LISTED} more"


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-blank, non-comment lines; CRLF and a UTF-8 BOM are tolerated."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadInput(f"{path} is not a UTF-8 text file ({err}).") from err
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def no_videos_error(root: Path, fmt: str, expected: str) -> BadInput:
    return BadInput(f"no videos found for --data.format {fmt} under {root}: expected {expected}.")


def videos_by_stem(folders: Iterable[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = defaultdict(list)
    seen: set[Path] = set()
    for folder in folders:
        if not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        for path in video_files(folder):
            found[path.stem].append(path)
    return found
