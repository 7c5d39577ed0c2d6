"""Transcode a data set once to small H.264 MP4 files, so that every later epoch decodes a fraction of the
pixels.

A 1080p source (NTU RGB+D) is slow to decode and the model only ever sees a 256 crop, so decoding 1920x1080
frames is wasted work repeated every epoch (BENCHMARKS.md has the figures). `prepare_dataset` writes a copy
whose videos have a short side of `short_side` pixels and that is a drop-in `--data.root` for the same
`--data.format`:

- the layout and names are kept; only the extension of a video becomes `.mp4`;
- every other file (split lists, classInd.txt, labels.json, CSVs) is copied, and text files that name videos
  are rewritten to the new names;
- every frame is kept, in order, at its source's presentation time (measured from the first frame), so a
  variable-frame-rate video keeps its duration and frame sampling picks the same frames; each copy is read back
  and one whose frame count or any frame time differs from its source's by more than half a frame interval is
  not kept: the source is copied unchanged under the new name and the file is reported;
- an unreadable source is reported and copied unchanged under its new name, so the copy lists the same videos
  and training leaves the same ones out;
- the run is resumable: each output is written aside and renamed when whole; a rerun skips finished outputs.

One video's transcode is `data.transcode`; the copy's names and other files are `data.copies`.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from vjepa_tune.config import DataConfig
from vjepa_tune.data.copies import ASIDE_NAME, MANIFEST, TEXT_EXTENSIONS, copy_file, output_name, write_aside
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.sources.common import is_video
from vjepa_tune.data.transcode import CRF, KEYFRAME_INTERVAL_S, PRESET, TranscodeJob, TranscodeOutcome, transcode
from vjepa_tune.data.video import decoder_threads, usable_cpus
from vjepa_tune.errors import BadInput

MANIFEST_VERSION = 2
"""2: copies keep every frame's presentation time (version 1 gave frames consecutive times at the nominal rate, which
shortened variable-frame-rate videos)."""
REPORTED = 10
"""Failed sources spelled out by `describe`; the rest are counted."""


def _walk(root: Path) -> Iterator[str]:
    """Relative paths (forward slashes) of every non-hidden file under the root, sorted; hidden files and
    folders are skipped as the readers skip them."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if not name.startswith("."):
                yield name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")


# ------------------------------------------------------------------------------------------------------------
# The summary


