"""The backbone feature store: run the frozen backbone once per (video, sampled frames, augmentation view).

Four of the five strategies freeze the backbone, so its output for one augmented clip never changes. The guide
recomputes it at every step of every epoch of every strategy; the store computes it once and shares it across
epochs, strategies, data sizes and hyperparameter sweeps.

What is stored. For strategies that train the pooler (pooler_and_head, lora, pooler_head_and_lora) the backbone's
last hidden state (tokens x hidden); for head_only, whose pooler is frozen too, the pooler output (one vector per
view). Training view v of a video is the clip the unchanged path would draw in epoch v (same keyed frame window and
augmentation); epoch e reads view e mod `--cache.views` (default: one view per epoch, so a run means exactly what
recomputing would). Validation and test read the deterministic eval view.

Keys. A store folder is named by a hash of everything about the model that shapes a feature (model spec, a
fingerprint of the frozen weights that produce it, which output, dtype). An entry inside is named by a hash of
everything about the clip: the video file (absolute path, size, modification time), the sample id, frame sampling,
transform settings, the view index and the seed. A changed video file gets a new key and is extracted again.

Layout. `<store>/<model key>/manifest.json` describes the model key; entries are `.npy` files (bf16 kept as raw
16-bit words, since NumPy has no bfloat16) opened memory-mapped, written atomically (temporary name + rename), so
a killed extraction never leaves a half-written entry and concurrent processes can share one store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vjepa_tune.config import TrainConfig
from vjepa_tune.data.dataset import SkippedClip
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_atomic, write_text_atomic
from vjepa_tune.text import counted
from vjepa_tune.training.store import default_store_dir, format_bytes

Log = Callable[[str], None]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_NP_STORAGE = {"bf16": np.uint16, "fp16": np.float16, "fp32": np.float32}
EVAL_VIEW = "eval"


class BackboneCounter:
    """Counts backbone forward passes made by extraction (the store's whole point is to make this zero)."""

    calls = 0
    clips = 0


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class StoreSpec:
    """Which model output is stored, and how."""

    root: Path
    model_key: str
    output: str  # "backbone" or "pooler"
    dtype: str
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


def store_spec(cfg: TrainConfig, model: torch.nn.Module, output: str) -> StoreSpec:
    from vjepa_tune.models.strategies import unwrap

    base = unwrap(model)
    config = base.config
    tokens = (cfg.data.frames_per_clip // config.tubelet_size) * (cfg.data.crop_size // config.patch_size) ** 2
    shape = (tokens, config.hidden_size) if output == "backbone" else (config.hidden_size,)
    # Only what produces the feature: the predictor (which classification skips) does not belong in the key.
    parts = [base.vjepa2.encoder] if output == "backbone" else [base.vjepa2.encoder, base.pooler]
    fingerprint = "".join(_weights_fingerprint(p) for p in parts)
    model_key = _hash({"model": cfg.model, "weights": fingerprint, "output": output, "dtype": cfg.cache.dtype,
                       "shape": shape, "format": 2})
    root = Path(cfg.cache.dir) if cfg.cache.dir else default_store_dir()
    return StoreSpec(root=root, model_key=model_key, output=output, dtype=cfg.cache.dtype, shape=shape)


def entry_key(sample: Sample, view: int | str, cfg: TrainConfig) -> str:
    """Everything about one clip that shapes its feature."""
    st = sample.path.stat()
    d = cfg.data
    transform = (
        {"crop": d.crop_size, "train": True, "hflip": d.hflip, "color_jitter": d.color_jitter,
         "random_erasing": d.random_erasing, "crop_scale": list(d.crop_scale)}
        if view != EVAL_VIEW else {"crop": d.crop_size, "train": False}
    )
    return _hash({
        "path": str(sample.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "id": sample.id,
        "frames": d.frames_per_clip, "sampling": d.sampling,
        "frame_step": d.frame_step if d.sampling == "random_window" else None,
        "transform": transform, "view": view, "seed": cfg.seed,
    })


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a path's name
        np.save(f, array)


def _save_entry(path: Path, feature: torch.Tensor, dtype: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = feature.detach().to("cpu", _DTYPES[dtype]).contiguous()
    array = t.view(torch.uint16).numpy() if dtype == "bf16" else t.numpy()
    write_atomic(path, lambda aside: _save_array(aside, array))


def load_entry(path: Path, dtype: str, *, as_stored: bool = False) -> torch.Tensor:
    """A stored feature as float32, or in its stored dtype with `as_stored` (memory-mapped read; the copy is one
    clip's worth)."""
    array = np.load(path, mmap_mode="r")
    t = torch.from_numpy(np.array(array))
    if dtype == "bf16":
        t = t.view(torch.bfloat16)
    return t if as_stored else t.float()


class _EntryWriter:
    """Writes entries on background threads, so the disk works while clips decode and the backbone runs.

    At most `limit` entries wait in memory (one clip's features each); a failed write is raised in the caller's
    thread at the next `put` or at `close`, and `close` returns only once every entry is on disk.
    """

    def __init__(self, threads: int = 4, limit: int = 64):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="feature-store-writer")
        self.waiting: deque[Future] = deque()
        self.limit = limit

    def put(self, path: Path, feature: torch.Tensor, dtype: str) -> None:
        while len(self.waiting) >= self.limit or (self.waiting and self.waiting[0].done()):
            self.waiting.popleft().result()
        self.waiting.append(self.pool.submit(_save_entry, path, feature, dtype))

    def close(self) -> None:
        try:
            while self.waiting:
                self.waiting.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _EntryWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *rest: Any) -> None:
        if error_type is None:
            self.close()
        else:  # the error that stopped extraction is the one to report: drop what waits, raise no write error
            self.pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------------ extraction
class _ViewsDataset(Dataset):
    """One item per video: every missing view of it, decoded once."""

    def __init__(self, clips: Any, eval_clips: Any, todo: list[tuple[int, list[int | str]]]):
        self.clips, self.eval_clips, self.todo = clips, eval_clips, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int) -> tuple[int, list[int | str], list[torch.Tensor] | None]:
        index, views = self.todo[i]
        train_views = [v for v in views if v != EVAL_VIEW]
        tensors: dict[int | str, torch.Tensor] = {}
        if train_views:
            got = self.clips.views(index, train_views)
            if got is None:
                return index, views, None
            tensors.update(zip(train_views, got, strict=True))
        if EVAL_VIEW in views:
            got = self.eval_clips.views(index, [None])
            if got is None:
                return index, views, None
            tensors[EVAL_VIEW] = got[0]
        return index, views, [tensors[v] for v in views]


@torch.inference_mode()
def _encode(forward: Callable[[torch.Tensor], torch.Tensor], clips: list[torch.Tensor], device: torch.device,
            dtype: str) -> torch.Tensor:
    """Backbone features, rounded to the store's dtype (so features pooled from them now or later agree).

    Clips come as the workers made them: uint8, normalised here on the device (a quarter of the bytes through
    the workers' shared memory and to the GPU), or already normalised where random erasing needed it."""
    from vjepa_tune.data.transforms import normalize_clips

    if len({c.dtype for c in clips}) == 1:
        batch = normalize_clips(torch.stack(clips).to(device))
    else:  # training views with random erasing (float32) beside evaluation views (uint8)
        batch = torch.stack([normalize_clips(c) for c in clips]).to(device)
    with _autocast(device):
        feats = forward(batch)
    BackboneCounter.calls += 1
    BackboneCounter.clips += len(clips)
    return feats.to(_DTYPES[dtype]).float()


@torch.inference_mode()
def _pool(model: torch.nn.Module, feats: torch.Tensor, device: torch.device) -> torch.Tensor:
    from vjepa_tune.models.strategies import pooled_features

    with _autocast(device):
        return pooled_features(model, feats.to(device)).float()


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU (what the GPU figures in BENCHMARKS.md were measured with), full precision else."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def extract(
    spec: StoreSpec, cfg: TrainConfig, model: torch.nn.Module, samples: list[Sample],
    wanted: dict[int, list[int | str]], clips: Any, eval_clips: Any, device: torch.device, log: Log,
    backbone_spec: StoreSpec | None = None,
) -> dict[str, str]:
    """Fill the store with every wanted (sample index -> views) entry it lacks; returns unreadable sample ids.

    For a pooler-output store, `backbone_spec` is the backbone store of the same model: entries found there are
    pooled without decoding or running the backbone, and backbone features computed here are kept there too, so
    a comparison that mixes head_only with the other strategies decodes and runs the backbone once per clip.
    """
    from tqdm.auto import tqdm

    from vjepa_tune.models.fast_encoder import encoder_forward
    from vjepa_tune.models.strategies import unwrap
    from vjepa_tune.training import distributed

    todo: list[tuple[int, list[int | str]]] = []
    if distributed.is_main():
        for index, views in wanted.items():
            missing = [v for v in views if not spec.entry_path(entry_key(samples[index], v, cfg)).exists()]
            if missing:
                todo.append((index, missing))
    todo = distributed.broadcast(todo)  # one list for all processes, made before any of them writes
    if not todo:
        return {}
    count = sum(len(v) for _, v in todo)
    need = count * (spec.bytes_per_entry + (backbone_spec.bytes_per_entry if backbone_spec else 0))
    spec.folder.mkdir(parents=True, exist_ok=True)
    free = distributed.broadcast(shutil.disk_usage(spec.folder).free)
    log(f"feature store: extracting {counted(count, 'clip')} from {counted(len(todo), 'video')}, about "
        f"{format_bytes(need)}, into {spec.folder}")
    if need > free * 0.95:
        raise BadInput(
            f"the feature store needs about {format_bytes(need)} but {spec.folder} has {format_bytes(free)} "
            "free; choose another --cache.dir, use fewer --cache.views, --cache.dtype bf16, or --cache.enabled false."
        )
    if distributed.is_main():
        _write_manifest(spec, cfg)
        if backbone_spec is not None:
            backbone_spec.folder.mkdir(parents=True, exist_ok=True)
            _write_manifest(backbone_spec, cfg)
    todo = distributed.shard(todo)
    count_all, count = count, sum(len(v) for _, v in todo)
    derived = 0
    if backbone_spec is not None:
        derived = _pool_stored(spec, backbone_spec, cfg, model, samples, todo, device)
        todo = [(i, [v for v in views if not spec.entry_path(entry_key(samples[i], v, cfg)).exists()])
                for i, views in todo]
        todo = [(i, views) for i, views in todo if views]
        count = sum(len(v) for _, v in todo)
    was_training = model.training
    model.eval()
    unreadable: dict[str, str] = {}
    loader = DataLoader(_ViewsDataset(clips, eval_clips, todo), batch_size=None, shuffle=False,
                        num_workers=cfg.num_workers)
    pending: list[tuple[Path, str, torch.Tensor]] = []
    forward = encoder_forward(unwrap(model).vjepa2.encoder, device, count)
    writer = _EntryWriter()

    def flush() -> None:
        if not pending:
            return
        feats = _encode(forward, [t for _, _, t in pending], device, spec.dtype)
        if spec.output == "pooler":
            if backbone_spec is not None:
                on_cpu = feats.to("cpu", _DTYPES[backbone_spec.dtype])  # one copy per batch, in storage dtype
                for (_, key, _), feat in zip(pending, on_cpu, strict=True):
                    if not backbone_spec.entry_path(key).exists():
                        writer.put(backbone_spec.entry_path(key), feat, backbone_spec.dtype)
            feats = _pool(model, feats, device)
        for (path, _, _), feat in zip(pending, feats.to("cpu", _DTYPES[spec.dtype]), strict=True):
            writer.put(path, feat, spec.dtype)
        pending.clear()

    started = time.perf_counter()
    with tqdm(total=count, desc="extracting features", unit="clip", disable=None, leave=False) as bar, writer:
        for index, views, tensors in loader:
            sample = samples[index]
            if tensors is None:
                unreadable[sample.id] = "could not be decoded during feature extraction"
                bar.update(len(views))
                continue
            for view, tensor in zip(views, tensors, strict=True):
                key = entry_key(sample, view, cfg)
                pending.append((spec.entry_path(key), key, tensor))
                if len(pending) >= cfg.cache.batch_size:
                    flush()
                bar.update(1)
        flush()
    model.train(was_training)
    elapsed = time.perf_counter() - started
    per_process = distributed.gather(count + derived)
    for part in distributed.gather(unreadable):
        unreadable.update(part)
    distributed.barrier()
    split = f" by {len(per_process)} processes ({', '.join(map(str, per_process))})" if len(per_process) > 1 else ""
    pooled = sum(distributed.gather(derived))
    reused = f", {pooled} of them pooled from stored backbone features" if pooled else ""
    log(f"feature store: {counted(count_all, 'clip')} extracted{split}{reused} in {elapsed:.1f} s "
        f"({count_all / max(elapsed, 1e-9):.1f} clips/s)")
    return unreadable


