"""Filling the feature store, and the `Pipeline` that trains on it.

Extraction decodes each video once for all its missing views, runs the frozen backbone (its fast forward,
`models.fast_encoder`) under the run's precision (`training.precision`), and writes entries on background threads
while the next clips decode. It estimates the size first and refuses when the disk cannot hold it. With several
processes the work list is made on the main process and sharded.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from vjepa_tune.config import TrainConfig
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.data.transforms import normalize_clips
from vjepa_tune.data.video import VideoInfo
from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import classify_features, pooled_features, unwrap
from vjepa_tune.models.fast_encoder import encoder_forward
from vjepa_tune.models.strategies import STRATEGIES
from vjepa_tune.text import counted
from vjepa_tune.training import distributed
from vjepa_tune.training.feature_store import (
    DTYPES,
    EVAL_VIEW,
    EntryWriter,
    FeatureDataset,
    StoredOutput,
    StoreSpec,
    View,
    entry_keys,
    load_entry,
    save_entry,
    store_spec,
    write_manifest,
)
from vjepa_tune.training.inputs import ClipDatasets, Pipeline, SplitName, clip_datasets
from vjepa_tune.training.precision import autocast, autocast_dtype
from vjepa_tune.training.store import format_bytes

Log = Callable[[str], None]


class BackboneCounter:
    """Counts backbone forward passes made by extraction (the store's whole point is to make this zero)."""

    calls = 0
    clips = 0


@dataclass(frozen=True)
class SplitViews:
    """Views of any sample of a run's three splits, by its index in train + val + test, decoded once per video."""

    splits: Splits
    datasets: ClipDatasets

    def training_views(self, index: int, views: list[int]) -> list[torch.Tensor] | None:
        return self.datasets.train.views(index, views)

    def eval_view(self, index: int) -> torch.Tensor | None:
        for name, part in self.splits.items():
            if index < len(part):
                got = self.datasets.eval_dataset(name).views(index, [None])
                return None if got is None else got[0]
            index -= len(part)
        raise IndexError(index)


class _ViewsDataset(Dataset):
    """One item per video: every missing view of it, decoded once (None for a video that cannot be decoded)."""

    def __init__(self, views: SplitViews, todo: list[tuple[int, list[View]]]):
        self.views, self.todo = views, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int) -> tuple[int, list[View], list[torch.Tensor] | None]:
        index, views = self.todo[i]
        train_views = [v for v in views if v != EVAL_VIEW]
        tensors: dict[View, torch.Tensor] = {}
        if train_views:
            got = self.views.training_views(index, train_views)  # type: ignore[arg-type]
            if got is None:
                return index, views, None
            tensors.update(zip(train_views, got, strict=True))
        if EVAL_VIEW in views:
            clip = self.views.eval_view(index)
            if clip is None:
                return index, views, None
            tensors[EVAL_VIEW] = clip
        return index, views, [tensors[v] for v in views]


@dataclass(frozen=True)
class HostCopy:
    """A tensor on its way to the host: `wait()` returns it once the copy is done."""

    tensor: torch.Tensor
    done: torch.cuda.Event | None = None

    def wait(self) -> torch.Tensor:
        if self.done is not None:
            self.done.synchronize()
        return self.tensor


