"""`data prepare` on tiny synthetic data sets: the copy is a drop-in root (same videos, labels, groups,
splits), every frame is kept in order at its source's time, sizes shrink but never grow, reruns resume, and broken
sources never stop a run."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vjepa_tune.cli import main
from vjepa_tune.config import DataConfig
from vjepa_tune.data import transcode
from vjepa_tune.data.check import check_dataset
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.prepare import MANIFEST, prepare_dataset
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import make_splits
from vjepa_tune.data.video import probe_video
from vjepa_tune.errors import BadInput
from vjepa_tune.synth import synthesize, write_video

SIZE = (64, 48)
FRAMES = 12
LAYOUTS = {"folder": 3, "list": 3, "ucf101": 6, "ntu": 9}
"""Videos per class: enough groups for a group split (ucf101: 3 groups, ntu: 3 performers)."""


@pytest.fixture(scope="module")
def synth_sets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("prepare-src")
    return {
        layout: synthesize(
            base / layout,
            layout=layout,
            videos_per_class=n,
            size=SIZE,
            frames=FRAMES,
            fps=25,
            workers=2,
            progress=False,
        ).root
        for layout, n in LAYOUTS.items()
    }


@pytest.fixture
def folder_set(synth_sets, tmp_path) -> Path:
    return Path(shutil.copytree(synth_sets["folder"], tmp_path / "src"))


def stem(sample_id: str) -> str:
    return os.path.splitext(sample_id)[0]


def reading(index, samples=None) -> list[tuple]:
    return sorted(
        (stem(s.id), index.classes[s.label], s.group, s.official_split)
        for s in (index.samples if samples is None else samples)
    )


def files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_prepared_copy_is_a_drop_in_root(layout, synth_sets, tmp_path):
    root, out = synth_sets[layout], tmp_path / "prepared"
    data = DataConfig(root=root, format=layout)
    summary = prepare_dataset(data, out, short_side=32, workers=1, progress=False)
    count = 4 * LAYOUTS[layout]
    assert (summary.videos, summary.transcoded, summary.skipped, summary.failed) == (count, count, 0, {})
    assert summary.readback == []

    source_files = files(root)
    videos = {f for f in source_files if f.endswith((".avi", ".mp4"))}
    assert files(out) == {stem(f) + ".mp4" for f in videos} | (source_files - videos)
    for rel in sorted(videos)[:3]:
        before, after = probe_video(root / rel), probe_video(out / (stem(rel) + ".mp4"))
        assert after.num_frames == before.num_frames == FRAMES
        assert after.fps == pytest.approx(before.fps)
        assert (after.width, after.height) == (42, 32)  # 64x48 at short side 32, both even

    source, copy = read_dataset(data), read_dataset(DataConfig(root=out, format=layout))
    assert copy.classes == source.classes
    assert reading(copy) == reading(source)
    split_before, split_after = make_splits(source, data, 42), make_splits(copy, DataConfig(root=out), 42)
    assert split_after.method == split_before.method
    for (name, items), (_, copied) in zip(split_before.items(), split_after.items(), strict=True):
        assert reading(copy, copied) == reading(source, items), name


def test_list_file_naming_avi_videos_is_rewritten(tmp_path):
    root, lists = tmp_path / "src", tmp_path / "src" / "lists"
    frames = np.full((6, 32, 32, 3), 90, np.uint8)
    lines = []
    for name, label in (("a b.avi", "walk"), ("c.avi", "walk"), ("d.mkv", "run"), ("e.avi", "run")):
        (root / "clips").mkdir(parents=True, exist_ok=True)
        write_video(root / "clips" / name, frames, fps=10)
        lines.append(f"../clips/{name} {label}")
    lists.mkdir()
    (lists / "all.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    outside = tmp_path / "elsewhere.txt"
    outside.write_text(
        "".join(f"{root / 'clips' / n} {c}\n" for n, c in (("c.avi", "walk"), ("d.mkv", "run")))
    )

    summary = prepare_dataset(
        DataConfig(root=root, list_file=lists / "all.txt"), tmp_path / "out", 32, workers=1, progress=False
    )
    assert summary.readback == [] and summary.files_rewritten == 1
    assert summary.list_file == tmp_path / "out" / "lists" / "all.txt"
    assert summary.list_file.read_bytes() == (
        b"../clips/a b.mp4 walk\r\n../clips/c.mp4 walk\r\n../clips/d.mp4 run\r\n../clips/e.mp4 run\r\n"
    )
    assert "--data.list_file" in summary.describe()

    # A list outside the root is copied to the top of the copy, its absolute paths pointed at the copy.
    again = prepare_dataset(
        DataConfig(root=root, list_file=outside), tmp_path / "out2", 32, workers=1, progress=False
    )
    assert again.list_file == tmp_path / "out2" / "elsewhere.txt"
    assert (
        again.list_file.read_text() == f"{tmp_path / 'out2' / 'clips' / 'c.mp4'} walk\n"
        f"{tmp_path / 'out2' / 'clips' / 'd.mp4'} run\n"
    )
    assert again.readback == []


@pytest.mark.parametrize("declared", ["group_pattern", "list_groups"])
def test_declared_groups_read_the_same_in_the_copy(declared, tmp_path, capsys):
    """Group patterns search the name without its extension, so the .mp4 copy has the same groups; the summary's
    `use:` line carries the group flag."""
    root = tmp_path / "src"
    lines = []
    for name in ("walk", "run"):
        for k in range(3):
            path = root / "clips" / f"{name}{k}_clip1.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, gray_clip([60] * 4, (32, 32)), fps=25)
            lines.append(f"clips/{path.name} {name} {name}{k}")
    (root / "all.txt").write_text("\n".join(lines) + "\n")
    if declared == "group_pattern":
        (root / "all.txt").write_text("".join(line.rsplit(" ", 1)[0] + "\n" for line in lines))
        data = DataConfig(root=root, list_file=root / "all.txt", group_pattern=r"^(.+)_clip\d+$")
        flags = "--data.group_pattern '^(.+)_clip\\d+$'"
    else:
        data = DataConfig(root=root, list_file=root / "all.txt", list_groups=True)
        flags = "--data.list_groups true"

    summary = prepare_dataset(data, tmp_path / "out", 32, workers=1, progress=False)
    assert summary.readback == []
    source = read_dataset(data)
    copy = read_dataset(replace(data, root=tmp_path / "out", list_file=summary.list_file))
    assert reading(copy) == reading(source)
    assert {s.group for s in copy.samples} == {f"{n}{k}" for n in ("walk", "run") for k in range(3)}
    assert summary.describe().endswith(f"--data.list_file {summary.list_file} {flags}")


def gray_clip(levels: list[int], size: tuple[int, int] = (40, 56)) -> np.ndarray:
    return np.stack([np.full((*size, 3), level, np.uint8) for level in levels])


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_every_frame_is_kept_in_order(suffix, tmp_path):
    """Frame i of the source is frame i of the copy (AVI: MPEG-4 with B-frames, as UCF-101; MKV: H.264)."""
    levels = [20 + 7 * i for i in range(30)]
    root = tmp_path / "src"
    (root / "walk").mkdir(parents=True)
    write_video(root / "walk" / f"clip{suffix}", gray_clip(levels), fps=30)
    write_video(root / "walk" / f"other{suffix}", gray_clip(levels[:4]), fps=30)
    (root / "run").mkdir()
    write_video(root / "run" / f"clip{suffix}", gray_clip(levels[:4]), fps=30)
    prepare_dataset(DataConfig(root=root), tmp_path / "out", short_side=20, workers=1, progress=False)

    info = probe_video(tmp_path / "out" / "walk" / "clip.mp4")
    assert (info.num_frames, info.width, info.height, round(info.fps)) == (30, 28, 20, 30)
    np.testing.assert_allclose(
        info.frame_times, [i / 30 for i in range(30)], atol=1e-3
    )  # same times as the source
    frames = read_frames(info.path, range(30), info, seek_after_s=None)
    means = frames.float().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(means, levels, atol=2.5)


UNEVEN_SLOTS = [0, 12, 21, 28, 32, 37, 38, 40, 41, 44, 56, 65, 77, 84, 93, 106, 116, 125, 133, 141]
"""Frame times of a nominal 15 fps camera that skips frames, in 1/15 s: 20 frames over 9.5 s (1.3 s at 15 fps)."""
UNEVEN_MS = [0, 774, 1369, 1858, 2144, 2462, 2556, 2679, 2752, 2959, 3702, 4307, 5133, 5616, 6185, 7060, 7732]
"""The same kind of source with millisecond timestamps (Matroska's time base), off any 15 fps grid."""


def numbered_source(make_video, name: str, kind: str) -> Path:
    """A nominal 15 fps video with uneven frame times whose frames show their number (tests/data/conftest.py)."""
    if kind.startswith("avi"):
        return make_video(name, len(UNEVEN_SLOTS), kind, fps=15, pts=UNEVEN_SLOTS, time_base=Fraction(1, 15))
    return make_video(name, len(UNEVEN_MS), kind, fps=15, pts=UNEVEN_MS, time_base=Fraction(1, 1000))


def assert_same_frames_at_same_times(source: Path, copy: Path, pattern_number) -> None:
    before, after = probe_video(source), probe_video(copy)
    assert after.num_frames == before.num_frames
    np.testing.assert_allclose(after.frame_times, before.frame_times, atol=1e-3)
    assert after.duration_s == pytest.approx(before.duration_s, abs=1e-3)
    frames = read_frames(copy, range(after.num_frames), after, seek_after_s=None)
    assert [pattern_number(f.numpy()) for f in frames] == list(range(before.num_frames))


@pytest.mark.parametrize("kind", ["avi-h264", "avi-mpeg4", "mkv-h264"])
def test_a_variable_frame_rate_source_keeps_its_duration_and_every_frame_time(
    kind, make_video, pattern_number, tmp_path
):
    """A camera's uneven timestamps (AVI: H.264 with B-frames, as NTU, and MPEG-4, as UCF-101; Matroska) are kept:
    the copy is neither sped up to the nominal rate nor missing a frame. MP4 sources are not here: MP4 derives its
    nominal rate from the timestamps, which hid the bug."""
    source = numbered_source(make_video, "src/walk/clip", kind)
    numbered_source(make_video, "src/run/clip", kind)
    info = probe_video(source)
    assert info.fps == pytest.approx(15) and info.duration_s > 2 * info.num_frames / 15  # really uneven

    summary = prepare_dataset(DataConfig(root=tmp_path / "src"), tmp_path / "out", 32, workers=1, progress=False)
    assert_same_frames_at_same_times(source, tmp_path / "out" / "walk" / "clip.mp4", pattern_number)
    assert (summary.transcoded, summary.failed, summary.differs) == (2, {}, {})
    assert "every transcoded video with its source's frames at their times" in summary.describe()


@pytest.mark.parametrize("kind", ["avi-h264", "avi-mpeg4", "mkv-h264", "mp4-h264"])
def test_a_constant_rate_source_keeps_every_frame_and_its_time(kind, make_video, pattern_number, tmp_path):
    """B-frames in AVI decode to out-of-order pts: the copy still holds frame i at the source's time i."""
    source = make_video("src/walk/clip", 40, kind)
    make_video("src/run/clip", 8, kind)
    summary = prepare_dataset(DataConfig(root=tmp_path / "src"), tmp_path / "out", 32, workers=1, progress=False)
    assert (summary.transcoded, summary.failed, summary.differs) == (2, {}, {})
    copy = tmp_path / "out" / "walk" / "clip.mp4"
    assert_same_frames_at_same_times(source, copy, pattern_number)
    assert probe_video(copy).frame_times == pytest.approx([i / 25 for i in range(40)], abs=1e-3)


def test_a_copy_that_changes_frame_times_is_reported_and_the_source_kept(
    make_video, monkeypatch, tmp_path
):
    """The read-back check compares frame times, not only that the copy opens: a transcode that evens out the
    times (what `data prepare` once did) is caught, named, and the source copied unchanged in its place."""
    source = numbered_source(make_video, "src/walk/uneven", "mkv-h264")
    make_video("src/walk/even", 12, "mkv-h264")
    make_video("src/run/even", 12, "mkv-h264")

    def evenly_spaced(info, count, time_base):
        return [round(i / float(transcode.nominal_rate(info)) / float(time_base)) for i in range(count)]

    monkeypatch.setattr(transcode, "frame_stamps", evenly_spaced)
    summary = prepare_dataset(DataConfig(root=tmp_path / "src"), tmp_path / "out", 32, workers=1, progress=False)
    assert (summary.transcoded, summary.failed, list(summary.differs)) == (2, {}, ["walk/uneven.mkv"])
    reason = summary.differs["walk/uneven.mkv"]
    assert "in the copy but at" in reason and "the copy lasts 1.13 s against 8.26 s" in reason
    text = summary.describe()
    assert "failed the read-back check 1" in text
    assert "error: walk/uneven.mkv: its copy did not keep the source's frames and times" in text
    assert "every transcoded video with its source's frames at their times" not in text
    assert (tmp_path / "out" / "walk" / "uneven.mp4").read_bytes() == source.read_bytes()
    record = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert list(record["failed"]) == ["walk/uneven.mkv"]  # a rerun tries it again

    monkeypatch.undo()
    rerun = prepare_dataset(DataConfig(root=tmp_path / "src"), tmp_path / "out", 32, workers=1, progress=False)
    assert (rerun.transcoded, rerun.skipped, rerun.differs) == (1, 2, {})
    assert probe_video(tmp_path / "out" / "walk" / "uneven.mp4").duration_s == pytest.approx(8.26, abs=0.01)


def test_a_few_frames_the_decoder_does_not_give_are_shown_as_training_shows_them(
    make_video, pattern_number, monkeypatch, tmp_path
):
    """A source that decodes to 2 frames fewer than it lists (XviD placeholders, a damaged tail): the copy keeps
    the listed times and repeats the last decoded frame, as `read_frames` does for the source; more missing
    frames than `read_frames` tolerates make the source unreadable, as for training."""
    make_video("src/walk/clip", 30, "mkv-h264")
    make_video("src/run/clip", 30, "mkv-h264")
    make_video("src/run/damaged", 30, "mkv-h264")
    original = transcode.decoded_frames

    def losing_frames(container, stream, path):
        keep = 10 if path.stem == "damaged" else 28
        for n, frame in enumerate(original(container, stream, path)):
            if n < keep:
                yield frame

    monkeypatch.setattr(transcode, "decoded_frames", losing_frames)
    summary = prepare_dataset(DataConfig(root=tmp_path / "src"), tmp_path / "out", 32, workers=1, progress=False)
    assert summary.transcoded == 2 and sorted(summary.fewer_frames) == ["run/clip.mkv", "walk/clip.mkv"]
    assert "the decoder produced only 10 of the 30 frames" in summary.failed["run/damaged.mkv"]
    copy = tmp_path / "out" / "walk" / "clip.mp4"
    info = probe_video(copy)
    assert info.frame_times == pytest.approx([i / 25 for i in range(30)], abs=1e-3)
    frames = read_frames(copy, range(30), info, seek_after_s=None)
    assert [pattern_number(f.numpy()) for f in frames] == [*range(28), 27, 27]
    assert "repeat the last decoded frame" in summary.describe()


def test_a_copy_made_before_frame_times_were_kept_is_not_resumed(folder_set, tmp_path):
    out = tmp_path / "out"
    prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=1, progress=False)
    record = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**record, "version": 1}))
    with pytest.raises(BadInput, match="made by an earlier vjepa-tune.*prepare again into a new --out"):
        prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=1, progress=False)


