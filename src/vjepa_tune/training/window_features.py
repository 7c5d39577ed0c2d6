"""Features of video windows from a frozen model: the part `vjepa-tune features` runs (`features.recipe`).

The window clips come from `data.window_clips` (DataLoader workers decode each video once, in order, and hand
out uint8 clips); here they are normalised on the device and run through the backbone's fast forward
(`models.fast_encoder`, compiled where the job is long enough to pay for it) under the precision policy
(`training.precision`), the chosen layers kept, pooled, and rounded to the output dtype. A video's rows are
gathered in order and handed on whole (the recipe writes them on background threads, `files.BackgroundWrites`, so
the disk works while the next clips decode and run).

Pooling (rows per window): `mean` over every token of the chosen layers (1); `pooler` the attentive pooler's
output of the last layer (1); `time` the mean over space of each temporal token (frames_per_clip / tubelet rows,
tokens being ordered time first, then height, then width); `tokens` everything (1 row of tokens x channels).

A batch never mixes videos (`data.window_clips`), so a video's features do not depend on the others extracted with
it, on the number of workers or processes, or on a resumed run skipping some: the same settings give the same
bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import VJEPA2Config

from vjepa_tune.config import FeatureDtype, FeaturePooling, Precision
from vjepa_tune.data.transforms import normalize_clips
from vjepa_tune.data.window_clips import ClipBatch, FrameTransform, VideoJob, WindowClips
from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import pooled_features, unwrap
from vjepa_tune.models.fast_encoder import check_layers, encoder_forward
from vjepa_tune.training.precision import autocast, autocast_dtype

TORCH_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "fp32": torch.float32}


def rows_per_window(pool: FeaturePooling, frames_per_clip: int, tubelet: int) -> int:
    """Rows one window gives: temporal tokens for `time`, else one."""
    return frames_per_clip // tubelet if pool == "time" else 1


def feature_shape(pool: FeaturePooling, windows: int, frames_per_clip: int, tubelet: int, tokens: int,
                  channels: int) -> tuple[int, ...]:
    """The shape of a video's array: (rows, channels), or (windows, tokens, channels) for `tokens`."""
    if pool == "tokens":
        return (windows, tokens, channels)
    return (windows * rows_per_window(pool, frames_per_clip, tubelet), channels)


def check_feature_settings(config: VJEPA2Config, layers: Sequence[int], pool: FeaturePooling,
                           frames_per_clip: int) -> tuple[int, ...]:
    """The layers as indices from 0 (`check_layers`), once the settings are known to fit the model: the pooler
    reads the last layer only, and a clip holds whole tubelets."""
    chosen = check_layers(list(layers), config.num_hidden_layers)
    if pool == "pooler" and chosen != (config.num_hidden_layers - 1,):
        raise BadInput(f"--pool pooler pools the last layer, as the classifier sees it; --layers {list(layers)} "
                       "asks for others (use --pool mean or time for several layers).")
    if frames_per_clip % config.tubelet_size:
        raise BadInput(f"--frames_per_clip {frames_per_clip} must be a multiple of the model's tubelet "
                       f"({config.tubelet_size} frames).")
    return chosen


@dataclass(frozen=True)
class WindowEncoder:
    """The frozen model turned into a function from window clips (B, T, 3, crop, crop) to features (B, ...)."""

    model: torch.nn.Module
    device: torch.device
    compute: torch.dtype | None
    """What autocast computes in (None: full precision)."""
    layers: tuple[int, ...]
    """Encoder layers kept (0-based, `check_layers`)."""
    pool: FeaturePooling
    dtype: FeatureDtype
    forward: Callable[[torch.Tensor], torch.Tensor]
    temporal_tokens: int

    @classmethod
    def build(cls, model: torch.nn.Module, device: torch.device, precision: Precision, layers: Sequence[int],
              pool: FeaturePooling, dtype: FeatureDtype, frames_per_clip: int, clips: int) -> WindowEncoder:
        """Check the settings against the model, move it to `device` and choose its forward for about `clips`
        clips."""
        base = unwrap(model).eval().to(device)
        config = base.config
        chosen = check_feature_settings(config, layers, pool, frames_per_clip)
        last_only = chosen == (config.num_hidden_layers - 1,)  # the encoder's own output, as the store keeps it
        forward = encoder_forward(base.vjepa2.encoder, device, clips, None if last_only else chosen)
        return cls(base, device, autocast_dtype(precision, device), chosen, pool, dtype, forward,
                   frames_per_clip // config.tubelet_size)

    @torch.inference_mode()
    def __call__(self, clips: torch.Tensor) -> np.ndarray:
        """Features of a batch of uint8 clips, in the output dtype: (B, C), (B, temporal tokens, C) for `time`,
        (B, tokens, C) for `tokens`."""
        inputs = normalize_clips(clips.to(self.device))
        with autocast(self.compute, self.device):
            tokens = self.forward(inputs)
            if self.pool == "pooler":
                out = pooled_features(self.model, tokens)
        if self.pool == "mean":
            out = tokens.float().mean(dim=1)
        elif self.pool == "time":
            out = tokens.float().unflatten(1, (self.temporal_tokens, -1)).mean(dim=2)
        elif self.pool == "tokens":
            out = tokens
        return out.to(TORCH_DTYPES[self.dtype]).cpu().numpy()


VideoDone = Callable[[VideoJob, np.ndarray | None, str | None], None]
"""(video, its features or None, why it could not be read or None): called once per video, in the main process."""


def encode_videos(jobs: Sequence[VideoJob], encoder: WindowEncoder, transform: FrameTransform, *, batch_size: int,
                  num_workers: int, done: VideoDone, progress: bool = True) -> None:
    """Run every window of `jobs` through `encoder` and call `done` with each video's rows, in window order (for
    `time`, each window's temporal tokens in turn); a video that fails part-way gets its reason instead."""
    by_index = {job.index: job for job in jobs}
    parts: dict[int, list[np.ndarray]] = {}
    loader = DataLoader(WindowClips(jobs, transform, batch_size), batch_size=None, num_workers=num_workers)
    total = sum(len(job.plan.windows) for job in jobs)
    with tqdm(total=total, desc="extracting features", unit="clip", disable=None if progress else True) as bar:
        for item in loader:
            if isinstance(item, ClipBatch):
                parts.setdefault(item.video, []).append(encoder(item.clips))
                bar.update(len(item.clips))
                continue
            job, pieces = by_index[item.video], parts.pop(item.video, [])
            if item.error is not None:
                bar.update(len(job.plan.windows) - sum(len(p) for p in pieces))
                done(job, None, item.error)
                continue
            rows = np.concatenate(pieces)
            done(job, rows if encoder.pool == "tokens" else rows.reshape(-1, rows.shape[-1]), None)
