"""The backbone feature store: what is stored, under which keys, and reading and writing its entries.

Four of the five strategies freeze the backbone, so its output for one augmented clip never changes. The guide
recomputes it at every step of every epoch of every strategy; the store computes it once (`training.extraction`)
and shares it across epochs, strategies, data sizes and hyperparameter sweeps.

What is stored. For strategies that train the pooler (pooler_and_head, lora, pooler_head_and_lora) the backbone's
last hidden state (tokens x hidden); for head_only, whose pooler is frozen too, the pooler output (one vector per
view). Training view v of a video is the clip the unchanged path would draw in epoch v (same keyed frame window and
augmentation); epoch e reads view e mod `--cache.views` (default: one view per epoch, so a run means exactly what
recomputing would). Validation and test read the deterministic eval view.

Keys. A store folder is named by a hash of everything about the model that shapes a feature (model spec, a
fingerprint of the frozen weights that produce it, which output, dtype, the precision it was computed in). An entry
inside is named by a hash of everything about the clip: the video file (absolute path, size, modification time), the
sample id, frame sampling, transform settings, the view index and the seed. A changed video file gets a new key and
is extracted again.

Layout. `<store>/<model key>/manifest.json` describes the model key; entries are `.npy` files (bf16 kept as raw
16-bit words, since NumPy has no bfloat16) opened memory-mapped, written atomically (temporary name + rename), so
a killed extraction never leaves a half-written entry and concurrent processes can share one store. `training.store`
walks the same layout without torch, for `cache list` and `cache clear`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from vjepa_tune.config import StoreDtype, TrainConfig
from vjepa_tune.data.dataset import Example, SkippedClip
from vjepa_tune.data.samples import Sample
from vjepa_tune.files import BackgroundWrites, write_atomic, write_text_atomic
from vjepa_tune.models.adapters import unwrap
from vjepa_tune.training.precision import precision_label
from vjepa_tune.training.store import default_store_dir

StoredOutput = Literal["backbone", "pooler"]
View = int | Literal["eval"]
"""A training view (its number) or the deterministic evaluation view."""

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_NP_STORAGE = {"bf16": np.uint16, "fp16": np.float16, "fp32": np.float32}
EVAL_VIEW: Literal["eval"] = "eval"


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class StoreSpec:
    """Which model output is stored, and how."""

    root: Path
    model_key: str
    output: StoredOutput
    dtype: StoreDtype
    shape: tuple[int, ...]

    @property
    def folder(self) -> Path:
        return self.root / self.model_key

    def entry_path(self, entry_key: str) -> Path:
        return self.folder / entry_key[:2] / f"{entry_key}.npy"

    @property
    def bytes_per_entry(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(_NP_STORAGE[self.dtype]).itemsize


def _weights_fingerprint(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            flat = p.detach().float().flatten()
            sample = flat[:: max(1, flat.numel() // 256)]
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(sample.cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def store_spec(cfg: TrainConfig, model: torch.nn.Module, output: StoredOutput, device: torch.device,
               compute: torch.dtype | None) -> StoreSpec:
    """The store folder for `output` of `model` computed under autocast `compute` on `device`."""
    base = unwrap(model)
    config = base.config
    tokens = (cfg.data.frames_per_clip // config.tubelet_size) * (cfg.data.crop_size // config.patch_size) ** 2
    shape = (tokens, config.hidden_size) if output == "backbone" else (config.hidden_size,)
    # Only what produces the feature: the predictor (which classification skips) does not belong in the key.
    parts = [base.vjepa2.encoder] if output == "backbone" else [base.vjepa2.encoder, base.pooler]
    fingerprint = "".join(_weights_fingerprint(p) for p in parts)
    key: dict[str, Any] = {"model": cfg.model, "weights": fingerprint, "output": output, "dtype": cfg.cache.dtype,
                           "shape": shape, "format": 2}
    # Stores made before `--precision` reached extraction were computed in bf16 on a GPU and in fp32 elsewhere; their
    # keys name no precision, so that they stay valid. Any other precision is named.
    computed = precision_label(compute)
    if computed != ("bf16" if device.type == "cuda" else "fp32"):
        key["precision"] = computed
    root = Path(cfg.cache.dir) if cfg.cache.dir else default_store_dir()
    return StoreSpec(root=root, model_key=_hash(key), output=output, dtype=cfg.cache.dtype, shape=shape)


def entry_keys(sample: Sample, views: Sequence[View], cfg: TrainConfig) -> list[str]:
    """The entry key of each of `views` of one sample: everything about a clip that shapes its feature. The file is
    looked up once for all the views (extraction asks for every view of a video at once)."""
    st = sample.path.stat()
    d = cfg.data
    clip = {
        "path": str(sample.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "id": sample.id,
        "frames": d.frames_per_clip, "sampling": d.sampling,
        "frame_step": d.frame_step if d.sampling == "random_window" else None, "seed": cfg.seed,
    }
    train = {"crop": d.crop_size, "train": True, "hflip": d.hflip, "color_jitter": d.color_jitter,
             "random_erasing": d.random_erasing, "crop_scale": list(d.crop_scale)}
    evaluation = {"crop": d.crop_size, "train": False}
    # Keys are hashed with sorted keys, so they do not depend on the order the parts are put together in.
    return [_hash({**clip, "transform": evaluation if view == EVAL_VIEW else train, "view": view}) for view in views]


def entry_key(sample: Sample, view: View, cfg: TrainConfig) -> str:
    """The entry key of one view of one sample (`entry_keys`)."""
    return entry_keys(sample, [view], cfg)[0]


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a path's name
        np.save(f, array)


def save_entry(path: Path, feature: torch.Tensor, dtype: StoreDtype) -> None:
    """Write one entry atomically, in the store's dtype."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = feature.detach().to("cpu", DTYPES[dtype]).contiguous()
    array = t.view(torch.uint16).numpy() if dtype == "bf16" else t.numpy()
    write_atomic(path, lambda aside: _save_array(aside, array))


