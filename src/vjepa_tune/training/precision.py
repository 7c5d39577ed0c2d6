"""One precision policy for everything that runs a model: training, feature extraction, `predict` and `evaluate`.

`--precision auto` is bf16 autocast on a GPU that supports it and full precision (fp32) elsewhere; `bf16` is bf16
autocast on any device; `fp16` needs a GPU; `fp32` turns autocast off. Weights stay in float32 throughout: autocast
only chooses the precision of the operations it covers.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from accelerate import Accelerator

from vjepa_tune.config import Precision
from vjepa_tune.errors import BadInput

AcceleratePrecision = Literal["no", "bf16", "fp16"]
"""accelerate's names: "no" is fp32 (records name it fp32, `tracking.records.precision_name`)."""

_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def choose_device(device: str | torch.device | None) -> torch.device:
    """`--device` as a torch device: None or auto is `default_device()`; a device that is not one, or CUDA where there
    is no GPU, is refused naming the flag."""
    if device is None or device == "auto":
        return default_device()
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise BadInput(f"--device {device!r} is not a device (try cpu, cuda or cuda:1): {exc}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"--device {device}: no CUDA GPU is available here; use --device cpu.")
    return chosen


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The dtype autocast computes in for `--precision` on `device`, or None for full precision."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise BadInput(f"--precision {precision!r} is not one of auto, fp32, bf16, fp16.")
    if precision == "fp16" and device.type != "cuda":
        raise BadInput("--precision fp16 needs a GPU; use fp32 or bf16 on the CPU.")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return _DTYPES.get(precision)


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device` (nothing for None)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def precision_label(dtype: torch.dtype | None) -> str:
    """fp32, bf16 or fp16: how records and store keys name what autocast computed in."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32") if dtype is not None else "fp32"


def accelerate_precision(precision: Precision, device: torch.device) -> AcceleratePrecision:
    """`--precision` as accelerate's `mixed_precision`."""
    label = precision_label(autocast_dtype(precision, device))
    return "no" if label == "fp32" else label  # type: ignore[return-value]


def make_accelerator(precision: Precision) -> Accelerator:
    """The accelerator of a training or evaluation job; under torchrun or `accelerate launch` it starts the
    process group (gloo on a machine without a GPU)."""
    device = default_device()
    # cpu=True is what makes accelerate start a gloo process group under torchrun on a machine without a GPU.
    return Accelerator(mixed_precision=accelerate_precision(precision, device), cpu=device.type == "cpu")