def test_rerun_skips_finished_outputs_and_resumes_a_killed_run(folder_set, tmp_path):
    out = tmp_path / "out"
    first = prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=2, progress=False)
    assert first.transcoded == 12
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}

    again = prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=2, progress=False)
    assert (again.transcoded, again.skipped, again.files_copied, again.files_rewritten) == (0, 12, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamps

    # A run killed mid-file leaves its temporary file, never a half output under the final name.
    (out / "waving" / "waving_0001.mp4").unlink()
    stale = out / "waving" / ".waving_0001.mp4.prepare-99999.part"
    stale.write_bytes(b"half a video")
    resumed = prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=1, progress=False)
    assert (resumed.transcoded, resumed.skipped) == (1, 11)
    assert not stale.exists()
    assert probe_video(out / "waving" / "waving_0001.mp4").num_frames == FRAMES


def test_unreadable_sources_are_reported_and_copied_not_fatal(folder_set, tmp_path):
    (folder_set / "waving" / "empty.avi").write_bytes(b"")
    (folder_set / "other" / "text.mp4").write_text("not a video")
    out = tmp_path / "out"
    summary = prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=2, progress=False)
    assert summary.transcoded == 12
    assert set(summary.failed) == {"waving/empty.avi", "other/text.mp4"}
    assert "empty file" in summary.failed["waving/empty.avi"]
    assert "unreadable: other/text.mp4" in summary.describe()
    # Stand-ins under the new names keep the same videos in the copy: training leaves the same ones out.
    assert (out / "waving" / "empty.mp4").read_bytes() == b""
    assert (out / "other" / "text.mp4").read_text() == "not a video"
    assert summary.readback == []
    report = check_dataset(DataConfig(root=out), workers=1, progress=False)
    assert {u["id"] for u in report["unreadable"]} == {"waving/empty.mp4", "other/text.mp4"}

    # A rerun tries them again (a source may have been fixed) and skips the rest.
    (folder_set / "other" / "text.mp4").unlink()
    write_video(folder_set / "other" / "text.mp4", gray_clip([100] * 6, (32, 32)), fps=25)
    rerun = prepare_dataset(DataConfig(root=folder_set), out, short_side=32, workers=1, progress=False)
    assert (rerun.transcoded, rerun.skipped, set(rerun.failed)) == (1, 12, {"waving/empty.avi"})
    assert probe_video(out / "other" / "text.mp4").num_frames == 6


