"""The layouts `synth` writes, as the data readers expect them: which videos, under which names, with which side
files.

- `folder`: root/<class>/<class>_NNNN.mp4;
- `list`: root/videos/<class>_NNNN.mp4 and list.txt (`<path> <class>` lines);
- `ntu`: NTU RGB+D names (SsssCcccPpppRrrrAaaa_rgb.avi), each performance filmed by three cameras at once;
- `ucf101`: UCF-101/<Class>/v_<Class>_gGG_cCC.avi in groups of clips sharing a performer, scene and camera, with
  classInd.txt and the three official train/test lists.

Every video's spec is planned here (a pure function of the seed, the class and the video's index or performance),
so what a video shows never depends on how many are written or by how many processes.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path

from vjepa_tune.files import write_bytes_atomic
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.actions import CLASS_MOTIONS, CLASSES, MOTIONS
from vjepa_tune.synth.specs import (
    Camera,
    ClipSpec,
    draw_backdrop,
    draw_camera,
    draw_chair,
    draw_class_spec,
    draw_look,
    draw_palette,
    draw_segment,
    ease_figure_spec,
)

LAYOUTS = ("folder", "ntu", "ucf101", "list")

NTU_ACTIONS: dict[str, int] = {
    "sit_down": 8,
    "stand_up": 9,
    "wave": 23,
    "clap": 10,
    "jump": 27,
    "stand_idle": 35,
    "squat": 80,
    "raise_both_arms": 95,
    "walk_in_place": 99,
}
"""NTU RGB+D action ids of the motions: A008 sitting down, A009 standing up, A023 hand waving, A010 clapping,
A027 jump up, A035 nod head/bow, A080 squat down, A095 hands up (both hands), A099 running on the spot."""

NTU_PERFORMER_ORDER = (1, 3, 2, 6, 4, 7, 5, 8)
"""Performers in the order performances use them: alternating between the official cross-subject training
(1, 2, 4, 5, 8) and test (3, 6, 7) performers, so even a handful of performances per class puts some on both
sides."""

UCF_CLASS_NAMES: dict[str, str] = {name: "".join(w.capitalize() for w in name.split("_")) for name in CLASSES}
"""sitting_down -> SittingDown, as UCF-101 names its classes."""


@dataclass(frozen=True)
class Job:
    """One video to write: where (relative to the output folder), its class, and what it shows."""

    relpath: str
    class_name: str
    spec: ClipSpec


def _index_width(count: int) -> int:
    return max(4, len(str(count - 1)))


def _plan_folder(seed: int, n: int, size: tuple[int, int], frames: int, folder: str | None) -> list[Job]:
    jobs = []
    digits = _index_width(n)
    for cls in CLASSES:
        for i in range(n):
            spec = draw_class_spec(cls, keyed_random(seed, cls, i), frames, size)
            name = f"{cls}_{i:0{digits}d}.mp4"
            jobs.append(Job(f"{folder or cls}/{name}", cls, spec))
    return jobs


def _camera_variant(base: Camera, rng: random.Random, index: int, size: tuple[int, int]) -> Camera:
    """How one of a setup's cameras sees the stage: camera 1 head-on, 2 and 3 from either side."""
    if index == 1:
        gain, offset = 1.0, 0.0
    else:
        gain, offset = rng.uniform(0.6, 0.8), rng.uniform(0.1, 0.2)
    figure_height = base.figure_height * rng.uniform(0.85, 1.1)
    half = 0.45 * figure_height * size[1] / size[0] + 0.04
    center = min(1 - half, max(half, base.center_x + rng.uniform(-0.08, 0.08))) if half < 0.5 else 0.5
    return dataclasses.replace(
        base,
        figure_height=figure_height,
        center_x=center,
        floor_y=min(0.96, max(0.84, base.floor_y + rng.uniform(-0.03, 0.03))),
        shake=0.0 if rng.random() < 0.5 else rng.uniform(0.003, 0.012),
        shake_phases=tuple(rng.uniform(0, 2 * math.pi) for _ in range(4)),  # type: ignore[arg-type]
        background_shift=rng.uniform(-0.3, 0.3),
        width_gain=gain,
        width_offset=offset,
    )


def _plan_ntu(seed: int, n: int, size: tuple[int, int], frames: int) -> list[Job]:
    """Performances filmed by three cameras at once; setup, performer and replication make names unique."""
    jobs = []
    performers = len(NTU_PERFORMER_ORDER)
    for cls in CLASSES:
        for k in range(math.ceil(n / 3)):
            performer = NTU_PERFORMER_ORDER[k % performers]
            replication = (k // performers) % 2 + 1
            setup = k // (2 * performers) + 1
            rng = keyed_random(seed, "ntu", cls, k)
            motion = rng.choice(CLASS_MOTIONS[cls])
            look = draw_look(keyed_random(seed, "ntu-performer", performer))
            setup_rng = keyed_random(seed, "ntu-setup", setup)
            backdrop = draw_backdrop(setup_rng)
            stage = draw_camera(setup_rng, size)
            stage = dataclasses.replace(stage, mirror=rng.random() < 0.5)
            palette = draw_palette(keyed_random(seed, "ntu-palette", performer, setup), look, backdrop)
            segment = draw_segment(MOTIONS[motion], rng, frames)
            chair = draw_chair(rng, [segment])
            for camera in range(1, 4):
                if 3 * k + camera > n:
                    break
                view = _camera_variant(
                    stage, keyed_random(seed, "ntu-camera", setup, camera, cls, k), camera, size
                )
                spec = ClipSpec(size, look, backdrop, view, palette, (segment,), chair)
                action = NTU_ACTIONS[motion]
                name = f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}_rgb.avi"
                jobs.append(Job(f"nturgb+d_rgb/{name}", cls, spec))
    return jobs