def load_entry(path: Path, dtype: StoreDtype, *, as_stored: bool = False) -> torch.Tensor:
    """A stored feature as float32, or in its stored dtype with `as_stored` (memory-mapped read; the copy is one
    clip's worth)."""
    array = np.load(path, mmap_mode="r")
    t = torch.from_numpy(np.array(array))
    if dtype == "bf16":
        t = t.view(torch.bfloat16)
    return t if as_stored else t.float()


class EntryWriter(BackgroundWrites):
    """Writes entries on background threads (`files.BackgroundWrites`), so the disk works while clips decode and the
    backbone runs: at most `limit` entries (one clip's features each) wait in memory."""

    def __init__(self, threads: int = 4, limit: int = 64):
        super().__init__(threads, limit, name="feature-store-writer")

    def put(self, path: Path, feature: torch.Tensor, dtype: StoreDtype) -> None:
        self.submit(partial(save_entry, path, feature, dtype))


def write_manifest(spec: StoreSpec, cfg: TrainConfig) -> None:
    """`manifest.json` of a store folder (what `cache list` shows), written once."""
    path = spec.folder / "manifest.json"
    if path.exists():
        return
    manifest = {"model": cfg.model, "output": spec.output, "dtype": spec.dtype, "shape": list(spec.shape),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_text_atomic(path, json.dumps(manifest, indent=2))


class FeatureDataset(Dataset):
    """Stored features of one split at one view, as `Example`s (a video left unreadable: a `SkippedClip`)."""

    def __init__(self, spec: StoreSpec, cfg: TrainConfig, samples: list[Sample], view: View,
                 unreadable: dict[str, str]):
        self.spec, self.cfg, self.samples, self.view, self.unreadable = spec, cfg, samples, view, unreadable
        self.paths = [spec.entry_path(entry_key(s, view, cfg)) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Example | SkippedClip:
        sample = self.samples[i]
        if sample.id in self.unreadable:
            return SkippedClip(index=i, sample_id=sample.id, reason=self.unreadable[sample.id])
        # In the stored dtype: the model's forward casts it (exactly) to its own.
        return Example(inputs=load_entry(self.paths[i], self.spec.dtype, as_stored=True), label=sample.label, index=i)
