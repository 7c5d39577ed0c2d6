"""Which videos a run saw in training: by path, as copies under other names, for runs that record fingerprints and
for runs recorded before they did.

The run folders here are made by hand (config.yaml + splits.json over files of random bytes): the comparison reads
bytes, never decodes, so no video or model is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.data import overlap as overlap_module
from vjepa_tune.data.fingerprints import file_identity
from vjepa_tune.data.overlap import seen_in_training
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.data.splits import splits_to_json
from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_json_atomic
from vjepa_tune.runs.folder import SPLITS_FILE, training_videos, write_config

CLASSES = ["a", "b"]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _random_bytes(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------------------------------------ overlap
def _run(tmp_path: Path, *, fingerprinted: bool) -> tuple[Path, Path, dict[str, list[Path]]]:
    """A run folder over data/ with 3 train, 2 val and 2 test videos of random bytes of different sizes."""
    root = tmp_path / "data"
    files: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    samples: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    n = 0
    for side, count in (("train", 3), ("val", 2), ("test", 2)):
        for _ in range(count):
            cls = CLASSES[n % 2]
            rel = f"{cls}/{side}_{n}.mp4"
            path = _write(root / rel, _random_bytes(3000 + 7 * n, 100 + n))
            files[side].append(path)
            samples[side].append(Sample(path=path, label=n % 2, id=rel))
            n += 1
    splits = Splits(train=samples["train"], val=samples["val"], test=samples["test"], method="random")
    identities = None
    if fingerprinted:
        identities = {s.id: file_identity(s.path) for _, items in splits.items() for s in items}
    run = tmp_path / "run"
    run.mkdir()
    write_config(run, TrainConfig(data=DataConfig(root=root)))
    write_json_atomic(run / SPLITS_FILE, splits_to_json(splits, CLASSES, identities))
    return run, root, files


def _other(tmp_path: Path, files: dict[str, list[Path]]) -> list[Path]:
    """Elsewhere: train[0] by its own path, renamed copies of train[1] and val[0], a copy of test[0] (not seen),
    and two new files, one as large as train[2] (its fingerprint, not its size, tells it apart)."""
    other = tmp_path / "other"
    copies = [
        _write(other / "renamed_train.mp4", files["train"][1].read_bytes()),
        _write(other / "deep" / "renamed_val.avi", files["val"][0].read_bytes()),
        _write(other / "test_copy.mp4", files["test"][0].read_bytes()),
        _write(other / "new.mp4", _random_bytes(5000, 7)),
        _write(other / "same_size.mp4", _random_bytes(files["train"][2].stat().st_size, 8)),
    ]
    return [files["train"][0], *copies]


@pytest.mark.parametrize("fingerprinted", [True, False], ids=["fingerprints-recorded", "recorded-before-them"])
def test_a_video_is_seen_by_its_path_or_as_a_copy_of_a_train_or_val_video(tmp_path: Path, fingerprinted: bool) -> None:
    run, _, files = _run(tmp_path, fingerprinted=fingerprinted)
    paths = _other(tmp_path, files)
    overlap = seen_in_training(paths, training_videos(run), progress=False)
    assert [(s.split, s.by) if s else None for s in overlap.seen] == [
        ("train", "path"), ("train", "content"), ("val", "content"), None, None, None
    ]
    assert overlap.seen[2].id == "b/val_3.mp4"
    record = overlap.as_dict()
    assert {k: record[k] for k in ("videos", "seen", "train", "val", "by_path", "by_content", "listed")} == {
        "videos": 6, "seen": 3, "train": 2, "val": 1, "by_path": 1, "by_content": 2, "listed": 5
    }
    assert record["unrecognisable"] == 0 and record["excluded"] == 0
    assert overlap.describe() == (
        "overlap: 3 of 6 videos were seen in training (train 2, val 1; 2 are copies under another path)"
    )
    assert overlap.unseen_paths() == paths[3:]
    assert json.loads(json.dumps(record)) == record


def test_copies_are_recognised_from_recorded_fingerprints_after_the_originals_are_gone(tmp_path: Path) -> None:
    run, root, files = _run(tmp_path, fingerprinted=True)
    paths = _other(tmp_path, files)[1:]
    shutil.rmtree(root)
    overlap = seen_in_training(paths, training_videos(run), progress=False)
    assert overlap.counts() == {"train": 1, "val": 1} and overlap.unrecognisable == 0


def test_an_old_run_says_how_many_listed_videos_it_cannot_recognise_once_they_are_gone(tmp_path: Path) -> None:
    run, _, files = _run(tmp_path, fingerprinted=False)
    paths = _other(tmp_path, files)[1:]
    files["val"][0].unlink()  # the original of renamed_val.avi: its copy can no longer be recognised
    overlap = seen_in_training(paths, training_videos(run), progress=False)
    assert overlap.counts() == {"train": 1, "val": 0} and overlap.unrecognisable == 1
    assert overlap.describe() == (
        "overlap: 1 of 5 videos was seen in training (train 1; 1 is a copy under another path); 1 of the run's 5 "
        f"train and val videos is gone from {tmp_path / 'data'} and has no recorded fingerprint: a copy of it would "
        "not be recognised"
    )


def test_a_moved_data_set_is_compared_where_it_is_now(tmp_path: Path) -> None:
    run, root, files = _run(tmp_path, fingerprinted=False)
    moved = tmp_path / "moved"
    root.rename(moved)
    here = moved / files["train"][0].relative_to(root)
    overlap = seen_in_training([here], training_videos(run, moved), progress=False)
    assert overlap.seen[0] is not None and overlap.seen[0].by == "path"
    assert seen_in_training([here], training_videos(run), progress=False).unrecognisable == 5


def test_only_videos_as_large_as_a_listed_one_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, _, files = _run(tmp_path, fingerprinted=False)
    read: list[Path] = []
    real = overlap_module.file_identities

    def spy(paths, **kwargs):
        read.extend(paths)
        return real(paths, **kwargs)

    monkeypatch.setattr(overlap_module, "file_identities", spy)
    unrelated = [_write(tmp_path / "other" / f"{n}.mp4", _random_bytes(9000 + n, n)) for n in range(5)]
    assert seen_in_training(unrelated, training_videos(run), progress=False).num_seen == 0
    assert read == []
    same_size = _write(tmp_path / "other" / "same.mp4", _random_bytes(files["train"][2].stat().st_size, 9))
    assert seen_in_training([*unrelated, same_size], training_videos(run), progress=False).num_seen == 0
    assert sorted(read) == sorted([same_size, files["train"][2]])


def test_none_seen_says_so_and_a_folder_that_is_no_run_is_refused(tmp_path: Path) -> None:
    run, _, _ = _run(tmp_path, fingerprinted=True)
    fresh = _write(tmp_path / "fresh.mp4", b"x" * 10)
    assert seen_in_training([fresh], training_videos(run), progress=False).describe() == (
        "overlap: the video was not seen in training (compared by path and content with the run's 5 train "
        "and val videos)"
    )
    with pytest.raises(BadInput, match="has no splits.json"):
        training_videos(tmp_path / "data")


def test_the_sources_of_the_prepared_copy_a_run_trained_on_count_as_seen(tmp_path: Path) -> None:
    """`data prepare` re-encodes (no byte in common) and keeps each video's place, with `.mp4`: the run trained on
    the copy saw its sources, and scoring those sources says so."""
    run, root, files = _run(tmp_path, fingerprinted=True)
    sources = tmp_path / "raw"
    (root / ".vjepa-tune-prepare.json").write_text(json.dumps({"version": 2, "source": str(sources)}))
    train_source = _write(sources / "a" / "train_0.avi", _random_bytes(4000, 1))  # re-encoded: other bytes
    val_source = _write(sources / "b" / "val_3.mkv", _random_bytes(4100, 2))
    test_source = _write(sources / "a" / "test_6.avi", _random_bytes(4200, 3))
    elsewhere = _write(tmp_path / "elsewhere" / "a" / "train_0.avi", _random_bytes(4300, 4))
    found = seen_in_training([train_source, val_source, test_source, elsewhere], training_videos(run),
                             progress=False)
    assert [(s.split, s.id, s.by) if s else None for s in found.seen] == [
        ("train", "a/train_0.mp4", "source"), ("val", "b/val_3.mp4", "source"), None, None]
    assert found.as_dict()["by_source"] == 2
    assert "2 are the sources of the prepared copies it trained on" in found.describe()
    nothing = seen_in_training([test_source], training_videos(run), progress=False)
    assert f"and with their sources in {sources}" in nothing.describe()
