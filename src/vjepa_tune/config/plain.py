"""Configurations as plain data (`config.yaml`, trackers' params) and back, refusing unknown keys by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from vjepa_tune.config.pretraining import (
    EmaSettings,
    MaskSetSettings,
    MaskSettings,
    PredictorSettings,
    PretrainConfig,
    ProbeConfig,
)
from vjepa_tune.config.training import CacheConfig, DataConfig, LoraConfig, TrainConfig
from vjepa_tune.errors import BadInput

C = TypeVar("C", TrainConfig, PretrainConfig)


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain YAML/JSON-ready values (paths as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a dataclass tree from `to_plain` output, refusing unknown keys by name."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise BadInput(f"unknown configuration key {key!r} for {cls.__name__}; known: {', '.join(known)}.")
        sub = _NESTED.get((cls, key))
        if sub is not None and isinstance(value, dict):
            kwargs[key] = from_plain(sub, value)
        elif key in _PATH_FIELDS.get(cls, ()) and value is not None:
            kwargs[key] = Path(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


_NESTED = {
    (TrainConfig, "data"): DataConfig, (TrainConfig, "lora"): LoraConfig, (TrainConfig, "cache"): CacheConfig,
    (PretrainConfig, "data"): DataConfig, (PretrainConfig, "masks"): MaskSettings,
    (PretrainConfig, "predictor"): PredictorSettings, (PretrainConfig, "ema"): EmaSettings,
    (PretrainConfig, "probe"): ProbeConfig, (PretrainConfig, "cache"): CacheConfig, (ProbeConfig, "data"): DataConfig,
    (MaskSettings, "short_range"): MaskSetSettings, (MaskSettings, "long_range"): MaskSetSettings,
}
_PATH_FIELDS = {TrainConfig: ("out",), PretrainConfig: ("out",), DataConfig: ("root", "list_file"),
                CacheConfig: ("dir",)}


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resumed_config(given: C, saved: C, *, changeable: tuple[str, ...] = ("report_to",),
                   locating: tuple[str, ...] = ("out",)) -> tuple[C, list[str]]:
    """The configuration a resumed run goes on with, and what to tell the user about the flags given now.

    A resumed run keeps its saved configuration, so that it ends as the uninterrupted run would have. Settings that
    do not change the result (`changeable`: the experiment trackers) follow the command line when it sets them;
    every other setting the command line sets (differs from its default) and the saved configuration does not share
    is named as ignored, so a changed flag is never dropped silently. `locating` settings only find the run."""
    default, now, before = (_flat(to_plain(c)) for c in (type(given)(), given, saved))
    set_now = {key: value for key, value in now.items() if default.get(key) != value and key not in locating}
    updates = {key: now[key] for key in changeable if key in set_now and set_now[key] != before.get(key)}
    notes = [f"--{key} {now[key]} applies from here on (the run began with {before.get(key)})"
             for key in updates]
    ignored = [f"--{key} {value} (the run's: {before.get(key)})" for key, value in set_now.items()
               if key not in changeable and before.get(key) != value]
    if ignored:
        notes.append("ignored: the resumed run goes on with its saved configuration, not "
                     + ", ".join(ignored) + "; start a new run (another --out or --run_name) to change them")
    return (dataclasses.replace(saved, **updates) if updates else saved), notes
