"""`synthesize`: real decodable files in the requested shape, the same bytes whatever the worker count, checked
arguments, reruns that skip finished files and never mix two generations, no partial file after an interruption."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.synth import encoding, parse_size, synthesize
from vjepa_tune.synth.layouts import plan
from vjepa_tune.synth.writing import MANIFEST

CLASSES = ["sitting_down", "standing_up", "waving", "other"]

SMALL = {"size": (64, 48), "frames": 6, "progress": False}


def decode(path: Path) -> tuple[np.ndarray, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.codec_context.name


def videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi"))


def test_folder_layout_writes_decodable_videos_of_the_requested_shape(tmp_path: Path) -> None:
    summary = synthesize(tmp_path / "out", videos_per_class=2, workers=1, **SMALL)
    assert summary.num_files == 8 and summary.written == 8 and summary.skipped == 0
    assert summary.per_class == dict.fromkeys(CLASSES, 2)
    assert summary.root == tmp_path / "out"
    for cls in CLASSES:
        for i in range(2):
            frames, codec = decode(tmp_path / "out" / cls / f"{cls}_{i:04d}.mp4")
            assert codec == "h264"
            assert frames.shape == (6, 48, 64, 3)
            assert len({f.tobytes() for f in frames}) > 1, "the figure must move"
    assert len(videos(tmp_path / "out")) == 8
    with av.open(str(tmp_path / "out" / "waving" / "waving_0000.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert container.streams.video[0].average_rate == 25


def test_same_seed_gives_identical_files_whatever_the_worker_count(tmp_path: Path) -> None:
    one = synthesize(tmp_path / "one", videos_per_class=2, seed=5, workers=1, **SMALL)
    two = synthesize(tmp_path / "two", videos_per_class=2, seed=5, workers=2, **SMALL)
    other = synthesize(tmp_path / "other", videos_per_class=2, seed=6, workers=1, **SMALL)
    names = [p.relative_to(one.root) for p in videos(one.root)]
    assert names == [p.relative_to(two.root) for p in videos(two.root)]
    for name in names:
        assert (one.root / name).read_bytes() == (two.root / name).read_bytes(), name
        assert not np.array_equal(decode(one.root / name)[0], decode(other.root / name)[0]), name


def test_a_video_depends_only_on_seed_class_and_index(tmp_path: Path) -> None:
    small = synthesize(tmp_path / "small", videos_per_class=1, seed=3, workers=1, **SMALL)
    large = synthesize(tmp_path / "large", videos_per_class=3, seed=3, workers=1, **SMALL)
    for cls in CLASSES:
        name = Path(cls) / f"{cls}_0000.mp4"
        assert (small.root / name).read_bytes() == (large.root / name).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"layout": "kinetics"}, "--layout"),
        ({"size": (16, 16)}, "--size"),
        ({"size": (33, 32)}, "--size"),
        ({"size": "abc"}, "--size"),
        ({"frames": 1}, "--frames"),
        ({"videos_per_class": 0}, "--videos_per_class"),
        ({"fps": 0}, "--fps"),
        ({"variety": 1.5}, "--variety"),
        ({"variety": -0.1}, "--variety"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(tmp_path: Path, kwargs: dict, flag: str) -> None:
    with pytest.raises(BadInput, match=re.escape(flag)):
        synthesize(tmp_path / "out", **{"progress": False, **kwargs})
    assert not (tmp_path / "out").exists(), "nothing is written before the values are checked"


def test_parse_size() -> None:
    assert parse_size("96") == (96, 96)
    assert parse_size("320x240") == (320, 240)
    assert parse_size("1920X1080") == (1920, 1080)
    for text in ("", "x", "96x", "320x240x3", "-96", "96.5", "31", "97"):
        with pytest.raises(BadInput, match="--size"):
            parse_size(text)


def test_lower_variety_eases_how_videos_look_but_not_what_happens(tmp_path: Path) -> None:
    full = synthesize(tmp_path / "full", videos_per_class=2, workers=1, **SMALL)
    assert "variety" not in (full.out_dir / MANIFEST).read_text()  # old folders still match
    plain = plan("folder", 0, 2, (64, 48), 6)
    assert plan("folder", 0, 2, (64, 48), 6, variety=1.0) == plain
    eased = plan("folder", 0, 2, (64, 48), 6, variety=0.0)
    for before, after in zip(plain, eased, strict=True):
        assert before.relpath == after.relpath and before.spec.segments == after.spec.segments
        assert after.spec.camera.figure_height == pytest.approx(0.8) and after.spec.camera.shake == 0
        assert after.spec.look.line >= before.spec.look.line
    half = plan("folder", 0, 2, (64, 48), 6, variety=0.5)
    assert all(
        min(a.spec.camera.figure_height, b.spec.camera.figure_height)
        <= h.spec.camera.figure_height
        <= max(a.spec.camera.figure_height, b.spec.camera.figure_height)
        for a, h, b in zip(plain, half, eased, strict=True)
    )
    easy = synthesize(tmp_path / "easy", videos_per_class=2, variety=0.0, workers=1, **SMALL)
    assert '"variety": 0.0' in (easy.out_dir / MANIFEST).read_text()
    first = "waving/waving_0000.mp4"
    assert decode(tmp_path / "easy" / first)[0].shape == decode(tmp_path / "full" / first)[0].shape
    assert not np.array_equal(decode(tmp_path / "easy" / first)[0], decode(tmp_path / "full" / first)[0])
    with pytest.raises(BadInput, match="variety"):
        synthesize(tmp_path / "easy", videos_per_class=2, variety=0.5, workers=1, **SMALL)


def test_rerun_skips_existing_files_and_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    synthesize(out, videos_per_class=1, workers=1, **SMALL)
    kept = out / "waving" / "waving_0000.mp4"
    kept.write_bytes(b"not replaced")
    again = synthesize(out, videos_per_class=1, workers=1, **SMALL)
    assert again.skipped == 4 and again.written == 0 and kept.read_bytes() == b"not replaced"
    with pytest.raises(BadInput, match="seed"):
        synthesize(out, videos_per_class=1, seed=1, workers=1, **SMALL)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        synthesize(foreign, videos_per_class=1, workers=1, **SMALL)


def test_an_interrupted_run_leaves_no_partial_file_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    convert = encoding.rgb_to_yuv420p
    calls = {"n": 0}

    def failing(frame: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3 * SMALL["frames"] + 2:
            raise KeyboardInterrupt
        return convert(frame)

    monkeypatch.setattr(encoding, "rgb_to_yuv420p", failing)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path, videos_per_class=2, workers=1, **SMALL)
    written = videos(tmp_path)
    assert len(written) == 3, "three whole videos, the fourth never appears"
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".part")]
    for path in written:
        assert decode(path)[0].shape[0] == SMALL["frames"]
    monkeypatch.setattr(encoding, "rgb_to_yuv420p", convert)
    summary = synthesize(tmp_path, videos_per_class=2, workers=1, **SMALL)
    assert summary.skipped == 3 and summary.written == 5 and len(videos(tmp_path)) == 8


def test_long_videos_come_with_their_ground_truth_and_resume_like_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vjepa_tune.cli import main
    from vjepa_tune.data.annotations import read_annotations
    from vjepa_tune.data.video import probe_video
    from vjepa_tune.synth import synthesize_long

    out = tmp_path / "long"
    argv = ["synth", str(out), "--long", "3", "--actions", "4", "--idle", "0.2,0.6", "--size", "48", "--frames",
            "16", "--variety", "0", "--workers", "2"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"--detection {out / 'annotations.json'} --data.root {out / 'videos'}" in said
    truth = read_annotations(out / "annotations.json")
    assert list(truth.videos) == ["long_0000", "long_0001", "long_0002"]
    assert [v.subset for v in truth.videos.values()] == ["validation", "validation", "test"]
    for key, video in truth.videos.items():
        info = probe_video(out / "videos" / f"{key}.mp4")
        assert video.duration_s == pytest.approx(info.duration_s) and video.fps == info.fps == 25
        assert len(video.segments) == 4
    assert set(truth.label_ids()) <= set(CLASSES)
    first = {p.name: p.read_bytes() for p in videos(out)}
    one = synthesize_long(tmp_path / "one", videos=3, actions=4, idle_s=(0.2, 0.6), size=(48, 48), frames=16,
                          variety=0.0, workers=1, progress=False)
    assert {p.name: p.read_bytes() for p in videos(one.videos_dir)} == first, "the worker count changes nothing"
    again = synthesize_long(out, videos=3, actions=4, idle_s=(0.2, 0.6), size=(48, 48), frames=16, variety=0.0,
                            progress=False)
    assert again.written == 0 and again.num_files == 3
    with pytest.raises(BadInput, match="actions differ"):
        synthesize_long(out, videos=3, actions=5, idle_s=(0.2, 0.6), size=(48, 48), frames=16, variety=0.0)
    assert main(["synth", str(tmp_path / "x"), "--long", "2", "--layout", "ucf101"]) == 2
    assert main(["synth", str(tmp_path / "y"), "--actions", "3"]) == 2
    assert "give --long N too" in capsys.readouterr().err
