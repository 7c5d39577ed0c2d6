"""`data prepare` on tiny synthetic data sets: the copy is a drop-in root (same videos, labels, groups,
splits), every frame is kept in order, sizes shrink but never grow, reruns resume, and broken sources never
stop a run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vjepa_tune.cli import main
from vjepa_tune.config import DataConfig
from vjepa_tune.data.check import check_dataset
from vjepa_tune.data.prepare import MANIFEST, output_size, prepare_dataset, rewrite_video_names
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import make_splits
from vjepa_tune.data.synthetic import synthesize, write_video
from vjepa_tune.data.video import probe_video, read_frames
from vjepa_tune.errors import BadInput

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


def test_output_size_keeps_aspect_never_upscales_and_stays_even():
    assert output_size(1920, 1080, 320) == (568, 320)
    assert output_size(1080, 1920, 320) == (320, 568)
    assert output_size(320, 240, 320) == (320, 240)
    assert output_size(96, 96, 320) == (96, 96)
    assert output_size(65, 49, 320) == (64, 48)
    assert output_size(1920, 1080, 256) == (456, 256)


def test_rewrite_video_names_touches_only_known_videos():
    renamed = {"v_A_g01_c01.avi": "v_A_g01_c01.mp4", "my clip.webm": "my clip.mp4", "x.MOV": "x.mp4"}
    text = (
        "A/v_A_g01_c01.avi 1\r\n"
        "videos/my clip.webm 3\n"
        "/abs/x.MOV,label\n"
        "A/v_A_g02_c01.avi 1\n"  # not a video of the data set: left alone
        "notes.avi.txt\n"  # not a video name at all
    )
    assert rewrite_video_names(text, renamed) == (
        "A/v_A_g01_c01.mp4 1\r\nvideos/my clip.mp4 3\n/abs/x.mp4,label\nA/v_A_g02_c01.avi 1\nnotes.avi.txt\n"
    )


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
