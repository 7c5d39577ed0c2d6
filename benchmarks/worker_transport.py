"""What it costs to move clips from DataLoader workers to the main process, float32 against uint8.

The feature store's extraction on an H200 waited on its 14 decoding workers at 32 ViT-L clips/s while the backbone
ran 160+ (BENCHMARKS.md, "GPU"). Each clip crossed as 12.6 MB of float32 (16 x 3 x 256 x 256); since then the
workers hand over uint8 and the clips are normalised on the device. This measures the transport alone: the workers
do no work but allocate the clips, and the main process stacks them in batches, as extraction does.

    python benchmarks/worker_transport.py [--workers 0,2] [--videos 40] [--views 5] [--crop 256]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset


class _Views(Dataset):
    """One item per video: `views` clips of (16, 3, crop, crop), as `_ViewsDataset` yields them."""

    def __init__(self, videos: int, views: int, crop: int, dtype: torch.dtype):
        self.videos, self.views, self.crop, self.dtype = videos, views, crop, dtype

    def __len__(self) -> int:
        return self.videos

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return [torch.full((16, 3, self.crop, self.crop), i % 7, dtype=self.dtype) for _ in range(self.views)]


def clips_per_second(workers: int, dtype: torch.dtype, videos: int, views: int, crop: int, batch: int = 8) -> float:
    loader = DataLoader(_Views(videos, views, crop, dtype), batch_size=None, num_workers=workers)
    started, done, pending = time.perf_counter(), 0, []
    for clips in loader:
        pending += clips
        while len(pending) >= batch:
            torch.stack(pending[:batch])
            pending, done = pending[batch:], done + batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,2", help="Comma-separated worker counts.")
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--crop", type=int, default=256)
    args = parser.parse_args()
    mib = 16 * 3 * args.crop**2 / 2**20
    print(f"| workers | float32 clips/s ({4 * mib:.1f} MiB each) | uint8 clips/s ({mib:.1f} MiB each) | ratio |")
    print("|---:|---:|---:|---:|")
    for workers in (int(w) for w in args.workers.split(",")):
        floats = clips_per_second(workers, torch.float32, args.videos, args.views, args.crop)
        bytes_ = clips_per_second(workers, torch.uint8, args.videos, args.views, args.crop)
        print(f"| {workers} | {floats:.0f} | {bytes_:.0f} | {bytes_ / floats:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
