"""How fast the input pipeline makes training clips, and what `vjepa-tune data prepare` buys on 1080p sources.

One clip = decode the 16 frames that uniform sampling picks from a ~3 s, 30 fps video, then the ViT-L
training transform (RandomResizedCrop to 256, flip, normalise), exactly as `ClipDataset` does it in training.
Sources are synthetic videos (H.264 MP4) at 96x96, 320x240 and 1920x1080; the 1080p ones are measured again
after `data prepare` (short side 320). Each is timed by stage (read, transform: per clip) and whole,
through a DataLoader with 0 and 2 workers. The goal: a prepared 1080p data set is at least 8x cheaper to read.

    .venv/bin/python benchmarks/data_pipeline.py [--quick] [--work DIR]

Synthetic frames are simpler than camera footage (flat backgrounds, one figure), so they decode faster than
real 1080p video of the same size; the ratio before/after prepare is the figure to carry over, not the rates.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

try:
    import vjepa_tune  # noqa: F401
except ModuleNotFoundError:  # run from a checkout before `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import av
import torch
from torch.utils.data import DataLoader

from vjepa_tune.config import DataConfig
from vjepa_tune.data.dataset import ClipDataset, collate_clips
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.prepare import prepare_dataset
from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.transforms import ClipTransform
from vjepa_tune.synth import synthesize

CROP = 256
"""ViT-L's crop (facebook/vjepa2-vitl-fpc16-256-ssv2)."""
FRAMES_PER_CLIP = 16
FPS = 30
VIDEO_FRAMES = 90
SHORT_SIDE = 320
GOAL = 8.0
WORKER_COUNTS = (0, 2)
BATCH_SIZE = 4
PREPARED = f"1920x1080 prepared (short side {SHORT_SIDE})"


@dataclass(frozen=True)
class Source:
    name: str
    size: tuple[int, int]
    videos_per_class: int
    """Four classes, so 4 x this many videos."""
    clips: int
    """Clips read per measurement (the videos are read again and again, each time with a new view)."""