@dataclass
class PrepareSummary:
    """What `prepare_dataset` did, and how to point a reader at the copy."""

    root: Path
    out: Path
    format: str
    short_side: int
    videos: int
    transcoded: int
    skipped: int
    """Outputs already finished by an earlier run."""
    failed: dict[str, str]
    """Source (relative path) -> why it could not be read; each was copied unchanged under its new name."""
    differs: dict[str, str]
    """Source (relative path) -> how its transcoded copy differed from it (frame count or frame times); the copy
    was not kept and the source was copied unchanged under its new name. Empty unless something is wrong."""
    files_copied: int
    files_rewritten: int
    """Text files whose video names were rewritten to .mp4."""
    bytes_in: int
    bytes_out: int
    elapsed_s: float
    list_file: Path | None = None
    """The rewritten list file to pass as --data.list_file (format list with an explicit list file)."""
    fewer_frames: list[str] = field(default_factory=list)
    """Sources that decode to a few frames fewer than their container lists; their copies repeat the last decoded
    frame at the missing frames' times, as training shows the source."""
    readback: list[str] = field(default_factory=list)
    """Differences found reading the copy back with the same --data settings (empty when it reads alike)."""
    group_flags: list[str] = field(default_factory=list)
    """The flags that declared groups (--data.group_pattern, --data.list_groups): the copy needs them too."""

    def data_flags(self) -> list[str]:
        flags = ["--data.root", str(self.out), "--data.format", self.format]
        if self.list_file is not None:
            flags += ["--data.list_file", str(self.list_file)]
        flags += self.group_flags
        return flags

    def describe(self) -> str:
        rate = self.transcoded / self.elapsed_s if self.elapsed_s > 0 else 0.0
        ratio = f" ({100 * self.bytes_out / self.bytes_in:.1f}%)" if self.bytes_in else ""
        lines = [
            f"prepared {self.videos} videos of {self.root} ({self.format}) into {self.out}: H.264 MP4, "
            f"short side at most {self.short_side} px, crf {CRF}, every frame kept",
            f"  transcoded {self.transcoded}, already done {self.skipped}, unreadable {len(self.failed)}"
            + (
                " (copied unchanged under the new name; training leaves them out as before)"
                if self.failed
                else ""
            )
            + (
                f", failed the read-back check {len(self.differs)} (copied unchanged under the new name)"
                if self.differs
                else ""
            ),
            f"  other files: {self.files_copied} copied, "
            f"{self.files_rewritten} rewritten to name the .mp4 videos",
            f"  videos: {_size(self.bytes_in)} -> {_size(self.bytes_out)}{ratio} in {self.elapsed_s:.1f} s "
            f"({rate:.2f} videos/s)",
        ]
        for rel, reason in list(self.failed.items())[:REPORTED]:
            lines.append(f"  unreadable: {rel}: {reason}")
        if len(self.failed) > REPORTED:
            lines.append(f"  ... and {len(self.failed) - REPORTED} more unreadable")
        if self.fewer_frames:
            lines.append(
                f"  note: {len(self.fewer_frames)} sources decode to a few frames fewer than their container lists "
                f"(e.g. {self.fewer_frames[0]}); their copies repeat the last decoded frame in their place, as "
                "training shows the source"
            )
        for rel, reason in list(self.differs.items())[:REPORTED]:
            lines.append(f"  error: {rel}: its copy did not keep the source's frames and times: {reason}")
        if len(self.differs) > REPORTED:
            lines.append(f"  ... and {len(self.differs) - REPORTED} more copies that failed the read-back check")
        if self.readback:
            lines += [f"  warning: {text}" for text in self.readback]
        elif self.differs:
            lines.append(
                "  the copy reads back with the same videos, labels, groups and official splits; the sources above "
                "were copied unchanged (please report them: a transcode should keep every frame time)"
            )
        else:
            lines.append(
                "  the copy reads back with the same videos, labels, groups and official splits, and every "
                "transcoded video with its source's frames at their times"
            )
        lines.append("use: " + shlex.join(self.data_flags()))
        return "\n".join(lines)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# ------------------------------------------------------------------------------------------------------------
# The run


def _check_places(root: Path, out: Path) -> None:
    real_root, real_out = root.resolve(), out.resolve()
    if real_out == real_root or real_root in real_out.parents:
        raise BadInput(
            f"--out {out} is inside --data.root {root}: the copy would be read as part of the data set. "
            "Choose a folder outside the root."
        )
    if real_out in real_root.parents:
        raise BadInput(
            f"--out {out} contains --data.root {root}: the copy would mix with the source. Choose a folder "
            "beside the root instead."
        )


def _settings(short_side: int) -> dict[str, object]:
    return {
        "version": MANIFEST_VERSION,
        "short_side": short_side,
        "codec": "libx264",
        "crf": CRF,
        "preset": PRESET,
        "keyframe_interval_s": KEYFRAME_INTERVAL_S,
    }


def _claim_out(out: Path, root: Path, short_side: int) -> dict[str, str]:
    """Make sure `out` is new, empty or an earlier prepare of the same source with the same settings;
    returns the sources that failed last time (to try again)."""
    record = out / MANIFEST
    wanted = {**_settings(short_side), "source": str(root.resolve())}
    if record.is_file():
        try:
            previous = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise BadInput(
                f"{record} is not a readable prepare record ({err}); delete it or choose another --out."
            ) from err
        if previous.get("version") != MANIFEST_VERSION:
            raise BadInput(
                f"--out {out} holds a copy made by an earlier vjepa-tune (prepare record version "
                f"{previous.get('version')!r}, now {MANIFEST_VERSION}), whose copies gave frames evenly spaced "
                "times and so shortened or lengthened variable-frame-rate videos; prepare again into a new --out."
            )
        changed = sorted(k for k in wanted if previous.get(k) != wanted[k])
        if changed:
            before = ", ".join(f"{k}={previous.get(k)!r}" for k in changed)
            raise BadInput(
                f"--out {out} holds a copy prepared with other settings ({before}); choose another --out "
                "or the same --data.root and --short_side to resume it."
            )
        return dict(previous.get("failed", {}))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(
            f"--out {out} is not empty and was not made by `data prepare`; choose an empty or new folder."
        )
    out.mkdir(parents=True, exist_ok=True)
    return {}


