"""Split and subsample properties: ratios, stratification, no group leaks, determinism, nesting."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vjepa_tune.config import DataConfig
from vjepa_tune.data.fingerprints import FileIdentity
from vjepa_tune.data.samples import DatasetIndex, Sample, Splits
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import (
    allocate,
    leaks,
    make_splits,
    recorded_identities,
    shrink_train,
    splits_from_json,
    splits_to_json,
    subsample_per_class,
)
from vjepa_tune.errors import BadInput

ROOT = Path("/data")


def flat_index(per_class: dict[str, int]) -> DatasetIndex:
    """A data set without groups: `per_class[name]` videos of each class."""
    classes = sorted(per_class)
    samples = [
        Sample(path=ROOT / f"{name}/{k:03d}.mp4", label=label, id=f"{name}/{k:03d}.mp4")
        for label, name in enumerate(classes)
        for k in range(per_class[name])
    ]
    return DatasetIndex(samples=samples, classes=classes, format="folder", root=ROOT)


def performer_index(num_classes=4, performers=20, per_performer=6, official=None) -> DatasetIndex:
    """NTU-like: every performer does every action, so one group spans all classes."""
    classes = [f"A{c + 1:03d}" for c in range(num_classes)]
    samples = []
    for p in range(1, performers + 1):
        for label in range(num_classes):
            for k in range(per_performer):
                sample_id = f"P{p:03d}_A{label + 1:03d}_{k}.avi"
                side = official(p) if official else None
                samples.append(
                    Sample(ROOT / sample_id, label, sample_id, group=f"P{p:03d}", official_split=side)
                )
    return DatasetIndex(samples=samples, classes=classes, format="ntu", root=ROOT)


def ids(samples: list[Sample]) -> list[str]:
    return [s.id for s in samples]


def groups(samples: list[Sample]) -> set[str]:
    return {s.group for s in samples}


def as_tuple(splits: Splits) -> tuple:
    return tuple(tuple(ids(items)) for _, items in splits.items()) + (splits.method,)


# ------------------------------------------------------------------------------------------------------------
# allocate and subsample_per_class


@pytest.mark.parametrize(
    ("n", "expected"),
    [(3, [1, 1, 1]), (10, [7, 2, 1]), (20, [14, 3, 3]), (100, [70, 15, 15]), (2, [2, 0, 0])],
)
def test_allocate_rounds_to_the_ratios_and_fills_every_split_it_can(n, expected):
    assert allocate(n, (0.7, 0.15, 0.15)) == expected


def test_allocate_leaves_a_zero_ratio_empty():
    assert allocate(10, (0.8, 0.2, 0.0)) == [8, 2, 0]


def test_subsample_draws_n_per_class_keeping_small_classes_whole():
    index = flat_index({"a": 30, "b": 4})
    drawn = subsample_per_class(index.samples, 10, seed=0)
    assert index.counts(drawn) == {"a": 10, "b": 4}


def test_subsample_is_nested_and_independent_of_input_order():
    samples = flat_index({"a": 40, "b": 40}).samples
    shuffled = list(samples)
    random.Random(7).shuffle(shuffled)
    small = subsample_per_class(samples, 5, seed=3)
    assert small == subsample_per_class(shuffled, 5, seed=3)
    for n in (6, 10, 25):
        assert set(ids(small)) <= set(ids(subsample_per_class(shuffled, n, seed=3)))
    assert set(ids(small)) != set(ids(subsample_per_class(samples, 5, seed=4)))


# ------------------------------------------------------------------------------------------------------------
# random splits


def test_random_split_is_stratified_at_the_ratios():
    index = flat_index({"a": 20, "b": 10, "c": 3})
    splits = make_splits(index, DataConfig(split="auto"), seed=1)
    assert splits.method == "random"
    by_split = {name: index.counts(items) for name, items in splits.items()}
    assert by_split == {
        "train": {"a": 14, "b": 7, "c": 1},
        "val": {"a": 3, "b": 2, "c": 1},
        "test": {"a": 3, "b": 1, "c": 1},
    }
    everything = ids(splits.train) + ids(splits.val) + ids(splits.test)
    assert sorted(everything) == sorted(ids(index.samples))  # a partition: nothing lost, nothing twice


def test_random_split_is_a_pure_function_of_seed_and_ids():
    index = flat_index({"a": 30, "b": 30})
    shuffled = DatasetIndex(list(reversed(index.samples)), index.classes, index.format, index.root)
    config = DataConfig(split="random")
    first = make_splits(index, config, seed=5)
    assert as_tuple(first) == as_tuple(make_splits(shuffled, config, seed=5))
    assert as_tuple(first) != as_tuple(make_splits(index, config, seed=6))


def test_videos_per_class_is_drawn_before_splitting():
    index = flat_index({"a": 50, "b": 50})
    splits = make_splits(index, DataConfig(split="random", videos_per_class=20), seed=0)
    assert [len(items) for _, items in splits.items()] == [28, 6, 6]
    drawn = set(ids(subsample_per_class(index.samples, 20, seed=0)))
    assert set(ids(splits.train + splits.val + splits.test)) == drawn


def test_class_too_small_for_the_split_is_named():
    index = flat_index({"big": 10, "tiny": 2})
    with pytest.raises(BadInput, match=r"class 'tiny' has 2 videos; a 70/15/15 split needs at least 3"):
        make_splits(index, DataConfig(split="random"), seed=0)


def test_class_without_videos_is_refused():
    index = flat_index({"a": 10})
    index.classes.append("ghost")
    with pytest.raises(BadInput, match="class 'ghost' has 0 videos"):
        make_splits(index, DataConfig(split="random"), seed=0)


def test_zero_validation_ratio_gives_an_empty_validation_split():
    splits = make_splits(
        flat_index({"a": 10}), DataConfig(split="random", split_ratios=[0.8, 0.0, 0.2]), seed=0
    )
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 0, 2)


# ------------------------------------------------------------------------------------------------------------
# group splits


def test_group_split_has_no_leak_and_keeps_every_class_near_the_ratios():
    index = performer_index(num_classes=4, performers=40, per_performer=3)
    splits = make_splits(index, DataConfig(split="auto"), seed=2)
    assert splits.method == "group"
    assert leaks(splits) == {}
    for name, ratio in zip(("train", "val", "test"), (0.7, 0.15, 0.15), strict=True):
        items = dict(splits.items())[name]
        for count in index.counts(items).values():
            assert abs(count / (40 * 3) - ratio) <= 1 / 40 + 1e-9  # within one performer of the target


def test_group_split_with_uneven_groups_stays_near_the_ratios():
    """UCF-like: 25 groups shared across classes, with uneven clip counts per group and class."""
    rng = random.Random(0)
    classes = ["a", "b", "c"]
    samples = []
    for g in range(1, 26):
        for label, name in enumerate(classes):
            for clip in range(rng.randint(2, 7)):
                sample_id = f"{name}/v_{name}_g{g:02d}_c{clip:02d}.avi"
                samples.append(Sample(ROOT / sample_id, label, sample_id, group=f"g{g:02d}"))
    index = DatasetIndex(samples, classes, "ucf101", ROOT)
    splits = make_splits(index, DataConfig(split="group"), seed=9)
    assert leaks(splits) == {}
    totals = index.counts()
    for (_, items), ratio in zip(splits.items(), (0.7, 0.15, 0.15), strict=True):
        for name, count in index.counts(items).items():
            assert abs(count / totals[name] - ratio) < 0.1, (name, count, totals[name])


def test_group_split_is_independent_of_input_order_and_keyed_by_seed():
    index = performer_index(performers=15)
    shuffled = list(index.samples)
    random.Random(1).shuffle(shuffled)
    other_order = DatasetIndex(shuffled, index.classes, index.format, index.root)
    config = DataConfig(split="group")
    assert as_tuple(make_splits(index, config, seed=3)) == as_tuple(make_splits(other_order, config, seed=3))
    assert any(
        groups(make_splits(index, config, seed=3).test) != groups(make_splits(index, config, seed=s).test)
        for s in (4, 5, 6)
    )


def test_group_split_gives_each_split_a_group_when_there_are_just_enough():
    index = performer_index(performers=3, per_performer=1)
    splits = make_splits(index, DataConfig(split="group"), seed=0)
    assert [len(groups(items)) for _, items in splits.items()] == [1, 1, 1]


def test_group_split_refusals():
    with pytest.raises(BadInput, match="gives its videos no groups") as err:
        make_splits(flat_index({"a": 10}), DataConfig(split="group"), seed=0)
    assert "--data.group_pattern" in str(err.value) and "--data.list_groups" in str(err.value)
    with pytest.raises(BadInput, match="needs at least 3 groups.*only 2"):
        make_splits(performer_index(performers=2, per_performer=2), DataConfig(split="group"), seed=0)


def recordings(root: Path, per_class: int = 4, clips: int = 3) -> None:
    """Folder layout of clips cut from recordings: <class>/rec<class><k>_clip<j>.mp4 (empty files: never decoded)."""
    for name in ("run", "sit", "walk"):
        for k in range(per_class):
            for j in range(clips):
                path = root / name / f"rec{name}{k}_clip{j}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()


@pytest.mark.parametrize("declared", ["group_pattern", "list_groups"])
def test_declared_groups_make_group_the_default_split_and_reach_splits_json(tmp_path, declared):
    """Clips of one recording land on one side by default once groups are declared, as for NTU and UCF-101."""
    recordings(tmp_path, per_class=7)
    if declared == "group_pattern":
        data = DataConfig(root=tmp_path, group_pattern=r"^(.+)_clip\d+$")
    else:
        lines = [
            f"{path.relative_to(tmp_path).as_posix()} {path.parent.name} {path.stem.split('_')[0]}"
            for path in sorted(tmp_path.rglob("*.mp4"))
        ]
        (tmp_path / "clips.txt").write_text("\n".join(lines) + "\n")
        data = DataConfig(root=tmp_path, list_file=tmp_path / "clips.txt", list_groups=True)
    index = read_dataset(data)
    splits = make_splits(index, data, seed=0)
    assert splits.method == "group"
    assert leaks(splits) == {}
    assert [len(groups(items)) for _, items in splits.items()] == [15, 3, 3]  # 7 recordings per class: 5/1/1
    record = splits_to_json(splits, index.classes)
    for name, items in splits.items():
        assert [entry["group"] for entry in record[name]] == [s.id.split("/")[-1].split("_")[0] for s in items]
    # Without groups the same files are split at random, and clips of one recording leak.
    plain = DataConfig(root=tmp_path, format="folder")
    random_split = make_splits(read_dataset(plain), plain, seed=0)
    assert random_split.method == "random"
    sides = {}
    for name, items in random_split.items():
        for s in items:
            sides.setdefault(s.id.split("/")[-1].split("_")[0], set()).add(name)
    assert any(len(names) > 1 for names in sides.values())


# ------------------------------------------------------------------------------------------------------------
# official splits


def xsub(performer: int) -> str:
    return "train" if performer % 3 else "test"


def test_official_split_keeps_the_test_side_and_carves_validation_by_group():
    index = performer_index(performers=30, per_performer=2, official=xsub)
    splits = make_splits(index, DataConfig(split="official", protocol="xsub"), seed=0)
    assert splits.method == "official:xsub"
    assert ids(splits.test) == sorted(s.id for s in index.samples if s.official_split == "test")
    assert {s.official_split for s in splits.train + splits.val} == {"train"}
    assert leaks(splits) == {}
    val_share = len(splits.val) / (len(splits.train) + len(splits.val))
    assert abs(val_share - 0.15 / 0.85) <= 1 / 20 + 1e-9  # 20 training performers


def test_official_split_uses_an_official_validation_side_when_there_is_one():
    samples = [
        Sample(ROOT / f"{side}/{k}.mp4", k % 2, f"{side}/{k}.mp4", official_split=side)
        for side in ("train", "val", "test")
        for k in range(4)
    ]
    index = DatasetIndex(samples, ["x", "y"], "kinetics", ROOT)
    splits = make_splits(index, DataConfig(split="official"), seed=0)
    assert splits.method == "official:kinetics"
    assert [sorted({s.official_split for s in items}) for _, items in splits.items()] == [
        ["train"],
        ["val"],
        ["test"],
    ]


def test_official_split_on_a_format_without_one_is_refused():
    with pytest.raises(BadInput, match="format 'folder' has no official split"):
        make_splits(flat_index({"a": 10}), DataConfig(split="official"), seed=0)


def test_official_split_with_an_empty_side_is_refused():
    index = performer_index(performers=6, official=lambda p: "train")
    with pytest.raises(BadInput, match="the test split is empty"):
        make_splits(index, DataConfig(split="official"), seed=0)


# ------------------------------------------------------------------------------------------------------------
# shrink_train, leaks, JSON


def test_shrink_train_keeps_val_and_test_and_nests():
    index = flat_index({"a": 60, "b": 60})
    full = make_splits(index, DataConfig(split="random", videos_per_class=40), seed=0)
    small = shrink_train(full, 10, seed=0)
    medium = shrink_train(full, 20, seed=0)
    assert small.val == full.val and small.test == full.test and medium.test == full.test
    assert index.counts(small.train) == {"a": 7, "b": 7}  # what a videos_per_class=10 run trains on
    assert index.counts(medium.train) == {"a": 14, "b": 14}
    assert set(ids(small.train)) <= set(ids(medium.train)) <= set(ids(full.train))
    assert shrink_train(full, 10, seed=0).train == small.train


def test_leaks_lists_groups_on_several_sides():
    a, b, c = (Sample(ROOT / n, 0, n, group=g) for n, g in (("1", "g1"), ("2", "g1"), ("3", "g2")))
    assert leaks(Splits(train=[a], val=[], test=[b, c], method="random")) == {"g1": ["train", "test"]}


def test_splits_json_round_trip():
    index = performer_index(performers=10, per_performer=1)
    splits = make_splits(index, DataConfig(split="group"), seed=0)
    data = splits_to_json(splits, index.classes)
    assert data["counts"] == {name: len(items) for name, items in splits.items()}
    assert data["train"][0].keys() >= {"id", "label", "class", "group"}
    back = splits_from_json(data, ROOT)
    assert as_tuple(back) == as_tuple(splits)
    assert [(s.path, s.label, s.group) for s in back.test] == [
        (s.path, s.label, s.group) for s in splits.test
    ]


def test_splits_json_records_each_videos_size_and_fingerprint_and_old_files_still_read():
    index = flat_index({"a": 5, "b": 5})
    splits = make_splits(index, DataConfig(), seed=0)
    every = [s for _, items in splits.items() for s in items]
    identities = {s.id: FileIdentity(1000 + n, f"{n:064x}") for n, s in enumerate(every[1:])}
    data = splits_to_json(splits, index.classes, identities)
    first = next(e for name in ("train", "val", "test") for e in data[name] if e["id"] == every[0].id)
    assert "size" not in first and "fingerprint" not in first  # a video without an identity is listed without one
    assert recorded_identities(data) == identities
    assert as_tuple(splits_from_json(data, ROOT)) == as_tuple(splits)

    old = splits_to_json(splits, index.classes)  # as version 1 wrote it: no sizes, fingerprints or scheme
    del old["fingerprint_scheme"]
    old["version"] = 1
    assert recorded_identities(old) == {}
    assert as_tuple(splits_from_json(old, ROOT)) == as_tuple(splits)
    assert recorded_identities({**data, "fingerprint_scheme": "md5-whole"}) == {}, "another scheme is not compared"


def test_splits_json_with_a_bad_label_is_refused():
    data = {
        "method": "random",
        "classes": ["a"],
        "train": [{"id": "x.mp4", "label": 3}],
        "val": [],
        "test": [],
    }
    with pytest.raises(BadInput, match=r"run/splits\.json: train\[0\] \(x\.mp4\) has label 3"):
        splits_from_json(data, ROOT, source="run/splits.json")