def sources(quick: bool) -> list[Source]:
    scale = 2 if quick else 1
    return [
        Source("96x96", (96, 96), 1 if quick else 2, 96 // scale),
        Source("320x240", (320, 240), 1 if quick else 2, 64 // scale),
        Source("1920x1080", (1920, 1080), 1, 16 // scale),
    ]


def _dataset(root: Path, clips: int) -> ClipDataset:
    """`clips` samples cycling over the videos under `root`, probed beforehand as training probes them."""
    index = read_dataset(DataConfig(root=root, format="folder"))
    infos, unreadable = probe_samples(index.samples, workers=2, progress=False)
    if unreadable:
        raise RuntimeError(f"unreadable benchmark videos: {unreadable}")
    samples = (index.samples * -(-clips // len(index.samples)))[:clips]
    dataset = ClipDataset(
        samples,
        frames_per_clip=FRAMES_PER_CLIP,
        sampling="uniform",
        frame_step=4,
        transform=ClipTransform(CROP, train=True),
        seed=0,
        infos=infos,
    )
    dataset.set_view(0)
    return dataset


@dataclass(frozen=True)
class Stages:
    """Milliseconds per clip, wall clock and CPU time of all this process's threads (the cost in
    core-milliseconds). Each video is read several times; its fastest reading is its cost, since other
    processes on a shared machine only ever add time; the figure is the mean over the videos."""

    read_ms: float
    read_cpu_ms: float
    transform_ms: float
    transform_cpu_ms: float


def stage_ms(root: Path, clips: int) -> Stages:
    """Reading (decoding the sampled frames) and the training transform, timed per clip in this process."""
    dataset = _dataset(root, clips)
    times: dict[str, dict[str, list[float]]] = {
        key: defaultdict(list) for key in ("read", "read_cpu", "transform", "transform_cpu")
    }
    for i, sample in enumerate(dataset.samples):
        info = dataset.infos[sample.id]
        wall, cpu = time.perf_counter(), time.process_time()
        frames = read_frames(sample.path, dataset.frame_indices(i), info)
        wall_read, cpu_read = time.perf_counter(), time.process_time()
        dataset.transform(frames, (0, sample.id, i, "transform"))
        times["read"][sample.id].append(wall_read - wall)
        times["read_cpu"][sample.id].append(cpu_read - cpu)
        times["transform"][sample.id].append(time.perf_counter() - wall_read)
        times["transform_cpu"][sample.id].append(time.process_time() - cpu_read)
    cost = {
        key: 1000 * statistics.mean(min(v) for v in per_video.values()) for key, per_video in times.items()
    }
    return Stages(cost["read"], cost["read_cpu"], cost["transform"], cost["transform_cpu"])


def clips_per_second(root: Path, clips: int, workers: int) -> float:
    """Whole-pipeline throughput (decode + sample + transform + collate) through a DataLoader, as training
    reads clips."""
    loader = DataLoader(
        _dataset(root, clips), batch_size=BATCH_SIZE, num_workers=workers, collate_fn=collate_clips
    )
    started = time.perf_counter()
    done = 0
    for batch in loader:
        if batch["skipped"]:
            raise RuntimeError(f"clips skipped during the benchmark: {batch['skipped_reasons']}")
        done += len(batch["labels"])
        assert batch["pixel_values_videos"].shape[1:] == (FRAMES_PER_CLIP, 3, CROP, CROP)
    return done / (time.perf_counter() - started)


@dataclass
class Row:
    label: str
    stages: Stages
    rates: dict[int, float]


def make_source(work: Path, source: Source) -> Path:
    root = work / source.name
    started = time.perf_counter()
    synthesize(
        root,
        layout="folder",
        videos_per_class=source.videos_per_class,
        size=source.size,
        frames=VIDEO_FRAMES,
        fps=FPS,
        seed=0,
        progress=True,
    )
    print(
        f"  {source.name}: {4 * source.videos_per_class} videos ready ({time.perf_counter() - started:.0f} s)"
    )
    return root


def run(work: Path, quick: bool) -> list[Row]:
    print(f"synthesizing sources ({VIDEO_FRAMES} frames at {FPS} fps) in {work}")
    roots = {s.name: make_source(work, s) for s in sources(quick)}
    big = next(s for s in sources(quick) if s.name == "1920x1080")

    print(f"preparing the 1080p data set (short side {SHORT_SIDE}), from scratch to time it")
    shutil.rmtree(work / "1080p-prepared", ignore_errors=True)
    summary = prepare_dataset(
        DataConfig(root=roots[big.name], format="folder"), work / "1080p-prepared", short_side=SHORT_SIDE
    )
    print("  " + summary.describe().replace("\n", "\n  "))

    rows = []
    plan = [(s.name, roots[s.name], s.clips) for s in sources(quick)]
    plan.append((PREPARED, work / "1080p-prepared", big.clips * 4))
    for label, root, clips in plan:
        stages = stage_ms(root, clips)
        print(
            f"  {label}: read {stages.read_ms:.0f} ms/clip ({stages.read_cpu_ms:.0f} CPU), transform "
            f"{stages.transform_ms:.0f} ms/clip ({stages.transform_cpu_ms:.0f} CPU)"
        )
        rates = {}
        for workers in WORKER_COUNTS:
            rates[workers] = clips_per_second(root, clips, workers)
            print(f"  {label}, {workers} workers: {rates[workers]:.2f} clips/s ({clips} clips)")
        rows.append(Row(label, stages, rates))
    return rows


def table(rows: list[Row]) -> str:
    loader_heads = " | ".join(f"DataLoader, {w} workers: clips/s" for w in WORKER_COUNTS)
    lines = [
        f"| source | read: ms/clip (CPU ms) | train transform: ms/clip (CPU ms) | {loader_heads} |",
        "|---|---:|---:|" + "---:|" * len(WORKER_COUNTS),
    ]
    for row in rows:
        st = row.stages
        rates = " | ".join(f"{row.rates[w]:.2f}" for w in WORKER_COUNTS)
        lines.append(
            f"| {row.label} | {st.read_ms:.0f} ({st.read_cpu_ms:.0f}) | {st.transform_ms:.0f} "
            f"({st.transform_cpu_ms:.0f}) | {rates} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Fewer videos and clips (about a third of the time)."
    )
    parser.add_argument("--work", type=Path, default=None, help="Keep the synthetic videos here (reused).")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="vjepa-bench-data-"))
    started = time.perf_counter()
    try:
        rows = run(work, args.quick)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    by_label = {row.label: row for row in rows}
    original, prepared = by_label["1920x1080"], by_label[PREPARED]
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), "
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"av {av.__version__}"
    )
    print(
        f"clip = {FRAMES_PER_CLIP} frames (uniform) of a {VIDEO_FRAMES}-frame {FPS} fps H.264 MP4, ViT-L "
        f"train transform to {CROP}x{CROP}; DataLoader batch {BATCH_SIZE}"
    )
    print(table(rows))
    before, after = original.stages, prepared.stages
    read_gain = before.read_cpu_ms / after.read_cpu_ms
    print(
        f"1080p read cost after prepare: {read_gain:.1f}x cheaper in CPU time, "
        f"{before.read_ms / after.read_ms:.1f}x in wall time "
        f"(goal {GOAL:g}x: {'met' if read_gain >= GOAL else 'NOT met'})"
    )
    clip_cpu = (before.read_cpu_ms + before.transform_cpu_ms) / (after.read_cpu_ms + after.transform_cpu_ms)
    print(f"1080p read + transform per clip: {clip_cpu:.1f}x cheaper in CPU time")
    for workers in WORKER_COUNTS:
        gain = prepared.rates[workers] / original.rates[workers]
        print(f"1080p DataLoader throughput, {workers} workers: {gain:.1f}x higher")
    print(f"total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
