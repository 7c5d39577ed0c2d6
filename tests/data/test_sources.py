"""Readers on fake layouts of empty files (sources never decode), including each layout's known traps."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from vjepa_tune.config import DataConfig, validate_data
from vjepa_tune.data.samples import DatasetIndex
from vjepa_tune.data.sources import (
    NTU_ACTION_NAMES,
    NTU_XSUB_TRAIN_PERFORMERS,
    detect_format,
    ntu_action_name,
    read_dataset,
)
from vjepa_tune.errors import BadInput


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def by_class(index: DatasetIndex) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {name: [] for name in index.classes}
    for s in index.samples:
        found[index.classes[s.label]].append(s.id)
    return {name: sorted(ids) for name, ids in found.items()}


# ------------------------------------------------------------------------------------------------------------
# videos (unlabelled)


def test_videos_reads_every_video_at_any_depth_without_labels(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "2024-06" / "cam1" / "b.MOV")
    touch(tmp_path / "2024-06" / "notes.txt")
    touch(tmp_path / ".trash" / "c.mp4")  # hidden folder
    index = read_dataset(DataConfig(root=tmp_path, format="videos"))
    assert index.format == "videos" and index.classes == ["unlabelled"]
    assert [s.id for s in index.samples] == ["2024-06/cam1/b.MOV", "a.mp4"]
    assert {s.label for s in index.samples} == {0}


def test_pretraining_reads_a_folder_no_labelled_layout_fits_whole_and_a_labelled_one_as_it_is(tmp_path):
    touch(tmp_path / "loose.mp4")
    touch(tmp_path / "walk" / "a.mp4")
    assert read_dataset(DataConfig(root=tmp_path), unlabelled=True).format == "videos"
    assert len(read_dataset(DataConfig(root=tmp_path), unlabelled=True).samples) == 2, "the loose one too"
    assert len(read_dataset(DataConfig(root=tmp_path)).samples) == 1, "train's folder layout: class folders only"
    assert read_dataset(DataConfig(root=tmp_path, format="folder"), unlabelled=True).format == "folder"
    write(tmp_path / "list" / "train.txt", "walk/a.mp4 walk\n")
    listed = read_dataset(DataConfig(root=tmp_path, format="list", list_file=tmp_path / "list" / "train.txt"),
                          unlabelled=True)
    assert listed.format == "list" and [s.id for s in listed.samples] == ["walk/a.mp4"]


def test_a_folder_without_videos_is_refused_naming_it(tmp_path):
    touch(tmp_path / "notes.txt")
    with pytest.raises(BadInput, match=f"no videos found for --data.format videos under {tmp_path}"):
        read_dataset(DataConfig(root=tmp_path, format="videos"))


def test_train_refuses_unlabelled_videos():
    from vjepa_tune.config import TrainConfig, validate

    with pytest.raises(BadInput, match="--data.format videos reads videos without labels"):
        validate(TrainConfig(data=DataConfig(format="videos")))


# ------------------------------------------------------------------------------------------------------------
# folder


def test_folder_reads_classes_from_subfolders_at_any_depth(tmp_path):
    touch(tmp_path / "walk" / "a.mp4")
    touch(tmp_path / "walk" / "day2" / "b.MP4")  # nested and upper-case extension
    touch(tmp_path / "run" / "c.webm")
    touch(tmp_path / "run" / "notes.txt")  # not a video
    touch(tmp_path / "run" / ".hidden.mp4")  # hidden file, e.g. macOS metadata
    index = read_dataset(DataConfig(root=tmp_path, format="folder"))
    assert index.classes == ["run", "walk"]
    assert by_class(index) == {"run": ["run/c.webm"], "walk": ["walk/a.mp4", "walk/day2/b.MP4"]}
    assert all(s.group is None and s.official_split is None for s in index.samples)
    assert all(s.path == tmp_path / s.id for s in index.samples)


def test_folder_notes_videos_outside_class_folders(tmp_path):
    touch(tmp_path / "walk" / "a.mp4")
    touch(tmp_path / "stray.avi")
    index = read_dataset(DataConfig(root=tmp_path, format="folder"))
    assert [s.id for s in index.samples] == ["walk/a.mp4"]
    assert any("stray.avi" in note for note in index.notes)


def test_folder_refuses_videos_without_class_folders(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.mp4")
    with pytest.raises(BadInput, match="no class folders"):
        read_dataset(DataConfig(root=tmp_path, format="folder"))


# ------------------------------------------------------------------------------------------------------------
# list


def test_list_with_crlf_comments_spaces_and_integer_labels(tmp_path):
    touch(tmp_path / "clips" / "my video.mp4")
    touch(tmp_path / "clips" / "b.mp4")
    touch(tmp_path / "clips" / "c.mp4")
    lines = "# path label\n\nclips/my video.mp4 10\nclips/b.mp4   2\nclips/c.mp4\t10\n"
    list_file = write(tmp_path / "train.txt", lines, newline="\r\n")
    index = read_dataset(DataConfig(root=tmp_path, format="list", list_file=list_file))
    assert index.classes == ["2", "10"]  # numeric, not text, order
    assert by_class(index) == {"2": ["clips/b.mp4"], "10": ["clips/c.mp4", "clips/my video.mp4"]}
    assert any("renumbered" in note for note in index.notes)


def test_list_with_class_names_resolves_beside_the_list_then_under_the_root(tmp_path):
    root = tmp_path / "data"
    touch(root / "v" / "x.mp4")  # found under the root
    touch(tmp_path / "lists" / "near.mp4")  # found beside the list file
    list_file = write(tmp_path / "lists" / "all.txt", "v/x.mp4 wave\nnear.mp4 sit\n")
    index = read_dataset(DataConfig(root=root, format="list", list_file=list_file))
    assert index.classes == ["sit", "wave"]
    paths = {index.classes[s.label]: s.path for s in index.samples}
    assert paths == {"wave": root / "v" / "x.mp4", "sit": tmp_path / "lists" / "near.mp4"}
    assert {s.id for s in index.samples} == {"v/x.mp4", (tmp_path / "lists" / "near.mp4").as_posix()}


def test_list_file_is_found_relative_to_the_root(tmp_path):
    touch(tmp_path / "a.mp4")
    write(tmp_path / "meta" / "train.txt", "../a.mp4 0\n")
    index = read_dataset(DataConfig(root=tmp_path, format="list", list_file=Path("meta/train.txt")))
    assert [s.path.resolve() for s in index.samples] == [(tmp_path / "a.mp4").resolve()]


def test_list_malformed_line_names_file_and_line(tmp_path):
    touch(tmp_path / "a.mp4")
    list_file = write(tmp_path / "train.txt", "a.mp4 0\n# comment\na.mp4\n")
    with pytest.raises(BadInput, match=r"train\.txt, line 3") as err:
        read_dataset(DataConfig(root=tmp_path, format="list", list_file=list_file))
    assert "'a.mp4'" in str(err.value)


def test_list_mixed_label_kinds_names_the_line(tmp_path):
    touch(tmp_path / "a.mp4")
    list_file = write(tmp_path / "train.txt", "a.mp4 0\na.mp4 walk\n")
    with pytest.raises(BadInput, match=r"line 2: label 'walk'"):
        read_dataset(DataConfig(root=tmp_path, format="list", list_file=list_file))


def test_list_missing_videos_are_listed(tmp_path):
    touch(tmp_path / "a.mp4")
    list_file = write(tmp_path / "train.txt", "a.mp4 0\ngone1.mp4 1\ngone2.mp4 1\n")
    with pytest.raises(BadInput, match="2 listed videos do not exist") as err:
        read_dataset(DataConfig(root=tmp_path, format="list", list_file=list_file))
    assert "gone1.mp4 (line 2)" in str(err.value) and "gone2.mp4 (line 3)" in str(err.value)


def test_list_file_missing_is_refused(tmp_path):
    touch(tmp_path / "a.mp4")
    with pytest.raises(BadInput, match="nothere.txt does not exist"):
        read_dataset(DataConfig(root=tmp_path, format="list", list_file=tmp_path / "nothere.txt"))


# ------------------------------------------------------------------------------------------------------------
# NTU RGB+D


def ntu_file(root: Path, setup=1, camera=1, performer=1, replication=1, action=8, ext="avi") -> Path:
    name = f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}_rgb.{ext}"
    return touch(root / "nturgb+d_rgb" / name)


def ntu_field(sample_id: str, letter: str) -> str:
    """'S001', 'C002', 'A008'... read back from an NTU file name."""
    return re.search(letter + r"\d{3}", sample_id.rsplit("/", 1)[-1]).group(0)


def make_ntu(root: Path, per_action: dict[int, int]) -> None:
    """`per_action[a]` videos of action a, spread over cameras, performers and setups."""
    for action, count in per_action.items():
        for k in range(count):
            ntu_file(
                root, setup=1 + k % 3, camera=1 + k % 3, performer=1 + k // 3, replication=1, action=action
            )


def test_ntu_action4_classes_and_balanced_other(tmp_path):
    make_ntu(tmp_path, {8: 6, 9: 4, 23: 5, 1: 10, 2: 10, 3: 1, 10: 10})
    index = read_dataset(DataConfig(root=tmp_path, format="ntu", task="action4"), seed=42)
    assert index.classes == ["sitting_down", "standing_up", "waving", "other"]
    counts = index.counts()
    assert counts == {"sitting_down": 6, "standing_up": 4, "waving": 5, "other": 6}  # other = largest named
    other_actions = Counter(ntu_field(s.id, "A") for s in index.samples if s.label == 3)
    assert other_actions["A003"] == 1  # the small action gives what it has
    assert sorted(other_actions[a] for a in ("A001", "A002", "A010")) == [
        1,
        2,
        2,
    ]  # the rest as evenly as possible
    named = {
        index.classes[s.label] for s in index.samples if ntu_field(s.id, "A") in ("A008", "A009", "A023")
    }
    assert named == {"sitting_down", "standing_up", "waving"}
    assert any("A023 (hand waving)" in note for note in index.notes)


def test_ntu_action4_other_draw_is_keyed_by_seed(tmp_path):
    make_ntu(tmp_path, {8: 3, 9: 3, 23: 3, 1: 12, 2: 12})
    config = DataConfig(root=tmp_path, format="ntu")
    first = {s.id for s in read_dataset(config, seed=1).samples}
    assert first == {s.id for s in read_dataset(config, seed=1).samples}
    assert any(first != {s.id for s in read_dataset(config, seed=seed).samples} for seed in (2, 3, 4))


def test_ntu_action4_refuses_data_without_named_actions(tmp_path):
    make_ntu(tmp_path, {1: 3, 2: 3})
    with pytest.raises(BadInput, match="A008"):
        read_dataset(DataConfig(root=tmp_path, format="ntu", task="action4"))


def test_ntu_all_task_has_one_class_per_action(tmp_path):
    make_ntu(tmp_path, {8: 2, 120: 1, 1: 2})
    index = read_dataset(DataConfig(root=tmp_path, format="ntu", task="all"))
    assert index.classes == ["A001", "A008", "A120"]
    assert index.counts() == {"A001": 2, "A008": 2, "A120": 1}


@pytest.mark.parametrize(
    ("performer", "official"),
    [(1, "train"), (3, "test"), (38, "train"), (40, "test"), (45, "train"), (103, "train"), (41, "test")],
)
def test_ntu_cross_subject_membership(tmp_path, performer, official):
    ntu_file(tmp_path, performer=performer, action=8, ext="mp4")
    index = read_dataset(DataConfig(root=tmp_path, format="ntu", task="all", protocol="xsub"))
    (sample,) = index.samples
    assert sample.official_split == official
    assert sample.group == f"P{performer:03d}"


def test_ntu_cross_subject_list_is_the_published_one():
    ntu60 = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
    assert {p for p in NTU_XSUB_TRAIN_PERFORMERS if p <= 40} == ntu60
    assert len(NTU_XSUB_TRAIN_PERFORMERS) == 20 + 33


def test_ntu_cross_view_and_cross_setup(tmp_path):
    for camera in (1, 2, 3):
        for setup in (17, 18):
            ntu_file(tmp_path, setup=setup, camera=camera, action=8)
    xview = read_dataset(DataConfig(root=tmp_path, format="ntu", task="all", protocol="xview"))
    assert {ntu_field(s.id, "C"): s.official_split for s in xview.samples} == {
        "C001": "test",
        "C002": "train",
        "C003": "train",
    }
    xset = read_dataset(
        DataConfig(root=tmp_path, format="ntu", task="all", protocol="xset", split="official")
    )
    assert {ntu_field(s.id, "S"): s.official_split for s in xset.samples} == {"S017": "test", "S018": "train"}


def test_ntu_cross_setup_is_refused_on_ntu60(tmp_path):
    ntu_file(tmp_path, setup=17, action=8)
    with pytest.raises(BadInput, match="NTU-120"):
        read_dataset(DataConfig(root=tmp_path, format="ntu", protocol="xset", split="official"))


def test_ntu_ignores_and_notes_other_files(tmp_path):
    ntu_file(tmp_path, action=8)
    touch(tmp_path / "nturgb+d_rgb" / "S001C001P001R001A008_depth.avi")
    index = read_dataset(DataConfig(root=tmp_path, format="ntu", task="all"))
    assert len(index.samples) == 1
    assert any("_depth.avi" in note for note in index.notes)


def test_ntu_action_names():
    assert len(NTU_ACTION_NAMES) == 120
    assert ntu_action_name("A008") == "A008 (sitting down)"
    assert NTU_ACTION_NAMES[9].startswith("standing up")
    assert (NTU_ACTION_NAMES[22], NTU_ACTION_NAMES[80]) == ("cheer up", "squat down")


# ------------------------------------------------------------------------------------------------------------
# UCF-101

UCF_CLASSES = ["ApplyEyeMakeup", "Hammering", "HammerThrow", "HandstandPushups", "JumpingJack", "JumpRope"]


def ucf_file_name(cls: str, group: int, clip: int) -> str:
    stem = "HandStandPushups" if cls == "HandstandPushups" else cls  # the real data set's spelling
    return f"v_{stem}_g{group:02d}_c{clip:02d}.avi"


def make_ucf(base: Path, lists_dir: Path | None, groups=(1, 2, 8, 9), with_lists=True) -> None:
    videos = base / "UCF-101"
    for cls in UCF_CLASSES:
        for g in groups:
            touch(videos / cls / ucf_file_name(cls, g, 1))
    if lists_dir is None:
        return
    write(lists_dir / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)), "\r\n")
    if with_lists:
        train = [
            f"{c}/{ucf_file_name(c, g, 1)} {i}" for i, c in enumerate(UCF_CLASSES, 1) for g in groups if g > 7
        ]
        test = [f"{c}/{ucf_file_name(c, g, 1)}" for c in UCF_CLASSES for g in groups if g <= 7]
        write(lists_dir / "trainlist01.txt", "\n".join(train) + "\n", "\r\n")
        write(lists_dir / "testlist01.txt", "\n".join(test) + "\n", "\r\n")


def test_ucf101_labels_from_classind_and_class_from_folder(tmp_path):
    make_ucf(tmp_path, tmp_path / "ucfTrainTestlist")
    index = read_dataset(DataConfig(root=tmp_path, format="ucf101"))
    assert (
        index.classes == UCF_CLASSES
    )  # classInd order: Hammering before HammerThrow, JumpingJack before JumpRope
    handstand = [s for s in index.samples if "HandStandPushups" in s.id]
    assert len(handstand) == 4
    assert {index.classes[s.label] for s in handstand} == {"HandstandPushups"}
    assert all(s.id.startswith("UCF-101/") for s in index.samples)


def test_ucf101_groups_and_official_fold_from_crlf_lists(tmp_path):
    make_ucf(tmp_path, tmp_path / "ucfTrainTestlist")
    index = read_dataset(DataConfig(root=tmp_path, format="ucf101", fold=1))
    splits = {(s.group, s.official_split) for s in index.samples}
    assert splits == {("g01", "test"), ("g02", "test"), ("g08", "train"), ("g09", "train")}


def test_ucf101_root_may_be_the_video_folder_with_lists_beside(tmp_path):
    make_ucf(tmp_path, tmp_path / "ucfTrainTestlist")
    index = read_dataset(DataConfig(root=tmp_path / "UCF-101"))  # auto
    assert index.format == "ucf101"
    assert index.classes == UCF_CLASSES
    assert index.has_official_split
    assert "HandstandPushups/v_HandStandPushups_g01_c01.avi" in {s.id for s in index.samples}


def test_ucf101_root_may_hold_the_lists_inside_the_video_folder(tmp_path):
    make_ucf(tmp_path, tmp_path / "UCF-101" / "ucfTrainTestlist")
    index = read_dataset(DataConfig(root=tmp_path / "UCF-101", format="ucf101"))
    assert index.classes == UCF_CLASSES
    assert len(index.samples) == len(UCF_CLASSES) * 4


def test_ucf101_without_classind_sorts_folders_case_insensitively(tmp_path):
    make_ucf(tmp_path, None)
    index = read_dataset(DataConfig(root=tmp_path, format="ucf101"))
    assert index.classes == UCF_CLASSES  # a plain sort would put HammerThrow before Hammering
    assert sorted(UCF_CLASSES) != UCF_CLASSES
    assert not index.has_official_split
    assert any("case-insensitively" in note for note in index.notes)


def test_ucf101_missing_fold_list_is_refused_for_an_official_split(tmp_path):
    make_ucf(tmp_path, tmp_path / "ucfTrainTestlist")
    with pytest.raises(BadInput, match="trainlist02.txt"):
        read_dataset(DataConfig(root=tmp_path, format="ucf101", fold=2, split="official"))
    assert not read_dataset(DataConfig(root=tmp_path, format="ucf101", fold=2)).has_official_split


def test_ucf101_folder_not_in_classind_is_refused(tmp_path):
    make_ucf(tmp_path, tmp_path / "ucfTrainTestlist")
    touch(tmp_path / "UCF-101" / "Juggling" / "v_Juggling_g01_c01.avi")
    with pytest.raises(BadInput, match="Juggling"):
        read_dataset(DataConfig(root=tmp_path, format="ucf101"))


# ------------------------------------------------------------------------------------------------------------
# Something-Something v2


def make_ssv2(root: Path) -> None:
    labels = {"Pushing something from left to right": "1", "Holding something next to something": "0"}
    write(root / "labels" / "labels.json", json.dumps(labels))
    train = [
        {"id": "11", "template": "Holding [something] next to [something]"},
        {"id": "12", "template": "Pushing [something] from left to right"},
        {"id": "13", "template": "Pushing [something] from left to right"},
    ]
    val = [{"id": "21", "template": "Holding [something] next to [something]"}]
    write(root / "labels" / "train.json", json.dumps(train))
    write(root / "labels" / "validation.json", json.dumps(val))
    for video_id in ("11", "12", "21"):  # 13 was never downloaded
        touch(root / "20bn-something-something-v2" / f"{video_id}.webm")


def test_ssv2_templates_ids_and_official_sides(tmp_path):
    make_ssv2(tmp_path)
    index = read_dataset(DataConfig(root=tmp_path))
    assert index.format == "ssv2"
    assert index.classes == ["Holding something next to something", "Pushing something from left to right"]
    found = {s.id: (s.label, s.official_split) for s in index.samples}
    assert found == {
        "20bn-something-something-v2/11.webm": (0, "train"),
        "20bn-something-something-v2/12.webm": (1, "train"),
        "20bn-something-something-v2/21.webm": (0, "test"),
    }
    assert any("13" in note and "missing" in note for note in index.notes)


def test_ssv2_unknown_template_names_file_and_entry(tmp_path):
    make_ssv2(tmp_path)
    write(
        tmp_path / "labels" / "validation.json", json.dumps([{"id": "21", "template": "Dancing [something]"}])
    )
    with pytest.raises(BadInput, match=r"validation\.json, entry 0 \(id 21\).*'Dancing something'"):
        read_dataset(DataConfig(root=tmp_path, format="ssv2"))


# ------------------------------------------------------------------------------------------------------------
# Kinetics

KINETICS_CSV = """label,youtube_id,time_start,time_end,split
abseiling,aaa,0,10,train
abseiling,bbb,5,15,train
air drumming,ccc,14,24,train
air drumming,ddd,1,11,val
air drumming,eee,1,11,val
"""


def test_kinetics_rows_to_files_with_missing_noted(tmp_path):
    write(tmp_path / "annotations" / "k400.csv", KINETICS_CSV)
    touch(tmp_path / "train" / "abseiling" / "aaa_000000_000010.mp4")
    touch(tmp_path / "train" / "abseiling" / "bbb_000005_000015.mp4")
    touch(tmp_path / "train" / "air drumming" / "ccc_000014_000024.mp4")
    touch(tmp_path / "val" / "ddd_000001_000011.mp4")
    index = read_dataset(DataConfig(root=tmp_path))
    assert index.format == "kinetics"
    assert index.classes == ["abseiling", "air drumming"]
    found = {s.id: (index.classes[s.label], s.official_split) for s in index.samples}
    assert found == {
        "train/abseiling/aaa_000000_000010.mp4": ("abseiling", "train"),
        "train/abseiling/bbb_000005_000015.mp4": ("abseiling", "train"),
        "train/air drumming/ccc_000014_000024.mp4": ("air drumming", "train"),
        "val/ddd_000001_000011.mp4": ("air drumming", "val"),
    }
    assert any("eee_000001_000011" in note for note in index.notes)


def test_kinetics_without_any_video_is_refused(tmp_path):
    write(tmp_path / "train.csv", KINETICS_CSV)
    touch(tmp_path / "unrelated.mp4")
    with pytest.raises(BadInput, match="no videos found for --data.format kinetics"):
        read_dataset(DataConfig(root=tmp_path, format="kinetics"))


# ------------------------------------------------------------------------------------------------------------
# declared groups: --data.group_pattern (any format) and --data.list_groups (list files)


def groups_by_id(index: DatasetIndex) -> dict[str, str | None]:
    return {s.id: s.group for s in index.samples}


def test_group_pattern_groups_folder_videos_by_their_file_name_without_folders_or_extension(tmp_path):
    for rel in ("walk/rec1_clip1.mp4", "walk/rec1_clip2.avi", "walk/day2/rec3_clip1.mp4", "run/rec1_clip3.mkv"):
        touch(tmp_path / rel)
    index = read_dataset(DataConfig(root=tmp_path, group_pattern=r"^(.+)_clip\d+$"))
    assert groups_by_id(index) == {
        "run/rec1_clip3.mkv": "rec1",  # one recording may hold clips of several classes: still one group
        "walk/day2/rec3_clip1.mp4": "rec3",  # folders are not searched
        "walk/rec1_clip1.mp4": "rec1",
        "walk/rec1_clip2.avi": "rec1",
    }
    assert index.has_groups
    assert any("groups from --data.group_pattern" in note and "2 groups" in note for note in index.notes)
    # re.search: a partial pattern works; a named group `group` wins over an earlier capture group.
    partial = read_dataset(DataConfig(root=tmp_path, group_pattern=r"(clip)?(?P<group>rec\d)"))
    assert groups_by_id(partial) == groups_by_id(index)
    first = read_dataset(DataConfig(root=tmp_path, group_pattern=r"rec(\d)_(clip)"))
    assert set(groups_by_id(first).values()) == {"1", "3"}


def test_group_pattern_refuses_file_names_without_a_group_listing_the_first_few(tmp_path):
    touch(tmp_path / "walk" / "rec1_clip1.mp4")
    for k in range(7):
        touch(tmp_path / "run" / f"loose{k}.mp4")
    with pytest.raises(BadInput, match="--data.group_pattern") as err:
        read_dataset(DataConfig(root=tmp_path, group_pattern=r"^(rec\d+)_"))
    text = str(err.value)
    assert "finds no group in 7 of 8 video file names" in text
    assert "loose0.mp4, loose1.mp4, loose2.mp4, loose3.mp4, loose4.mp4 and 2 more" in text
    # The extension is not searched, so a pattern anchored on it finds nothing; an empty capture is no group.
    with pytest.raises(BadInput, match="finds no group in 8 of 8"):
        read_dataset(DataConfig(root=tmp_path, group_pattern=r"(\w+)\.mp4$"))
    with pytest.raises(BadInput, match="finds no group in 7 of 8"):
        read_dataset(DataConfig(root=tmp_path, group_pattern=r"^(rec\d+|)"))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"rec(\d+", r"--data.group_pattern 'rec\(\\d\+' is not a regular expression"),
        (r"rec\d+", r"--data.group_pattern 'rec\\d\+' has no capture group"),
        (r"(?:rec)\d+", "has no capture group"),
    ],
)
def test_a_group_pattern_that_cannot_name_groups_is_refused_naming_the_flag(tmp_path, pattern, message):
    touch(tmp_path / "walk" / "rec1.mp4")
    data = DataConfig(root=tmp_path, group_pattern=pattern)
    with pytest.raises(BadInput, match=message):
        validate_data(data)
    with pytest.raises(BadInput, match=message):
        read_dataset(data)


def test_list_groups_reads_the_last_field_as_the_group_and_paths_keep_their_spaces(tmp_path):
    for name in ("my video 1.mp4", "my video 2.mp4", "b.mp4"):
        touch(tmp_path / "clips" / name)
    lines = (
        "# path label group\nclips/my video 1.mp4 walk rec7\nclips/my video 2.mp4  run rec7\nclips/b.mp4\twalk\tr9\n"
    )
    list_file = write(tmp_path / "all.txt", lines, newline="\r\n")
    index = read_dataset(DataConfig(root=tmp_path, list_file=list_file, list_groups=True))
    assert index.format == "list" and index.classes == ["run", "walk"]
    assert sorted((s.id, index.classes[s.label], s.group) for s in index.samples) == [
        ("clips/b.mp4", "walk", "r9"),
        ("clips/my video 1.mp4", "walk", "rec7"),
        ("clips/my video 2.mp4", "run", "rec7"),
    ]
    assert any("2 groups (--data.list_groups)" in note for note in index.notes)
    # Found and read without --data.list_file or --data.format: the root's only list, with its group column.
    assert groups_by_id(read_dataset(DataConfig(root=tmp_path, list_groups=True))) == groups_by_id(index)


def test_list_groups_line_without_a_group_names_the_file_and_line(tmp_path):
    touch(tmp_path / "a.mp4")
    list_file = write(tmp_path / "all.txt", "a.mp4 walk rec1\na.mp4 walk\n")
    with pytest.raises(BadInput, match=r"all\.txt, line 2: expected `<path> <label> <group>`.*--data\.list_groups"):
        read_dataset(DataConfig(root=tmp_path, list_file=list_file, list_groups=True))


def test_a_list_with_a_group_column_read_without_list_groups_suggests_it(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.mp4")
    list_file = write(tmp_path / "all.txt", "a.mp4 walk rec1\nb.mp4 run rec2\n")
    with pytest.raises(BadInput, match="add --data.list_groups true"):
        read_dataset(DataConfig(root=tmp_path, list_file=list_file))


def test_group_pattern_also_reads_list_files_and_replaces_a_formats_own_groups(tmp_path):
    touch(tmp_path / "clips" / "rec1_a.mp4")
    touch(tmp_path / "clips" / "rec2_b.mp4")
    list_file = write(tmp_path / "all.txt", "clips/rec1_a.mp4 walk\nclips/rec2_b.mp4 run\n")
    listed = read_dataset(DataConfig(root=tmp_path, list_file=list_file, group_pattern=r"^(rec\d+)_"))
    assert groups_by_id(listed) == {"clips/rec1_a.mp4": "rec1", "clips/rec2_b.mp4": "rec2"}

    ntu = tmp_path / "ntu"
    ntu_file(ntu, setup=1, camera=1, performer=1)
    ntu_file(ntu, setup=2, camera=2, performer=1)
    index = read_dataset(DataConfig(root=ntu, format="ntu", group_pattern=r"^(S\d{3})"))
    assert sorted(s.group for s in index.samples) == ["S001", "S002"]
    assert any("in place of the ntu format's own groups" in note for note in index.notes)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"format": "folder", "list_groups": True}, "--data.list_groups reads a group column from a list file"),
        ({"list_groups": True, "group_pattern": "(a)"}, "--data.group_pattern and --data.list_groups both"),
    ],
)
def test_list_groups_is_refused_where_it_cannot_apply(tmp_path, settings, message):
    touch(tmp_path / "walk" / "a.mp4")
    data = DataConfig(root=tmp_path, **settings)
    with pytest.raises(BadInput, match=message):
        validate_data(data)
    with pytest.raises(BadInput, match=message):
        read_dataset(data)


# ------------------------------------------------------------------------------------------------------------
# detection and refusals common to all formats


def test_detect_format_on_each_layout(tmp_path):
    layouts = {name: tmp_path / name for name in ("ucf", "ntu", "ssv2", "kin", "list", "folder")}
    make_ucf(layouts["ucf"], layouts["ucf"] / "ucfTrainTestlist")
    ntu_file(layouts["ntu"])
    make_ssv2(layouts["ssv2"])
    write(layouts["kin"] / "train.csv", KINETICS_CSV)
    touch(layouts["list"] / "a.mp4")
    write(layouts["list"] / "train.txt", "a.mp4 0\n")
    touch(layouts["folder"] / "walk" / "a.mp4")
    write(layouts["folder"] / "README.txt", "Walking videos, recorded 2024.\n")  # not a list
    detected = {name: detect_format(path) for name, path in layouts.items()}
    assert detected == {
        "ucf": "ucf101",
        "ntu": "ntu",
        "ssv2": "ssv2",
        "kin": "kinetics",
        "list": "list",
        "folder": "folder",
    }
    assert detect_format(layouts["folder"], list_file=Path("x.txt")) == "list"


def test_auto_format_is_said_in_the_notes(tmp_path):
    touch(tmp_path / "walk" / "a.mp4")
    index = read_dataset(DataConfig(root=tmp_path))
    assert index.format == "folder"
    assert index.notes[0].startswith("format detected: folder")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: DataConfig(root=None), "--data.root is required"),
        (lambda tmp: DataConfig(root=tmp / "absent"), "absent does not exist"),
        (lambda tmp: DataConfig(root=touch(tmp / "file.mp4")), "file.mp4 is not a folder"),
        (lambda tmp: DataConfig(root=tmp), "is empty"),
        (
            lambda tmp: DataConfig(root=touch(tmp / "x" / "notes.txt").parent.parent, format="folder"),
            "no videos",
        ),
        (lambda tmp: DataConfig(root=touch(tmp / "w" / "a.mp4").parent.parent, format="mpeg"), "'mpeg'"),
    ],
)
def test_bad_roots_and_formats_are_refused(tmp_path, make, message):
    with pytest.raises(BadInput, match=message):
        read_dataset(make(tmp_path))
