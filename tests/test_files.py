"""Files and folders the tool writes appear whole or not at all, with the permissions the umask gives."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from vjepa_tune.files import (
    replace_folder,
    staged_folder,
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
    write_yaml_atomic,
)


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): mode(p) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize(("mask", "file_mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_written_file_gets_the_mode_the_umask_gives_whatever_the_writer_did(
    tmp_path: Path, mask: int, file_mode: int
) -> None:
    with umask(mask):
        write_text_atomic(tmp_path / "a.txt", "text")
        write_bytes_atomic(tmp_path / "deeper" / "b.bin", b"\x00\x01")
        # safetensors' save_file makes its files 0600 itself, whatever the umask
        write_atomic(tmp_path / "c.safetensors", lambda aside: save_file({"w": torch.zeros(2)}, aside))
    assert (tmp_path / "a.txt").read_text() == "text" and (tmp_path / "deeper" / "b.bin").read_bytes() == b"\x00\x01"
    assert modes_under(tmp_path) == {
        "a.txt": file_mode, "c.safetensors": file_mode, "deeper": file_mode | 0o111 & ~mask, "deeper/b.bin": file_mode,
    }


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.pt"
    target.write_text("old")

    def fail(aside: Path) -> None:
        aside.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"] and target.read_text() == "old"


def test_a_staged_folder_appears_whole_with_the_umask_modes(tmp_path: Path) -> None:
    target = tmp_path / "export"
    with umask(0o022), staged_folder(target) as staging:
        assert not target.exists() and staging.parent == tmp_path and staging.name.startswith(".export.")
        save_file({"w": torch.zeros(2)}, staging / "model.safetensors")
        (staging / "base_model").mkdir(mode=0o700)
        (staging / "base_model" / "config.json").write_text("{}")
    assert modes_under(target) == {"base_model": 0o755, "base_model/config.json": 0o644, "model.safetensors": 0o644}
    assert mode(target) == 0o755 and [p.name for p in tmp_path.iterdir()] == ["export"]


def test_a_failed_staged_folder_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "export"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), staged_folder(target, replace=True) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["export"] and (target / "keep.txt").read_text() == "old"
    with staged_folder(target, replace=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_every_writer_of_run_folders_and_the_feature_store_follows_the_umask(tmp_path: Path) -> None:
    from vjepa_tune.config import TrainConfig
    from vjepa_tune.files import write_json_atomic
    from vjepa_tune.runs import checkpoint
    from vjepa_tune.tracking.records import append_experiment_row
    from vjepa_tune.training import feature_store

    with umask(0o022):
        checkpoint.save_model(tmp_path / "run", {"w": torch.ones(3)}, {"classes": ["a", "b"]})
        checkpoint.save_state(tmp_path / "run", {"epoch": 1})
        write_json_atomic(tmp_path / "run" / "metrics.json", {"test_acc": 1.0})
        append_experiment_row(tmp_path / "experiments.csv", {"run_dir": "run", "test_acc": 1.0})
        spec = feature_store.StoreSpec(tmp_path / "store", "model", output="backbone", dtype="bf16", shape=(4, 8))
        feature_store.save_entry(spec.entry_path("ab12"), torch.ones(4, 8), "bf16")
        feature_store.write_manifest(spec, TrainConfig(model="random:tiny"))
    found = modes_under(tmp_path)
    assert found == {name: 0o755 if (tmp_path / name).is_dir() else 0o644 for name in found}
    assert {"run/model/trainable.safetensors", "run/model/model.json", "run/checkpoint/state.pt",
            "store/model/ab/ab12.npy", "store/model/manifest.json", "experiments.csv"} <= set(found)
    assert torch.equal(feature_store.load_entry(spec.entry_path("ab12"), "bf16"), torch.ones(4, 8))


def test_json_is_strict_and_replaces_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "data.json"
    write_json_atomic(path, {"first": 1})
    write_json_atomic(path, {"path": Path("/x/y"), "nan": float("nan"), "inf": float("inf"), "list": (1, 2)})
    assert json.loads(path.read_text()) == {"path": "/x/y", "nan": None, "inf": None, "list": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["data.json"]  # no temporary file left behind


def test_atomic_files_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "metrics.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"good": True})
    with pytest.raises(TypeError, match="object"):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"good": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_yaml_keeps_key_order_and_header(tmp_path: Path) -> None:
    path = write_yaml_atomic(tmp_path / "x.yaml", {"b": 1, "a": [1, 2]}, header="first line\nsecond line")
    text = path.read_text()
    assert text.startswith("# first line\n# second line\nb: 1\na:\n")
    assert yaml.safe_load(text) == {"b": 1, "a": [1, 2]}


def test_replace_folder_swaps_a_finished_folder_in_and_leaves_nothing_aside(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "weights").write_text("new")
    assert replace_folder(tmp_path / "new", tmp_path / "best") == tmp_path / "best"
    (tmp_path / "newer").mkdir()
    (tmp_path / "newer" / "weights").write_text("newer")
    replace_folder(tmp_path / "newer", tmp_path / "best")
    assert (tmp_path / "best" / "weights").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    with pytest.raises(FileNotFoundError):
        replace_folder(tmp_path / "missing", tmp_path / "best")
    assert (tmp_path / "best" / "weights").read_text() == "newer", "a failed move puts the old folder back"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
def test_background_writes_all_finish_before_close_returns_and_a_failed_one_is_raised_in_the_caller() -> None:
    from vjepa_tune.files import BackgroundWrites

    done: list[int] = []
    writes = BackgroundWrites(threads=2, limit=3)
    for i in range(6):
        writes.submit(lambda i=i: done.append(i))
        assert len(writes.waiting) <= 3, "no more than `limit` writes wait"
    writes.close()
    assert sorted(done) == list(range(6))

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), BackgroundWrites(threads=1) as failing:
        failing.submit(fail)
