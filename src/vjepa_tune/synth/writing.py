"""`vjepa-tune synth`: write a labelled data set of synthetic action videos in one of the layouts the readers
accept, resumably, with as many processes as there are CPUs; the files do not depend on the number of processes.

Each video is a pure function of (seed, class, video index): the keyed draws of `vjepa_tune.randomness`. A record
of the arguments (`synth.json`) makes a rerun skip finished files and refuse to mix two generations in one folder.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vjepa_tune.data.annotations import DetectionAnnotations, write_annotations
from vjepa_tune.data.video import usable_cpus
from vjepa_tune.errors import BadInput
from vjepa_tune.synth.actions import CLASSES
from vjepa_tune.synth.clips import check_size, is_whole
from vjepa_tune.synth.encoding import write_video
from vjepa_tune.synth.layouts import LAYOUTS, Job, plan, write_lines, write_side_files
from vjepa_tune.synth.recordings import (
    check_recording_settings,
    plan_recording,
    recording_annotation,
    recording_subset,
)
from vjepa_tune.synth.render import render_spec
from vjepa_tune.text import counted

MANIFEST = "synth.json"
LONG_VIDEO_DIR = "videos"
ANNOTATIONS_FILE = "annotations.json"
GENERATOR_VERSION = 1
"""Bumped whenever the same arguments would draw different videos, so a rerun never mixes two generations."""


@dataclass
class SynthSummary:
    """What `synthesize` made, and the flags that read it back."""

    out_dir: Path
    layout: str
    root: Path
    """The folder to pass as --data.root."""
    num_files: int
    written: int
    skipped: int
    per_class: dict[str, int]
    elapsed_s: float
    list_file: Path | None = None
    """The list file to pass as --data.list_file (layout list)."""

    def describe(self) -> str:
        """Two lines for the command line: what was written, and the flags that read it."""
        counts = ", ".join(f"{name} {count}" for name, count in self.per_class.items())
        return (
            f"{counted(self.num_files, 'video')} in {self.out_dir} (layout {self.layout}; {self.written} written, "
            f"{self.skipped} already there) in {self.elapsed_s:.1f} s: {counts}.\n"
            f"Read them with: {' '.join(self.data_flags())}"
        )

    def data_flags(self) -> list[str]:
        """Command-line flags that point a reader at these videos."""
        flags = ["--data.root", str(self.root), "--data.format", self.layout]
        if self.list_file is not None:
            flags += ["--data.list_file", str(self.list_file)]
        return flags


def parse_size(text: str) -> tuple[int, int]:
    """'96' -> (96, 96); '320x240' -> (320, 240) as (width, height)."""
    parts = str(text).strip().lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise BadInput(f"--size must be PIXELS or WIDTHxHEIGHT (e.g. 96 or 320x240), got {text!r}.")
    values = [int(p) for p in parts]
    return check_size((values[0], values[-1]))

def _check_whole(flag: str, value: object, minimum: int) -> int:
    if not is_whole(value) or value < minimum:  # type: ignore[operator]
        raise BadInput(f"{flag} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)  # type: ignore[call-overload]


def _render_and_write(out_dir: Path, job: Job, fps: int) -> str:
    path = out_dir / job.relpath
    write_video(path, render_spec(job.spec), fps)
    return job.relpath


def _claim_out_dir(out_dir: Path, manifest: dict[str, object]) -> None:
    """Refuse to mix two generations in one folder, or to write into a folder synth did not make."""
    record = out_dir / MANIFEST
    if record.exists():
        try:
            previous = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            raise BadInput(
                f"{record} is not a readable synth record ({err}); delete it or choose another OUT_DIR."
            ) from err
        if previous != manifest:
            changed = sorted(
                k for k in manifest.keys() | previous.keys() if previous.get(k) != manifest.get(k)
            )
            raise BadInput(
                f"{out_dir} holds videos synthesized with other settings ({', '.join(changed)} differ; "
                f"before: { {k: previous.get(k) for k in changed} }); use an empty OUT_DIR or the same "
                "arguments."
            )
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"OUT_DIR {out_dir} is a file; give a folder to write the videos into.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BadInput(f"{out_dir} is not empty and was not made by synth; choose an empty or new OUT_DIR.")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_lines(record, [json.dumps(manifest, indent=2)])


def synthesize(
    out_dir: Path,
    *,
    layout: str = "folder",
    videos_per_class: int = 50,
    size: tuple[int, int] | str = (96, 96),
    frames: int = 32,
    fps: int = 25,
    seed: int = 0,
    variety: float = 1.0,
    workers: int | None = None,
    progress: bool = True,
) -> SynthSummary:
    """Write `videos_per_class` stick-figure videos of each class in `layout`; files already there are kept.

    `size` is (width, height) or text for `parse_size`. `variety` 1 draws the full visual variety (small,
    off-centre, thin figures, textured backgrounds, camera shake); 0 moves every video to a large, centred,
    thick figure on a flat background with a still camera (`ease_figure_spec`); the motions are the same.
    `workers` processes render and encode (default: one
    per CPU; 0 or 1 = in this process); the output does not depend on it.
    """
    started = time.perf_counter()
    if layout not in LAYOUTS:
        raise BadInput(f"--layout {layout!r} is not a layout; choose one of {', '.join(LAYOUTS)}.")
    _check_whole("--videos_per_class", videos_per_class, 1)
    if layout == "ucf101" and videos_per_class > 99 * 99:
        raise BadInput(
            f"--videos_per_class {videos_per_class} is too many for --layout ucf101: its names allow 99 "
            "groups of 99 clips (9801) per class."
        )
    _check_whole("--frames", frames, 2)
    _check_whole("--fps", fps, 1)
    if not is_whole(seed):
        raise BadInput(f"--seed must be a whole number, got {seed!r}.")
    size = parse_size(size) if isinstance(size, str) else check_size(size)
    if workers is not None:
        _check_whole("--workers", workers, 0)
    if not (isinstance(variety, int | float) and 0.0 <= variety <= 1.0):
        raise BadInput(f"--variety must be a number from 0 to 1, got {variety!r}.")
    out_dir = Path(out_dir)
    manifest = {
        "generator": GENERATOR_VERSION,
        "layout": layout,
        "videos_per_class": videos_per_class,
        "size": list(size),
        "frames": frames,
        "fps": fps,
        "seed": seed,
    }
    if variety < 1.0:  # recorded only when used, so folders written before the option still match
        manifest["variety"] = variety
    _claim_out_dir(out_dir, manifest)
    jobs = plan(layout, seed, videos_per_class, size, frames, variety)
    todo = [job for job in jobs if not (out_dir / job.relpath).exists()]
    for folder in {(out_dir / job.relpath).parent for job in todo}:
        folder.mkdir(parents=True, exist_ok=True)
    _run_jobs(out_dir, todo, fps, workers, progress)

    list_file = write_side_files(layout, out_dir, jobs)
    per_class = {cls: sum(job.class_name == cls for job in jobs) for cls in CLASSES}
    return SynthSummary(
        out_dir=out_dir,
        layout=layout,
        root=out_dir,
        num_files=len(jobs),
        written=len(todo),
        skipped=len(jobs) - len(todo),
        per_class=per_class,
        elapsed_s=time.perf_counter() - started,
        list_file=list_file,
    )


def _run_jobs(out_dir: Path, jobs: list[Job], fps: int, workers: int | None, progress: bool) -> None:
    count = min(len(jobs), usable_cpus() if workers is None else workers)
    bar = tqdm(total=len(jobs), unit="video", desc="synth", disable=None if progress else True)
    try:
        if count <= 1:
            for job in jobs:
                _render_and_write(out_dir, job, fps)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=count) as pool:
            for _ in pool.map(_render_and_write, [out_dir] * len(jobs), jobs, [fps] * len(jobs), chunksize=1):
                bar.update()
    finally:
        bar.close()


@dataclass
class LongSynthSummary:
    """What `synthesize_long` made, and how to score a run on it."""

    out_dir: Path
    videos_dir: Path
    annotations: Path
    num_files: int
    written: int
    actions: dict[str, int]
    """Annotated actions per class, over every recording."""
    action_share: float
    """Share of all frames inside an annotated action (the rest is idle background)."""
    elapsed_s: float

    def describe(self) -> str:
        counts = ", ".join(f"{name} {count}" for name, count in self.actions.items())
        return (
            f"{counted(self.num_files, 'long video')} in {self.videos_dir} ({self.written} written, "
            f"{self.num_files - self.written} already there) in {self.elapsed_s:.1f} s; actions: {counts}; "
            f"{self.action_share:.0%} of the time in an action, the rest idle.\n"
            f"Ground truth: {self.annotations}\n"
            f"Score a run on them with: vjepa-tune evaluate RUN --detection {self.annotations} --data.root "
            f"{self.videos_dir}"
        )


def synthesize_long(
    out_dir: Path,
    *,
    videos: int,
    actions: int = 12,
    idle_s: tuple[float, float] | list[float] = (0.5, 3.0),
    size: tuple[int, int] | str = (96, 96),
    frames: int = 32,
    fps: int = 25,
    seed: int = 0,
    variety: float = 1.0,
    workers: int | None = None,
    progress: bool = True,
) -> LongSynthSummary:
    """Write `videos` long recordings (`synth.recordings`: `actions` actions each, drawn as `frames`-frame clips,
    with idle stretches of `idle_s` seconds between them) as OUT_DIR/videos/long_NNNN.mp4, and their ground truth
    as OUT_DIR/annotations.json in the ActivityNet/THUMOS layout (`data.annotations`). Resumable like `synthesize`;
    the files do not depend on `workers`."""
    started = time.perf_counter()
    _check_whole("--long", videos, 1)
    _check_whole("--frames", frames, 2)
    _check_whole("--fps", fps, 1)
    if not is_whole(seed):
        raise BadInput(f"--seed must be a whole number, got {seed!r}.")
    if not (isinstance(variety, int | float) and 0.0 <= variety <= 1.0):
        raise BadInput(f"--variety must be a number from 0 to 1, got {variety!r}.")
    idle = [float(v) for v in idle_s]
    check_recording_settings(actions, frames, idle, fps)
    size = parse_size(size) if isinstance(size, str) else check_size(size)
    if workers is not None:
        _check_whole("--workers", workers, 0)
    out_dir = Path(out_dir)
    manifest = {"generator": GENERATOR_VERSION, "long": videos, "actions": actions, "idle_s": idle,
                "size": list(size), "frames": frames, "fps": fps, "seed": seed, "variety": variety}
    _claim_out_dir(out_dir, manifest)
    digits = max(4, len(str(videos - 1)))
    plans = {f"{LONG_VIDEO_DIR}/long_{i:0{digits}d}.mp4": plan_recording(
        seed, i, actions=actions, frames_per_action=frames, idle_s=idle, fps=fps, size=size, variety=variety)
        for i in range(videos)}
    jobs = [Job(relpath, "long", recording.spec) for relpath, recording in plans.items()]
    todo = [job for job in jobs if not (out_dir / job.relpath).exists()]
    (out_dir / LONG_VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    _run_jobs(out_dir, todo, fps, workers, progress)
    entries = {Path(relpath).stem: recording_annotation(recording, recording_subset(i, videos))
               for i, (relpath, recording) in enumerate(plans.items())}
    annotations = write_annotations(out_dir / ANNOTATIONS_FILE, DetectionAnnotations(entries))
    spans = [span for recording in plans.values() for span in recording.spans]
    total = sum(recording.num_frames for recording in plans.values())
    return LongSynthSummary(
        out_dir=out_dir,
        videos_dir=out_dir / LONG_VIDEO_DIR,
        annotations=annotations,
        num_files=len(jobs),
        written=len(todo),
        actions={name: sum(span.name == name for span in spans) for name in CLASSES},
        action_share=sum(span.action_stop - span.action_start for span in spans) / total,
        elapsed_s=time.perf_counter() - started,
    )