@dataclass(frozen=True)
class Staging:
    """Extraction's copies between the host and the device.

    Pinned (page-locked host memory, on a CUDA device): clips are stacked straight into pinned memory and features
    are copied back into it, so both copies run at the bus's speed without holding the host thread, which goes on
    receiving clips while the GPU works. Unpinned (the CPU): plain copies, the same path otherwise. Pinned blocks
    come from torch's caching host allocator, which reuses a block only once the copies that used it are done; a
    block handed to the store's writer threads stays theirs until the entries are written.
    """

    device: torch.device
    pinned: bool

    def to_device(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """The clips (one shape and dtype) stacked into one batch on the device."""
        if not self.pinned:
            return torch.stack(clips).to(self.device)
        staged = torch.empty((len(clips), *clips[0].shape), dtype=clips[0].dtype, pin_memory=True)
        torch.stack(clips, out=staged)
        return staged.to(self.device, non_blocking=True)

    def to_host(self, tensor: torch.Tensor, dtype: torch.dtype) -> HostCopy:
        """`tensor` in `dtype` on the host; on CUDA the copy is queued behind the work that makes `tensor`."""
        if not self.pinned:
            return HostCopy(tensor.to("cpu", dtype))
        staged = torch.empty(tensor.shape, dtype=dtype, pin_memory=True)
        staged.copy_(tensor.to(dtype), non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return HostCopy(staged, done)


@dataclass(frozen=True)
class Encoding:
    """How extraction runs the frozen model: where, and under which autocast."""

    model: torch.nn.Module
    device: torch.device
    compute: torch.dtype | None
    pinned: bool | None = None
    """Copies through pinned host memory (`Staging`); None: on a CUDA device."""

    @property
    def staging(self) -> Staging:
        return Staging(self.device, self.device.type == "cuda" if self.pinned is None else self.pinned)

    @torch.inference_mode()
    def encode(self, forward: Callable[[torch.Tensor], torch.Tensor], clips: list[torch.Tensor], dtype: str
               ) -> torch.Tensor:
        """Backbone features, rounded to the store's dtype (so features pooled from them now or later agree).

        Clips come as the workers made them: uint8, normalised here on the device (a quarter of the bytes through
        the workers' shared memory and to the GPU), or already normalised where random erasing needed it."""
        if len({c.dtype for c in clips}) == 1:
            batch = normalize_clips(self.staging.to_device(clips))
        else:  # training views with random erasing (float32) beside evaluation views (uint8)
            batch = self.staging.to_device([normalize_clips(c) for c in clips])
        with autocast(self.compute, self.device):
            feats = forward(batch)
        BackboneCounter.calls += 1
        BackboneCounter.clips += len(clips)
        return feats.to(DTYPES[dtype]).float()

    @torch.inference_mode()
    def pool(self, feats: torch.Tensor) -> torch.Tensor:
        with autocast(self.compute, self.device):
            return pooled_features(self.model, feats.to(self.device)).float()


def _missing(spec: StoreSpec, cfg: TrainConfig, samples: list[Sample], todo: list[tuple[int, list[View]]]
             ) -> list[tuple[int, list[View]]]:
    found = [(i, [v for v, key in zip(views, entry_keys(samples[i], views, cfg), strict=True)
                  if not spec.entry_path(key).exists()]) for i, views in todo]
    return [(i, views) for i, views in found if views]


@dataclass(frozen=True)
class _BatchInFlight:
    """One batch's features on their way to the host, and the store entries to write them to once there."""

    keys: list[str]
    copies: list[tuple[StoreSpec, HostCopy, bool]]
    """(store, features, only where the store lacks the entry)."""

    def write(self, writer: EntryWriter) -> None:
        for spec, copy, only_missing in self.copies:
            for key, feat in zip(self.keys, copy.wait(), strict=True):
                path = spec.entry_path(key)
                if not (only_missing and path.exists()):
                    writer.put(path, feat, spec.dtype)


def extract(spec: StoreSpec, cfg: TrainConfig, encoding: Encoding, samples: list[Sample],
            wanted: dict[int, list[View]], views: SplitViews, log: Log, backbone_spec: StoreSpec | None = None
            ) -> dict[str, str]:
    """Fill the store with every wanted (sample index -> views) entry it lacks; returns unreadable sample ids.

    For a pooler-output store, `backbone_spec` is the backbone store of the same model: entries found there are
    pooled without decoding or running the backbone, and backbone features computed here are kept there too, so
    a comparison that mixes head_only with the other strategies decodes and runs the backbone once per clip.
    """
    todo = _missing(spec, cfg, samples, list(wanted.items())) if distributed.is_main() else []
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
        write_manifest(spec, cfg)
        if backbone_spec is not None:
            backbone_spec.folder.mkdir(parents=True, exist_ok=True)
            write_manifest(backbone_spec, cfg)
    todo = distributed.shard(todo)
    count_all, count = count, sum(len(v) for _, v in todo)
    derived = 0
    if backbone_spec is not None:
        derived = _pool_stored(spec, backbone_spec, cfg, encoding, samples, todo)
        todo = _missing(spec, cfg, samples, todo)
        count = sum(len(v) for _, v in todo)
    model = encoding.model
    was_training = model.training
    model.eval()
    unreadable: dict[str, str] = {}
    loader = DataLoader(_ViewsDataset(views, todo), batch_size=None, shuffle=False, num_workers=cfg.num_workers)
    pending: list[tuple[str, torch.Tensor]] = []
    forward = encoder_forward(unwrap(model).vjepa2.encoder, encoding.device, count)
    writer = EntryWriter()
    staging = encoding.staging
    in_flight: list[_BatchInFlight] = []

    def flush() -> None:
        """Queue the pending clips' forward and the copies of its features; then write the previous batch's
        entries, whose copies were queued before this forward: on a GPU it runs while the next clips arrive."""
        if not pending:
            return
        feats = encoding.encode(forward, [t for _, t in pending], spec.dtype)
        copies = []
        if spec.output == "pooler":
            if backbone_spec is not None:  # one copy per batch, in storage dtype
                copies.append((backbone_spec, staging.to_host(feats, DTYPES[backbone_spec.dtype]), True))
            feats = encoding.pool(feats)
        copies.append((spec, staging.to_host(feats, DTYPES[spec.dtype]), False))
        in_flight.append(_BatchInFlight([key for key, _ in pending], copies))
        pending.clear()
        while len(in_flight) > 1:
            in_flight.pop(0).write(writer)

    started = time.perf_counter()
    with tqdm(total=count, desc="extracting features", unit="clip", disable=None, leave=False) as bar, writer:
        for index, item_views, tensors in loader:
            sample = samples[index]
            if tensors is None:
                unreadable[sample.id] = "could not be decoded during feature extraction"
                bar.update(len(item_views))
                continue
            for key, tensor in zip(entry_keys(sample, item_views, cfg), tensors, strict=True):
                pending.append((key, tensor))
                if len(pending) >= cfg.cache.batch_size:
                    flush()
                bar.update(1)
        flush()
        while in_flight:
            in_flight.pop(0).write(writer)
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


def _pool_stored(spec: StoreSpec, backbone_spec: StoreSpec, cfg: TrainConfig, encoding: Encoding,
                 samples: list[Sample], todo: list[tuple[int, list[View]]]) -> int:
    """Pool the wanted entries whose backbone features are already stored; returns how many."""
    keys = [key for i, views in todo for key in entry_keys(samples[i], views, cfg)]
    keys = [k for k in keys if backbone_spec.entry_path(k).exists()]
    for start in range(0, len(keys), cfg.cache.batch_size):
        chunk = keys[start : start + cfg.cache.batch_size]
        feats = torch.stack([load_entry(backbone_spec.entry_path(k), backbone_spec.dtype) for k in chunk])
        for key, pooled in zip(chunk, encoding.pool(feats), strict=True):
            save_entry(spec.entry_path(key), pooled, spec.dtype)
    return len(keys)


def feature_pipeline(cfg: TrainConfig, model: torch.nn.Module, splits: Splits, infos: dict[str, VideoInfo],
                     device: torch.device, log: Log) -> Pipeline:
    """A Pipeline reading stored features, extracting whatever the store lacks first."""
    output: StoredOutput = "pooler" if STRATEGIES[cfg.strategy].frozen_pooler else "backbone"
    compute = autocast_dtype(cfg.precision, device)
    spec = store_spec(cfg, model, output, device, compute)
    backbone_spec = store_spec(cfg, model, "backbone", device, compute) if output == "pooler" else None
    views = cfg.cache.views or cfg.num_epochs
    samples = splits.train + splits.val + splits.test
    wanted: dict[int, list[View]] = {i: list(range(views)) for i in range(len(splits.train))}
    for i in range(len(splits.train), len(samples)):
        wanted[i] = [EVAL_VIEW]
    model.to(device)
    unreadable = extract(spec, cfg, Encoding(model, device, compute), samples, wanted,
                         SplitViews(splits, clip_datasets(cfg, splits, infos)), log, backbone_spec)
    by_split = dict(splits.items())

    def train_dataset(epoch: int) -> FeatureDataset:
        return FeatureDataset(spec, cfg, splits.train, epoch % views, unreadable)

    def eval_dataset(split: SplitName) -> FeatureDataset:
        return FeatureDataset(spec, cfg, by_split[split], EVAL_VIEW, unreadable)

    def forward(m: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return classify_features(m, inputs, from_=output)

    # No DataLoader workers: an entry is a memory-mapped file read in about a millisecond, and moving it out of a
    # worker process costs more than reading it (docs/design.md, "The feature store"; BENCHMARKS.md, "GPU").
    describe = f"stored {output} features ({spec.dtype}, {counted(views, 'view')})"
    return Pipeline(train_dataset=train_dataset, eval_dataset=eval_dataset, forward=forward, describe=describe,
                    num_workers=0, train_batch=cfg.cache.train_batch_size, read_ahead=True)