def test_bad_places_and_settings_are_refused(folder_set, tmp_path):
    data = DataConfig(root=folder_set)
    for out in (folder_set, folder_set / "prepared", folder_set.parent):
        with pytest.raises(BadInput, match="--out"):
            prepare_dataset(data, out, short_side=32, workers=1, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        prepare_dataset(data, foreign, short_side=32, workers=1, progress=False)

    out = tmp_path / "out"
    prepare_dataset(data, out, short_side=32, workers=1, progress=False)
    assert (out / MANIFEST).is_file()
    with pytest.raises(BadInput, match="short_side=32"):
        prepare_dataset(data, out, short_side=48, workers=1, progress=False)
    with pytest.raises(BadInput, match="does not exist"):
        prepare_dataset(DataConfig(root=tmp_path / "nowhere"), tmp_path / "o", short_side=32, progress=False)


def test_cli_prepare(folder_set, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "data",
            "prepare",
            "--data.root",
            str(folder_set),
            "--out",
            str(out),
            "--short_side",
            "32",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    assert f"use: --data.root {out} --data.format folder" in capsys.readouterr().out
    assert main(["data", "prepare", "--data.root", str(folder_set), "--out", str(folder_set / "x")]) == 2
    assert "inside --data.root" in capsys.readouterr().err