def _save_manifest(out: Path, root: Path, short_side: int, failed: dict[str, str]) -> None:
    record = {**_settings(short_side), "source": str(root.resolve()), "failed": dict(sorted(failed.items()))}
    write_aside(out / MANIFEST, (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _remove_stale_parts(out: Path) -> None:
    """Temporary files left by a killed run (each run writes its own, named by process id)."""
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            if ASIDE_NAME.match(name):
                Path(dirpath, name).unlink(missing_ok=True)


def _list_file(index: DatasetIndex, data: DataConfig, root: Path) -> Path | None:
    """The explicit list file the list reader used (looked up as it looks: as given, then under the root)."""
    if index.format != "list" or data.list_file is None:
        return None
    given = Path(data.list_file)
    candidates = [given] + ([] if given.is_absolute() else [root / given])
    return next((p.resolve() for p in candidates if p.is_file()), None)


def _check_under_root(samples: list[Sample], root: Path) -> None:
    outside = [s.id for s in samples if Path(s.id).is_absolute()]
    if outside:
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        raise BadInput(
            f"{len(outside)} listed videos lie outside --data.root {root} ({shown}); prepare keeps the "
            "layout under the root, so move them under it or list paths relative to it."
        )


def _check_collisions(videos: list[str]) -> None:
    targets: dict[str, list[str]] = {}
    for rel in videos:
        targets.setdefault(output_name(rel), []).append(rel)
    clashes = [names for names in targets.values() if len(names) > 1]
    if clashes:
        shown = "; ".join(" and ".join(names) for names in clashes[:5])
        raise BadInput(
            f"{len(clashes)} sets of videos differ only by extension ({shown}) and would become the same "
            ".mp4; rename them before preparing."
        )


def _run_jobs(jobs: list[TranscodeJob], workers: int) -> Iterator[TranscodeOutcome]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield transcode(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        try:
            yield from pool.map(transcode, jobs, chunksize=1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _sample_key(index: DatasetIndex, sample: Sample) -> tuple[str, str, str | None, str | None]:
    stem = os.path.splitext(sample.id)[0] if is_video(sample.id) else sample.id
    return stem, index.classes[sample.label], sample.group, sample.official_split


def compare_indexes(source: DatasetIndex, copy: DatasetIndex) -> list[str]:
    """How the copy's reading differs from the source's (ids compared without extension); empty if none."""
    problems = []
    if source.classes != copy.classes:
        problems.append(f"classes differ: {source.classes[:5]} in the source, {copy.classes[:5]} in the copy")
    before = {_sample_key(source, s) for s in source.samples}
    after = {_sample_key(copy, s) for s in copy.samples}
    if before != after:
        lost, gained = sorted(before - after), sorted(after - before)
        problems.append(
            f"the copy reads as {len(copy.samples)} videos against {len(source.samples)} in the source; "
            f"{len(lost)} source entries (id, class, group, split) are not in the copy (e.g. {lost[:2]}) and "
            f"{len(gained)} are new (e.g. {gained[:2]})"
        )
    return problems


def prepare_dataset(
    data: DataConfig, out: Path, short_side: int = 320, workers: int | None = None, progress: bool = True
) -> PrepareSummary:
    """Transcode the data set `data` describes into `out` (a drop-in --data.root) with `workers` processes."""
    started = time.perf_counter()
    if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 16:
        raise BadInput(f"--short_side must be a whole number of pixels >= 16, got {short_side!r}.")
    if workers is not None and workers < 1:
        raise BadInput(f"--workers must be >= 1, got {workers!r}.")
    index = read_dataset(data)
    root, out = index.root, Path(out).expanduser()
    _check_places(root, out)
    _check_under_root(index.samples, root)
    list_source = _list_file(index, data, root)
    outside_list = None if list_source is None or root.resolve() in list_source.parents else list_source
    files = list(_walk(root))
    videos = [rel for rel in files if is_video(rel)]
    others = [rel for rel in files if not is_video(rel)]
    _check_collisions(videos)
    if outside_list is not None and outside_list.name in others:
        raise BadInput(
            f"--data.list_file {outside_list} lies outside the root and its copy would overwrite {root}/"
            f"{outside_list.name}; rename one of them."
        )

    failed_before = _claim_out(out, root, short_side)
    _remove_stale_parts(out)
    _save_manifest(out, root, short_side, failed_before)

    workers = usable_cpus() if workers is None else workers
    threads = decoder_threads(min(workers, len(videos) or 1))
    jobs, skipped = [], 0
    for rel in videos:
        target = out / output_name(rel)
        if target.is_file() and rel not in failed_before:
            skipped += 1
        else:
            jobs.append(TranscodeJob(root / rel, target, short_side, threads))

    failed = {rel: reason for rel, reason in failed_before.items() if rel in videos}
    """Every source whose output is a stand-in (the manifest's record, retried by a rerun)."""
    unreadable: dict[str, str] = {}
    differs: dict[str, str] = {}
    fewer_frames: list[str] = []
    transcoded = 0
    with tqdm(
        total=len(videos), initial=skipped, unit="video", desc="preparing", disable=None if progress else True
    ) as bar:
        for job, outcome in zip(jobs, _run_jobs(jobs, workers), strict=True):
            rel = job.source.relative_to(root).as_posix()
            if outcome.reason is None:
                transcoded += 1
                failed.pop(rel, None)
                if outcome.decoded_frames < outcome.source_frames:
                    fewer_frames.append(rel)
            else:
                failed[rel] = outcome.reason
                (unreadable if outcome.unreadable else differs)[rel] = outcome.reason
                _save_manifest(out, root, short_side, failed)  # recorded before the stand-in exists
                copy_file(job.source, job.target, {}, rewrite=False, replace_prefix=("", ""))
            bar.update()
    _save_manifest(out, root, short_side, failed)

    renamed = {
        os.path.basename(rel): os.path.basename(output_name(rel))
        for rel in videos
        if os.path.basename(rel) != os.path.basename(output_name(rel))
    }
    prefix = (os.path.join(os.path.abspath(root), ""), os.path.join(os.path.abspath(out), ""))
    results = []
    for rel in others:
        source = root / rel
        rewrite = Path(rel).suffix.lower() in TEXT_EXTENSIONS or source.resolve() == list_source
        results.append(copy_file(source, out / rel, renamed, rewrite, prefix))
    list_file = None
    if outside_list is not None:
        list_file = out / outside_list.name
        results.append(copy_file(outside_list, list_file, renamed, True, prefix))
    elif list_source is not None:
        list_file = out / list_source.relative_to(root.resolve())

    bytes_in = sum((root / rel).stat().st_size for rel in videos)
    bytes_out = sum((out / output_name(rel)).stat().st_size for rel in videos)
    try:
        readback = compare_indexes(index, read_dataset(replace(data, root=out, list_file=list_file)))
    except BadInput as err:
        readback = [f"the copy cannot be read with the same --data settings: {err}"]
    return PrepareSummary(
        root=root,
        out=out,
        format=index.format,
        short_side=short_side,
        videos=len(videos),
        transcoded=transcoded,
        skipped=skipped,
        failed=unreadable,
        differs=differs,
        files_copied=results.count("copied"),
        files_rewritten=results.count("rewritten"),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        elapsed_s=time.perf_counter() - started,
        list_file=list_file,
        fewer_frames=fewer_frames,
        readback=readback,
        group_flags=_group_flags(data),
    )


def _group_flags(data: DataConfig) -> list[str]:
    if data.group_pattern is not None:
        return ["--data.group_pattern", data.group_pattern]
    return ["--data.list_groups", "true"] if data.list_groups else []