def _pool_stored(spec: StoreSpec, backbone_spec: StoreSpec, cfg: TrainConfig, model: torch.nn.Module,
                 samples: list[Sample], todo: list[tuple[int, list[int | str]]], device: torch.device) -> int:
    """Pool the wanted entries whose backbone features are already stored; returns how many."""
    keys = [entry_key(samples[i], v, cfg) for i, views in todo for v in views]
    keys = [k for k in keys if backbone_spec.entry_path(k).exists()]
    for start in range(0, len(keys), cfg.cache.batch_size):
        chunk = keys[start : start + cfg.cache.batch_size]
        feats = torch.stack([load_entry(backbone_spec.entry_path(k), backbone_spec.dtype) for k in chunk])
        for key, pooled in zip(chunk, _pool(model, feats, device), strict=True):
            _save_entry(spec.entry_path(key), pooled, spec.dtype)
    return len(keys)


def _write_manifest(spec: StoreSpec, cfg: TrainConfig) -> None:
    path = spec.folder / "manifest.json"
    if path.exists():
        return
    manifest = {"model": cfg.model, "output": spec.output, "dtype": spec.dtype, "shape": list(spec.shape),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_text_atomic(path, json.dumps(manifest, indent=2))


# ------------------------------------------------------------------------------------------------ training input
class FeatureDataset(Dataset):
    """Stored features of one split at one view; yields the same dict shape as the clip path."""

    def __init__(self, spec: StoreSpec, cfg: TrainConfig, samples: list[Sample], view: int | str,
                 unreadable: dict[str, str]):
        self.spec, self.cfg, self.samples, self.view, self.unreadable = spec, cfg, samples, view, unreadable
        self.paths = [spec.entry_path(entry_key(s, view, cfg)) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any] | SkippedClip:
        sample = self.samples[i]
        if sample.id in self.unreadable:
            return SkippedClip(index=i, sample_id=sample.id, reason=self.unreadable[sample.id])
        # In the stored dtype: the model's forward casts it (exactly) to its own.
        return {"inputs": load_entry(self.paths[i], self.spec.dtype, as_stored=True), "labels": self.samples[i].label,
                "index": i}


def collate_features(batch: list[Any]) -> dict[str, Any]:
    """Stack the stored features of a batch; `skipped` lists the dataset indices of videos that could not be read
    (as `collate_clips` does), so the run reports the right videos."""
    kept = [b for b in batch if not isinstance(b, SkippedClip)]
    skipped = [b.index for b in batch if isinstance(b, SkippedClip)]
    if not kept:
        return {"inputs": torch.empty(0), "labels": torch.empty(0, dtype=torch.long),
                "index": torch.empty(0, dtype=torch.long), "skipped": skipped}
    return {
        "inputs": torch.stack([b["inputs"] for b in kept]),
        "labels": torch.tensor([b["labels"] for b in kept], dtype=torch.long),
        "index": torch.tensor([b["index"] for b in kept], dtype=torch.long),
        "skipped": skipped,
    }


def feature_pipeline(cfg: TrainConfig, model: torch.nn.Module, splits: Splits, infos: dict[str, Any],
                     accelerator: Any, log: Log) -> Any:
    """A Pipeline reading stored features, extracting whatever the store lacks first."""
    from vjepa_tune.models.strategies import STRATEGIES, classify_features
    from vjepa_tune.training.loop import Pipeline
    from vjepa_tune.training.pipelines import clip_datasets

    strategy = STRATEGIES[cfg.strategy]
    output = "pooler" if strategy.frozen_pooler else "backbone"
    spec = store_spec(cfg, model, output)
    views = cfg.cache.views or cfg.num_epochs
    train_dataset_for, eval_dataset_for = clip_datasets(cfg, splits, infos)
    train_clips = train_dataset_for(0)
    samples = splits.train + splits.val + splits.test
    wanted: dict[int, list[int | str]] = {i: list(range(views)) for i in range(len(splits.train))}
    offset = len(splits.train)
    for i in range(len(splits.val) + len(splits.test)):
        wanted[offset + i] = [EVAL_VIEW]

    class _AllClips:
        """Views of any sample of the three splits, by its index in `samples`."""

        def __init__(self, train: bool):
            self.train = train
            self.parts = [(splits.train, train_clips if train else eval_dataset_for("train")),
                          (splits.val, eval_dataset_for("val")), (splits.test, eval_dataset_for("test"))]

        def views(self, index: int, view_list: list[Any]) -> list[torch.Tensor] | None:
            for part, ds in self.parts:
                if index < len(part):
                    return ds.views(index, view_list)
                index -= len(part)
            raise IndexError(index)

    backbone_spec = store_spec(cfg, model, "backbone") if output == "pooler" else None
    device = accelerator.device
    model.to(device)
    unreadable = extract(spec, cfg, model, samples, wanted, _AllClips(True), _AllClips(False), device, log,
                         backbone_spec)
    datasets_by_split = {"train": splits.train, "val": splits.val, "test": splits.test}

    def train_dataset(epoch: int) -> FeatureDataset:
        return FeatureDataset(spec, cfg, splits.train, epoch % views, unreadable)

    def eval_dataset(split: str) -> FeatureDataset:
        return FeatureDataset(spec, cfg, datasets_by_split[split], EVAL_VIEW, unreadable)

    def forward(m: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return classify_features(m, inputs, from_=output)

    # No DataLoader workers: an entry is a memory-mapped file read in about a millisecond, and moving it out of a
    # worker process costs more than reading it. ViT-L entries went through 14 workers at about 35 per second on
    # an H200 machine, where the pooler step runs at 590 clips/s; here 0 workers read 186 per second, 2 workers
    # 116 (BENCHMARKS.md, "GPU"; benchmarks/worker_transport.py shows the same effect for clips).
    describe = f"stored {output} features ({spec.dtype}, {counted(views, 'view')})"
    return Pipeline(train_dataset=train_dataset, eval_dataset=eval_dataset, forward=forward,
                    collate=collate_features, describe=describe,
                    num_workers=0, train_batch=cfg.cache.train_batch_size, read_ahead=True)
