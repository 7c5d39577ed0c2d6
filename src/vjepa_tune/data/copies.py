"""The files of a prepared copy (`data prepare`): a video's new name, every output written aside under a name a rerun
recognises and renamed into place when whole, and the data set's other files copied, with the video names in its
text files rewritten to the new ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from vjepa_tune.data.sources import VIDEO_EXTENSIONS

MANIFEST = ".vjepa-tune-prepare.json"
"""Hidden record in a prepared copy's folder: its settings (a rerun must match them), its source folder, and the
sources that failed."""
OUTPUT_EXTENSION = ".mp4"
TEXT_EXTENSIONS = frozenset({".txt", ".csv", ".tsv", ".lst", ".list", ".json", ".jsonl"})
"""Files that may name videos (list files, split lists, annotations): their video names are rewritten."""

ASIDE_NAME = re.compile(r"^\..+\.prepare-\d+\.part$")
"""The names outputs are written under before they are whole: a killed run's leftovers are found by it."""
_VIDEO_NAME_END = re.compile(
    r"\.(?:" + "|".join(e.lstrip(".") for e in sorted(VIDEO_EXTENSIONS)) + r")(?=$|[\s,;\"'\])])",
    re.IGNORECASE | re.MULTILINE,
)
_NAME_START = re.compile(r"[\s,;\"'(\[/\\]")


def output_name(name: str) -> str:
    """'v_x_g01_c01.avi' -> 'v_x_g01_c01.mp4'."""
    return os.path.splitext(name)[0] + OUTPUT_EXTENSION


def aside_path(target: Path) -> Path:
    """Where `target` is written before it is whole: hidden, beside it, named by this process."""
    return target.with_name(f".{target.name}.prepare-{os.getpid()}.part")


def rewrite_video_names(text: str, renamed: dict[str, str]) -> str:
    """`text` with every video file name that is a key of `renamed` replaced by its value.

    A name is found by its extension and read back to the nearest path separator, space, comma or quote
    (trying each, so names with spaces are found too); text that names no known video is left as it is.
    """
    pieces: list[str] = []
    done = 0
    for match in _VIDEO_NAME_END.finditer(text):
        end = match.end()
        line_start = text.rfind("\n", 0, match.start()) + 1
        starts = [m.end() for m in _NAME_START.finditer(text, line_start, match.start())]
        for start in reversed([line_start, *starts]):
            if start < done or text[start] in "/\\":
                continue
            new = renamed.get(text[start:end])
            if new is not None:
                pieces += [text[done:start], new]
                done = end
                break
            if text[start - 1 : start] in ("/", "\\"):
                break  # a file name never reaches back past a separator
    pieces.append(text[done:])
    return "".join(pieces)


def write_aside(path: Path, data: bytes) -> None:
    """`data` into `path`, written aside and renamed into place."""
    part = aside_path(path)
    try:
        part.write_bytes(data)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def copy_file(
    source: Path, target: Path, renamed: dict[str, str], rewrite: bool, replace_prefix: tuple[str, str]
) -> str:
    """Copy one non-video file; text files that name videos are rewritten. Returns 'copied', 'rewritten' or
    'unchanged' (the target was already up to date)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if rewrite:
        raw = source.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            new = rewrite_video_names(text, renamed).replace(*replace_prefix)
            if new != text:
                data = new.encode("utf-8")
                if target.is_file() and target.read_bytes() == data:
                    return "unchanged"
                write_aside(target, data)
                return "rewritten"
    stat = source.stat()
    if target.is_file():
        have = target.stat()
        if have.st_size == stat.st_size and have.st_mtime_ns == stat.st_mtime_ns:
            return "unchanged"
    part = aside_path(target)
    try:
        shutil.copy2(source, part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return "copied"


def prepared_source(folder: Path | None) -> Path | None:
    """The folder `data prepare` made `folder` from, when `folder` is such a copy (its record names it); else None.

    A copy keeps each video's path under the folder, with the extension `.mp4`: the source of `copy/a/b.mp4` is the
    video `a/b.*` of the returned folder."""
    if folder is None:
        return None
    try:
        record = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = record.get("source") if isinstance(record, dict) else None
    return Path(source) if isinstance(source, str) else None
