"""Configurations as plain data (`config.yaml`, trackers' params) and back, refusing unknown keys by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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
