"""The `videos` layout: every video under the root, at any depth, without labels (`vjepa-tune pretrain`'s footage).

Folders mean nothing here: root/2024-06/cam1/a.mp4 and root/b.mp4 are two videos alike. The index has one class,
`unlabelled`, so that what reads an index (`data check`, splits) works on it unchanged; `train` refuses the format.
"""

from __future__ import annotations

from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import VIDEO_EXTENSIONS, no_videos_error, sample_id, walk_videos

UNLABELLED = "unlabelled"
"""The one class name of a `videos` index."""


def read_videos(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """Every video file under `root` (hidden files and folders skipped), sorted by path, all of class 0."""
    samples = sorted((Sample(path=Path(full), label=0, id=sample_id(full, root)) for full, _ in walk_videos(root)),
                     key=lambda s: s.id)
    if not samples:
        raise no_videos_error(root, "videos", f"video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) at any depth")
    return DatasetIndex(samples=samples, classes=[UNLABELLED], format="videos", root=root)