def _ucf_groups(n: int) -> list[int]:
    """Clips per group: up to 4 (UCF-101 has 4-7), at least 3 groups wherever there are 3 clips, and no more
    than 99 groups of 99 clips, as the two-digit names allow."""
    per_group = max(1, min(4, n // 3), math.ceil(n / 99))
    sizes = [per_group] * (n // per_group)
    if n % per_group:
        sizes.append(n % per_group)
    return sizes


def ucf_test_groups(num_groups: int, fold: int) -> set[int]:
    """The groups that fold 1-3 tests: its third of them, as UCF-101's folds test g01-07, g08-14, g15-21."""
    return {g for g in range(1, num_groups + 1) if (g - 1) * 3 // num_groups == fold - 1}


def _plan_ucf101(seed: int, n: int, size: tuple[int, int], frames: int) -> list[Job]:
    """Groups of clips sharing a performer, scene and camera, as clips cut from one source video."""
    jobs = []
    for cls in CLASSES:
        ucf = UCF_CLASS_NAMES[cls]
        for g, count in enumerate(_ucf_groups(n), start=1):
            group_rng = keyed_random(seed, "ucf", cls, "group", g)
            look = draw_look(group_rng)
            backdrop = draw_backdrop(group_rng)
            stage = draw_camera(group_rng, size)
            palette = draw_palette(group_rng, look, backdrop)
            for c in range(1, count + 1):
                rng = keyed_random(seed, "ucf", cls, g, c)
                motion = rng.choice(CLASS_MOTIONS[cls])
                segment = draw_segment(MOTIONS[motion], rng, frames)
                camera = dataclasses.replace(
                    stage,
                    center_x=min(0.9, max(0.1, stage.center_x + rng.uniform(-0.04, 0.04))),
                    figure_height=stage.figure_height * rng.uniform(0.95, 1.05),
                    shake=0.0 if rng.random() < 0.4 else rng.uniform(0.004, 0.02),
                )
                spec = ClipSpec(
                    size, look, backdrop, camera, palette, (segment,), draw_chair(rng, [segment])
                )
                jobs.append(Job(f"UCF-101/{ucf}/v_{ucf}_g{g:02d}_c{c:02d}.avi", cls, spec))
    return jobs


def _ucf_split_files(out_dir: Path, jobs: list[Job]) -> None:
    """classInd.txt and the three official train/test lists, CRLF line ends as in the real download."""
    names = sorted(UCF_CLASS_NAMES.values(), key=str.lower)
    label = {name: i for i, name in enumerate(names, start=1)}
    lists = out_dir / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    write_lines(lists / "classInd.txt", [f"{label[name]} {name}" for name in names], "\r\n")
    groups_of: dict[str, int] = {}
    for job in jobs:
        ucf = UCF_CLASS_NAMES[job.class_name]
        groups_of[ucf] = max(groups_of.get(ucf, 0), int(job.relpath.rsplit("_g", 1)[1][:2]))
    for fold in (1, 2, 3):
        train, test = [], []
        for job in jobs:
            ucf = UCF_CLASS_NAMES[job.class_name]
            rel = job.relpath.removeprefix("UCF-101/")
            group = int(rel.rsplit("_g", 1)[1][:2])
            if group in ucf_test_groups(groups_of[ucf], fold):
                test.append(rel)
            else:
                train.append(f"{rel} {label[ucf]}")
        write_lines(lists / f"trainlist0{fold}.txt", train, "\r\n")
        write_lines(lists / f"testlist0{fold}.txt", test, "\r\n")


def _plan_layout(layout: str, seed: int, n: int, size: tuple[int, int], frames: int) -> list[Job]:
    if layout == "folder":
        return _plan_folder(seed, n, size, frames, None)
    if layout == "list":
        return _plan_folder(seed, n, size, frames, "videos")
    if layout == "ntu":
        return _plan_ntu(seed, n, size, frames)
    return _plan_ucf101(seed, n, size, frames)


def plan(layout: str, seed: int, n: int, size: tuple[int, int], frames: int, variety: float = 1.0) -> list[Job]:
    """Every video's spec; below full `variety` each is eased by its own keyed draw, so variety 1 leaves the
    specs exactly as drawn and a lower variety changes how the videos look, never what happens in them."""
    jobs = _plan_layout(layout, seed, n, size, frames)
    if variety >= 1.0:
        return jobs
    return [
        dataclasses.replace(
            job, spec=ease_figure_spec(job.spec, 1.0 - variety, keyed_random(seed, job.relpath, "ease"))
        )
        for job in jobs
    ]


def write_side_files(layout: str, out_dir: Path, jobs: list[Job]) -> Path | None:
    """The files besides the videos that a layout's reader needs: list.txt for `list` (returned), the split lists
    for `ucf101`; none for the others."""
    if layout == "list":
        list_file = out_dir / "list.txt"
        write_lines(list_file, [f"{job.relpath} {job.class_name}" for job in jobs])
        return list_file
    if layout == "ucf101":
        _ucf_split_files(out_dir, jobs)
    return None


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> None:
    """Text lines, each ended by `newline`, written whole (`files.write_bytes_atomic`)."""
    write_bytes_atomic(path, "".join(line + newline for line in lines).encode("utf-8"))
