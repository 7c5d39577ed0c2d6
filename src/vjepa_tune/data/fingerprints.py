"""The identity of a video file, by size and content fingerprint: what lets a run recognise a copy of a video it
saw (`data.overlap`), renamed, moved or re-uploaded.

The identity of a file is its size in bytes and its fingerprint: the sha256 of the whole file when it is at most
`WHOLE_FILE_BYTES` (192 KiB), else the sha256 of three `CHUNK_BYTES` (64 KiB) chunks read at its start, its middle
(offset `(size - 64 KiB) // 2`) and its end, concatenated. No file costs more than 192 KiB of reading whatever its
size, so recording every video of a large data set at training time reads a bounded amount per video, never the
whole data set. Two different files of equal size whose three chunks are equal would be taken for one; encoders do
not make such pairs (the middle and end of two encodings differ), an edit of bytes between the chunks could.

New runs record each listed video's size and fingerprint in splits.json (`data.splits.splits_to_json`), so the check
works after the original files moved or were deleted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 64 * 1024
CHUNKS = 3
WHOLE_FILE_BYTES = CHUNKS * CHUNK_BYTES
FINGERPRINT_SCHEME = "sha256:whole<=192KiB,else:3x64KiB@start,middle,end"
"""Names the fingerprint in splits.json: identities recorded under another scheme are not compared."""
DEFAULT_WORKERS = 8
"""Threads reading files: the work is waiting on the disk (hashlib and file reads release the GIL)."""


@dataclass(frozen=True)
class FileIdentity:
    """A file's size in bytes and the fingerprint of its content (see the module docstring)."""

    size: int
    fingerprint: str


_identities: dict[tuple[int, int, int, int, int], FileIdentity] = {}
"""Identities computed in this process, keyed on (device, inode, size, mtime, ctime): `compare` records the same
videos for every run of its grid, and any write to a file changes its key."""


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """The identity of one file; OSError when it cannot be read."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key in _identities:
            return _identities[key]
        size = st.st_size
        digest = hashlib.sha256()
        if size <= WHOLE_FILE_BYTES:
            digest.update(f.read())
        else:
            for offset in (0, (size - CHUNK_BYTES) // 2, size - CHUNK_BYTES):
                f.seek(offset)
                digest.update(f.read(CHUNK_BYTES))
    identity = FileIdentity(size, digest.hexdigest())
    _identities[key] = identity
    return identity


def _identity_or_none(path: Path) -> FileIdentity | None:
    try:
        return file_identity(path)
    except OSError:
        return None


def file_identities(
    paths: Sequence[Path], *, workers: int = DEFAULT_WORKERS, progress: bool = True, desc: str = "fingerprinting"
) -> list[FileIdentity | None]:
    """The identity of every file, in order, read by a pool of threads; None for a file that cannot be read."""
    from tqdm.auto import tqdm  # here, not at the top: what imports data.splits need not load tqdm

    out: list[FileIdentity | None] = []
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(paths), desc=desc, unit="file", disable=None if progress else True) as bar,
    ):
        for identity in pool.map(_identity_or_none, paths):
            out.append(identity)
            bar.update()
    return out
