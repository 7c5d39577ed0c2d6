"""The feature store's folders as `cache list|clear` see them: sizes people can read, and where the store is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vjepa_tune.cli import main
from vjepa_tune.training.store import cache_list, format_bytes, format_cache_list, store_location


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (512, "512 B"), (1000, "0.977 KiB"), (1536, "1.50 KiB"), (10_235, "10.0 KiB"),
     (792_576, "774 KiB"), (1_023_590, "0.976 MiB"), (132 * 2_176, "280 KiB"), (1.5 * 2**30, "1.50 GiB")],
)
def test_sizes_have_three_significant_digits_in_binary_units(size: float, text: str) -> None:
    assert format_bytes(size) == text


def _store_with(root: Path, entries: int, entry_bytes: int) -> None:
    folder = root / "a1b2c3"
    (folder / "ab").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"model": "tiny", "output": "pooler", "dtype": "bf16"}))
    for i in range(entries):
        (folder / "ab" / f"ab{i:04d}.npy").write_bytes(b"\0" * entry_bytes)


def test_cache_list_shows_a_small_store_with_its_real_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """132 pooled entries of 2 KiB each were listed as "0.0 MiB"."""
    _store_with(tmp_path, 132, 2_176)
    text = format_cache_list(cache_list(tmp_path))
    assert "280 KiB" in text and "0.0 MiB" not in text
    assert text.splitlines()[-1] == "total 280 KiB in 1 store"
    assert main(["cache", "clear", "--cache.dir", str(tmp_path)]) == 0
    assert "cleared the feature store: 281 KiB freed" in capsys.readouterr().out  # the manifest too


def test_the_store_location_says_what_chose_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VJEPA_TUNE_CACHE", str(tmp_path / "env-store"))
    assert store_location(tmp_path / "flag-store").reason() == "set by --cache.dir"
    from_env = store_location()
    assert from_env.path == tmp_path / "env-store" and from_env.reason() == "set by $VJEPA_TUNE_CACHE"
    monkeypatch.delenv("VJEPA_TUNE_CACHE")
    default = store_location()
    assert default.path == Path.home() / ".cache" / "vjepa-tune" / "features"
    assert default.reason() == "the default location"
