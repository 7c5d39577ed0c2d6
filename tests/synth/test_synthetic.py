"""The synthetic stick-figure data set: real decodable files, reproducible, in each layout, with the
time-reversed sitting/standing pair that only a frame-order-aware model can separate."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import av
import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth import synthetic
from vjepa_tune.synth.motions import CLASS_MOTIONS, MOTIONS, Motion, Pose, motion_poses, register_motion
from vjepa_tune.synth.synthetic import (
    NTU_ACTIONS,
    UCF_CLASS_NAMES,
    draw_class_spec,
    parse_size,
    render_clip,
    render_joined_clips,
    render_sequence,
    render_spec,
    skeleton,
    synthesize,
    ucf_test_groups,
    write_video,
)

CLASSES = ["sitting_down", "standing_up", "waving", "other"]
SMALL = {"size": (64, 48), "frames": 6, "progress": False}


def decode(path: Path) -> tuple[np.ndarray, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.codec_context.name


def videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi"))


# --- files ----------------------------------------------------------------------------------------


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


def test_write_video_picks_the_codec_from_the_extension(tmp_path: Path) -> None:
    frames = render_clip("wave", 1, 4, (32, 32))
    write_video(tmp_path / "a.avi", frames, 25)
    write_video(tmp_path / "a.mp4", frames, 25)
    assert decode(tmp_path / "a.avi")[1] == "mpeg4"
    decoded, codec = decode(tmp_path / "a.mp4")
    assert codec == "h264" and decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 6, "colours survive the YUV conversion"
    with pytest.raises(BadInput, match=r"\.webm"):
        write_video(tmp_path / "a.webm", frames, 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.avi", "a.mp4"], "no temporary file is left"


def test_full_hd_frames_render_and_encode(tmp_path: Path) -> None:
    frames = render_clip("sit_down", 0, 2, (1920, 1080))
    write_video(tmp_path / "hd.mp4", frames, 30)
    decoded, _ = decode(tmp_path / "hd.mp4")
    assert decoded.shape == (2, 1080, 1920, 3)


# --- determinism ----------------------------------------------------------------------------------


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


def test_render_clip_is_a_pure_function_of_its_seed() -> None:
    a = render_clip("jump", 11, 5, (48, 32))
    assert a.shape == (5, 32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_clip("jump", 11, 5, (48, 32)))
    assert np.array_equal(
        render_clip("jump", random.Random(7), 5, (48, 32)), render_clip("jump", random.Random(7), 5, (48, 32))
    )
    assert not np.array_equal(a, render_clip("jump", 12, 5, (48, 32)))


# --- layouts --------------------------------------------------------------------------------------

NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})_rgb\.avi")


def test_ntu_layout_names_three_cameras_of_each_performance(tmp_path: Path) -> None:
    summary = synthesize(tmp_path, layout="ntu", videos_per_class=7, workers=1, **SMALL)
    files = videos(tmp_path)
    assert summary.num_files == len(files) == 28
    assert all(f.parent == tmp_path / "nturgb+d_rgb" for f in files)
    parsed = [tuple(int(g) for g in NTU_NAME.fullmatch(f.name).groups()) for f in files]
    actions = [a for *_, a in parsed]
    assert actions.count(8) == actions.count(9) == actions.count(23) == 7
    other_ids = {NTU_ACTIONS[m] for m in CLASS_MOTIONS["other"]}
    assert sum(a in other_ids for a in actions) == 7 and not other_ids & {8, 9, 23}
    assert {c for _, c, *_ in parsed} == {1, 2, 3}
    assert {r for *_, r, _ in parsed} <= {1, 2}
    performances: dict[tuple[int, int, int, int], list[int]] = {}
    for s, c, p, r, a in parsed:
        performances.setdefault((s, p, r, a), []).append(c)
    assert sorted(len(cams) for cams in performances.values()).count(3) == 8, (
        "7 = 3 + 3 + 1 cameras per class"
    )
    performers = {p for _, _, p, _, _ in parsed}
    assert performers & {1, 2, 4, 5, 8} and performers & {3, 6, 7}, "cross-subject train and test performers"
    frames, codec = decode(files[0])
    assert codec == "mpeg4" and frames.shape == (6, 48, 64, 3)
    s, c, p, r, a = parsed[0]
    views = [
        decode(tmp_path / "nturgb+d_rgb" / f"S{s:03d}C{cam:03d}P{p:03d}R{r:03d}A{a:03d}_rgb.avi")[0]
        for cam in (1, 2, 3)
    ]
    assert not np.array_equal(views[0], views[1]) and not np.array_equal(views[1], views[2])


def test_ucf101_layout_with_official_splits_holding_out_whole_groups(tmp_path: Path) -> None:
    synthesize(tmp_path, layout="ucf101", videos_per_class=9, workers=1, **SMALL)
    lists = tmp_path / "ucfTrainTestlist"
    index = [line.split() for line in (lists / "classInd.txt").read_text().splitlines()]
    names = [name for _, name in index]
    assert [int(i) for i, _ in index] == [1, 2, 3, 4]
    assert (
        names
        == sorted(UCF_CLASS_NAMES.values(), key=str.lower)
        == ["Other", "SittingDown", "StandingUp", "Waving"]
    )
    label = {name: int(i) for i, name in index}
    every = {p.relative_to(tmp_path / "UCF-101").as_posix() for p in videos(tmp_path / "UCF-101")}
    assert len(every) == 36
    for rel in every:
        folder, file = rel.split("/")
        assert re.fullmatch(rf"v_{folder}_g\d\d_c\d\d\.avi", file), rel
    tested_once: dict[str, int] = {}
    for fold in (1, 2, 3):
        train_lines = (lists / f"trainlist0{fold}.txt").read_text().splitlines()
        train = {}
        for line in train_lines:
            rel, number = line.split()
            assert label[rel.split("/")[0]] == int(number), line
            train[rel] = int(number)
        test = {line.strip() for line in (lists / f"testlist0{fold}.txt").read_text().splitlines()}
        assert set(train) | test == every and not set(train) & test

        def groups(rels: set[str]) -> set[str]:
            return {rel.rsplit("_c", 1)[0] for rel in rels}

        assert not groups(set(train)) & groups(test), "a group is never on both sides"
        assert 0 < len(test) < len(every)
        for group in groups(test):
            tested_once[group] = tested_once.get(group, 0) + 1
    assert set(tested_once.values()) == {1} and len(tested_once) == len({r.rsplit("_c", 1)[0] for r in every})


def test_ucf_test_groups_partition_the_groups_into_thirds() -> None:
    folds = [ucf_test_groups(25, k) for k in (1, 2, 3)]
    assert set().union(*folds) == set(range(1, 26))
    assert sum(len(f) for f in folds) == 25 and all(8 <= len(f) <= 9 for f in folds)


def test_list_layout_lists_every_video_with_its_class(tmp_path: Path) -> None:
    summary = synthesize(tmp_path, layout="list", videos_per_class=2, workers=1, **SMALL)
    assert summary.list_file == tmp_path / "list.txt"
    assert "--data.list_file" in summary.data_flags()
    entries = [line.split() for line in summary.list_file.read_text().splitlines()]
    assert sorted(cls for _, cls in entries) == sorted(CLASSES * 2)
    assert {rel for rel, _ in entries} == {p.relative_to(tmp_path).as_posix() for p in videos(tmp_path)}
    assert all(rel.startswith("videos/") and (tmp_path / rel).is_file() for rel, _ in entries)


# --- motions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", range(5))
def test_standing_up_is_sitting_down_reversed_pose_for_pose(key: int) -> None:
    sit, stand = MOTIONS["sit_down"], MOTIONS["stand_up"]
    params = sit.draw_params(keyed_random("pose-test", key))
    assert stand.draw_params(keyed_random("pose-test", key)) == params, "same parameter distribution"
    phases = [i / 32 for i in range(33)]
    sitting = motion_poses("sit_down", params, phases)
    standing = motion_poses("stand_up", params, phases)
    assert standing == sitting[::-1]
    look = synthetic._draw_look(keyed_random("look", key))
    hips = [skeleton(p, look)["hip"][1] for p in sitting]
    assert hips[-1] < hips[0] - 0.15, "sitting down lowers the hips onto the chair"
    assert sit.chair and stand.chair and stand.seated_phase == 1 - sit.seated_phase


def test_actions_take_a_random_sub_span_with_idle_equally_likely_before_and_after() -> None:
    before, after, lengths = [], [], set()
    for key in range(300):
        segment = draw_class_spec("sitting_down", keyed_random("timing", key), 32, (32, 32)).segments[0]
        before.append(segment.action_start)
        after.append(32 - segment.action_start - segment.action_length)
        lengths.add(segment.action_length)
    assert min(before) == min(after) == 0 and min(before + after) >= 0
    assert max(before) >= 8 and max(after) >= 8
    assert abs(np.mean(before) - np.mean(after)) < 1.0, "so standing_up clips are sitting_down clips reversed"
    assert len(lengths) >= 8, "speed varies"


def test_class_motions_are_registered_and_disjoint() -> None:
    assert list(CLASS_MOTIONS) == CLASSES
    names = [m for motions in CLASS_MOTIONS.values() for m in motions]
    assert len(names) == len(set(names)), "no motion belongs to two classes"
    assert set(names) <= set(MOTIONS)
    assert len(CLASS_MOTIONS["other"]) >= 5


def test_a_registered_motion_can_be_rendered_but_not_registered_twice() -> None:
    name = "test_lean_sideways"
    motion = Motion(name, lambda t, p: Pose(torso=p["lean"] * t), lambda rng: {"lean": 0.5}, "lean")
    try:
        register_motion(motion)
        with pytest.raises(ValueError, match=name):
            register_motion(motion)
        frames = render_clip(name, 0, 4, (32, 32))
        assert frames.shape == (4, 32, 32, 3)
    finally:
        MOTIONS.pop(name, None)


def test_figures_fill_half_to_most_of_the_frame_height() -> None:
    for key in range(6):
        spec = draw_class_spec("waving", keyed_random("height", key), 2, (96, 96))
        flat = dataclasses.replace(spec.backdrop, kind="flat", floor_color=None)
        spec = dataclasses.replace(
            spec, backdrop=flat, chair=None, camera=dataclasses.replace(spec.camera, shake=0.0)
        )
        first = render_spec(spec)[0].astype(int)
        figure_rows = np.flatnonzero((np.abs(first - flat.color0).sum(axis=2) > 60).any(axis=1))
        height = (figure_rows.max() - figure_rows.min() + 1) / 96
        assert 0.45 <= height <= 0.85, (key, height)


def test_render_sequence_joins_segments_and_reports_their_spans() -> None:
    seq = render_sequence([("sitting_down", 12), ("standing_up", 10), ("wave", 8)], 4, (48, 48))
    assert seq.frames.shape == (30, 48, 48, 3)
    assert [(s.name, s.start, s.stop) for s in seq.spans] == [
        ("sitting_down", 0, 12),
        ("standing_up", 12, 22),
        ("wave", 22, 30),
    ]
    assert [s.motion for s in seq.spans] == ["sit_down", "stand_up", "wave"]
    for span in seq.spans:
        assert span.start <= span.action_start < span.action_stop <= span.stop
    assert seq.spans[1].action_start > seq.spans[1].start, "the blend from the last pose precedes the action"
    assert seq.frame_labels()[11:13] == ["sitting_down", "standing_up"]
    with pytest.raises(BadInput, match="no_such_motion"):
        render_sequence([("no_such_motion", 4)], 0, (32, 32))


def test_joined_clips_are_separate_scenes_back_to_back() -> None:
    joined = render_joined_clips(["waving", "other", "waving"], 10, seed=3, size=(48, 48), variety=0.0)
    assert joined.frames.shape == (30, 48, 48, 3)
    assert [(s.name, s.start, s.stop) for s in joined.spans] == [("waving", 0, 10), ("other", 10, 20),
                                                                 ("waving", 20, 30)]
    assert joined.spans[0].motion == "wave" and joined.spans[1].motion in CLASS_MOTIONS["other"]
    assert joined.frame_labels() == ["waving"] * 10 + ["other"] * 10 + ["waving"] * 10
    first, third = joined.frames[:10], joined.frames[20:]
    assert not np.array_equal(first, third), "two clips of one class are two draws"
    again = render_joined_clips(["waving", "other", "waving"], 10, seed=3, size=(48, 48), variety=0.0)
    assert np.array_equal(again.frames, joined.frames)
    with pytest.raises(BadInput, match="jumping"):
        render_joined_clips(["jumping"], 10, seed=0)
    with pytest.raises(BadInput, match="variety"):
        render_joined_clips(["waving"], 10, seed=0, variety=-3)


# --- refusals and reruns --------------------------------------------------------------------------


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
    assert "variety" not in (full.out_dir / synthetic.MANIFEST).read_text()  # old folders still match
    plain = synthetic._plan("folder", 0, 2, (64, 48), 6)
    assert synthetic._plan("folder", 0, 2, (64, 48), 6, variety=1.0) == plain
    eased = synthetic._plan("folder", 0, 2, (64, 48), 6, variety=0.0)
    for before, after in zip(plain, eased, strict=True):
        assert before.relpath == after.relpath and before.spec.segments == after.spec.segments
        assert after.spec.camera.figure_height == pytest.approx(0.8) and after.spec.camera.shake == 0
        assert after.spec.look.line >= before.spec.look.line
    half = synthetic._plan("folder", 0, 2, (64, 48), 6, variety=0.5)
    assert all(
        min(a.spec.camera.figure_height, b.spec.camera.figure_height)
        <= h.spec.camera.figure_height
        <= max(a.spec.camera.figure_height, b.spec.camera.figure_height)
        for a, h, b in zip(plain, half, eased, strict=True)
    )
    easy = synthesize(tmp_path / "easy", videos_per_class=2, variety=0.0, workers=1, **SMALL)
    assert '"variety": 0.0' in (easy.out_dir / synthetic.MANIFEST).read_text()
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
    convert = synthetic.rgb_to_yuv420p
    calls = {"n": 0}

    def failing(frame: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3 * SMALL["frames"] + 2:
            raise KeyboardInterrupt
        return convert(frame)

    monkeypatch.setattr(synthetic, "rgb_to_yuv420p", failing)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path, videos_per_class=2, workers=1, **SMALL)
    written = videos(tmp_path)
    assert len(written) == 3, "three whole videos, the fourth never appears"
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".part")]
    for path in written:
        assert decode(path)[0].shape[0] == SMALL["frames"]
    monkeypatch.setattr(synthetic, "rgb_to_yuv420p", convert)
    summary = synthesize(tmp_path, videos_per_class=2, workers=1, **SMALL)
    assert summary.skipped == 3 and summary.written == 5 and len(videos(tmp_path)) == 8
