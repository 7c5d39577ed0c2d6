"""What recording file identities costs: `train` fingerprints every video its splits list (`data.fingerprints`).

Writes N files of random bytes (several sizes, as a video data set has), then times `file_identities` over them
(threads, as training calls it) against a full sha256 of every file, the sound but unbounded alternative. The page
cache is warm for both (the files were just written, and training has just probed them); on a cold disk the
fingerprint reads at most 192 KiB per file where the full hash reads all of it, so the gap only widens.

    .venv/bin/python benchmarks/fingerprints.py [--files N] [--work DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

try:
    import vjepa_tune  # noqa: F401
except ModuleNotFoundError:  # run from a checkout before `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vjepa_tune.data import fingerprints
from vjepa_tune.data.fingerprints import file_identities

SIZES = (150 * 1024, 600 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024)
"""A 64 px clip, a UCF-101 clip, a 320 px prepared clip, a 1080p clip (bytes, about)."""


def _write(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    block = os.urandom(max(SIZES))
    paths = []
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        path = folder / f"video_{i:05d}.mp4"
        path.write_bytes(i.to_bytes(8, "little") + block[: size - 8])  # every file differs
        paths.append(path)
    return paths


def _full_sha256(paths: list[Path]) -> None:
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.work, prefix="fingerprints-"))
    try:
        paths = _write(work / "videos", args.files)
        total = sum(p.stat().st_size for p in paths)
        print(f"{len(paths)} files, {total / 2**30:.2f} GiB, sizes {', '.join(f'{s // 1024} KiB' for s in SIZES)}")
        for workers in (1, fingerprints.DEFAULT_WORKERS):
            fingerprints._identities.clear()  # nothing remembered from the previous pass
            start = time.perf_counter()
            file_identities(paths, workers=workers, progress=False)
            seconds = time.perf_counter() - start
            print(f"fingerprints, {workers} threads: {seconds:.2f} s, {len(paths) / seconds:,.0f} files/s")
        start = time.perf_counter()
        _full_sha256(paths)
        seconds = time.perf_counter() - start
        print(f"full sha256, 1 thread: {seconds:.2f} s, {len(paths) / seconds:,.0f} files/s")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
