"""The feature store's folders as `vjepa-tune cache` sees them: where the store is, what is in it, clearing it.

`training/features.py` fills the store and reads it (with torch); this part only walks its folders, so that
`cache list` and `cache clear` start in a fraction of a second. Layout (written by features.py): one folder per model
key holding `manifest.json` and the entries as `.npy` files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_tune.text import counted

STORE_ENV = "VJEPA_TUNE_CACHE"


@dataclass(frozen=True)
class StoreLocation:
    """The store folder in use and what chose it, for messages and reports."""

    path: Path
    chosen_by: str
    """`--cache.dir`, `$VJEPA_TUNE_CACHE`, or `default` (~/.cache/vjepa-tune/features)."""

    def reason(self) -> str:
        """`set by $VJEPA_TUNE_CACHE`, `set by --cache.dir` or `the default location`."""
        return "the default location" if self.chosen_by == "default" else f"set by {self.chosen_by}"


def store_location(directory: Path | None = None) -> StoreLocation:
    """`directory` (from --cache.dir) if given, else $VJEPA_TUNE_CACHE, else ~/.cache/vjepa-tune/features."""
    if directory is not None:
        return StoreLocation(Path(directory), "--cache.dir")
    env = os.environ.get(STORE_ENV)
    if env:
        return StoreLocation(Path(env), f"${STORE_ENV}")
    return StoreLocation(Path.home() / ".cache" / "vjepa-tune" / "features", "default")


def default_store_dir() -> Path:
    """Where the store lives when --cache.dir is not given."""
    return store_location().path


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(size: float) -> str:
    """A size in binary units with three significant digits: 512 B, 1.50 KiB, 23.4 MiB, 774 MiB, 0.977 GiB."""
    value, unit = float(size), 0
    while value >= 999.5 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    value = float(f"{value:.3g}")  # round first, so that 9.996 is written 10.0, not 10.00
    decimals = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:.{decimals}f} {_UNITS[unit]}"


def cache_list(directory: Path | None = None) -> list[dict[str, Any]]:
    """One entry per model key: its folder, number of stored entries, bytes, and its manifest's fields."""
    root = directory or default_store_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = list(folder.rglob("*.npy"))
        manifest = folder / "manifest.json"
        meta = json.loads(manifest.read_text()) if manifest.exists() else {}
        out.append({"key": folder.name, "path": str(folder), "entries": len(files),
                    "bytes": sum(f.stat().st_size for f in files), **meta})
    return out


def format_cache_list(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "the feature store is empty"
    lines = [f"{'key':<24}  {'model':<40} {'output':<8} {'dtype':<5} {'entries':>8} {'size':>10}"]
    for e in entries:
        lines.append(f"{e['key']:<24}  {str(e.get('model', '?')):<40} {str(e.get('output', '?')):<8} "
                     f"{str(e.get('dtype', '?')):<5} {e['entries']:>8} {format_bytes(e['bytes']):>10}")
    total = sum(e["bytes"] for e in entries)
    lines.append(f"total {format_bytes(total)} in {counted(len(entries), 'store')}")
    return "\n".join(lines)


def cache_clear(directory: Path | None = None) -> int:
    """Delete everything in the store folder (the folder stays); returns the bytes freed."""
    root = directory or default_store_dir()
    if not root.is_dir():
        return 0
    freed = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    return freed
