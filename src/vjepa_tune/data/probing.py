"""Probing a data set's videos: every video once per process, in a thread pool, unreadable ones set aside.

Kept apart from `dataset.py` (clips for training, which needs torch) so that `data check`, which only probes,
starts without importing torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from vjepa_tune.data.samples import Sample
from vjepa_tune.data.video import UnreadableVideo, VideoInfo, probe_video

_probed: dict[tuple[str, int, int, int, int], VideoInfo] = {}
"""Infos of videos probed in this process, keyed by (path, inode, size, modification and change times): `compare`
would otherwise probe the same videos again for every strategy of its grid. A rewritten or replaced file has a new key
(a copy that keeps the modification time still gets a new change time); failures are never kept."""


def _probe_one(sample: Sample) -> VideoInfo | str:
    try:
        stat = os.stat(sample.path)
        key = (str(sample.path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    except OSError:
        key = None
    if key in _probed:
        return _probed[key]
    try:
        info = probe_video(sample.path)
    except UnreadableVideo as exc:
        return exc.reason
    if key is not None:
        _probed[key] = info
    return info


def probe_samples(
    samples: Sequence[Sample], workers: int = 2, progress: bool = True
) -> tuple[dict[str, VideoInfo], list[tuple[Sample, str]]]:
    """Probe every video once, in a thread pool (PyAV releases the GIL while reading).

    Returns the infos keyed by sample id and the unreadable samples with their reasons, in input order. The
    caller leaves the unreadable ones out and reports them; nothing replaces them.
    """
    infos: dict[str, VideoInfo] = {}
    unreadable: list[tuple[Sample, str]] = []
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(
            total=len(samples), desc="probing videos", unit="video", disable=None if progress else True
        ) as bar,
    ):
        for sample, result in zip(samples, pool.map(_probe_one, samples), strict=True):
            if isinstance(result, VideoInfo):
                infos[sample.id] = result
            else:
                unreadable.append((sample, result))
            bar.update()
    return infos, unreadable
