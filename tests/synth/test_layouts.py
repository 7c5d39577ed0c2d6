"""The layouts `synth` writes, as the readers expect them: NTU names with three cameras per performance and
cross-subject performers on both sides, UCF-101 groups with official split lists that hold out whole groups, and
a list file naming every video with its class."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np

from vjepa_tune.synth import synthesize
from vjepa_tune.synth.actions import CLASS_MOTIONS
from vjepa_tune.synth.layouts import NTU_ACTIONS, UCF_CLASS_NAMES, ucf_test_groups

CLASSES = ["sitting_down", "standing_up", "waving", "other"]

SMALL = {"size": (64, 48), "frames": 6, "progress": False}

NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})_rgb\.avi")


def decode(path: Path) -> tuple[np.ndarray, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.codec_context.name


def videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi"))


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
