"""V-JEPA 2 throughput on one device: clips/s, achieved TFLOP/s against a matrix-product ceiling measured in the same
run, and peak memory, for each path the toolkit runs the model on.

    python benchmarks/gpu_throughput.py [--model random:vitl] [--frames 16] [--batch_sizes 1,8,32]
        [--device auto|cuda|cpu] [--compile default,max-autotune-no-cudagraphs] [--compile_paths fast,sdpa]
        [--only GROUPS] [--quick] [--budget_s S] [--out results.json] [--markdown results.md]

Measured, each after warm-up, timed per call with CUDA events (the host clock on a CPU), peak memory reset between:
- `ceiling`: bf16 and fp32 matrix products (8192^3 on a GPU, 512^3 on a CPU), the ceilings the figures are read against;
- `extraction`: the store's path (`backbone_features` in inference mode under bf16 autocast over fp32 weights) at
  each batch size, default SDPA;
- `attention`: the same at the largest batch by attention path: eager, SDPA forced to its flash, memory-efficient
  and cuDNN kernels, and `flash_attention_2` where the flash_attn package is installed;
- `fast`: the store's and predict's own path, `FastEncoder` (models/fast_encoder.py: one q/k/v product, RoPE tables
  built once, under bf16 autocast), at each batch size; at the largest, also with SDPA forced to flash and to
  cuDNN;
- `kernels`: one layer's attention alone (SDPA on random bf16 q, k, v of the model's shape, per backend) and its
  four matrix products alone, so the figures above can be read against what their parts reach;
- `bf16_weights`: transformers' forward with the weights cast to bf16 instead of autocast;
- `pooler`: the pooler_and_head training step on stored features (float32 in, as the store returns them) at each
  batch size;
- `guide`: the guide-style step: fp32, batch 1, strategy lora, the backbone run every step;
- `backbone_lora`: its training step at `--train_batch` under bf16 autocast, without and with gradient checkpointing;
- `compile`: extraction at the largest batch through `torch.compile` of `FastEncoder`, then of transformers' encoder
  (`--compile_paths`), for each of `--compile MODES` (about 30-60 s each in the default mode; max-autotune modes
  autotune every matrix product first, minutes);
- `staging` (a check, CUDA only): the feature store's pinned host-device copies (`training.extraction.Staging`) give
  exactly the features of plain copies, and how long a batch's copies take each way;
- `build` (a check): drawing the random model as a run does (on the CPU, `models.build`) against building it under
  `torch.device(DEVICE)` with the same seed: the seconds of each and whether the weights are the same.

FLOP per clip are counted analytically from the model's configuration (every matrix product, plus 4*N^2*D per
attention layer for QK^T and AV); `flop_check` in the JSON repeats the count with torch's FlopCounterMode on the meta
device. Training steps count forward and backward work that is needed, not recomputation: a trained part 3x its
forward, a frozen part gradients pass through 2x, a frozen part before anything trained 1x. So gradient
checkpointing shows up as fewer achieved TFLOP/s, as it should.

Every figure is written to `--out` as soon as it is measured, so a run stopped by a time limit keeps what it
measured; `--markdown` gets the table printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REFERENCE_VITL_FLOP = 1.65e12
"""FACTS.md: the ViT-L backbone forward on 16 frames at 256 px (2048 tokens), per clip."""
EXTRACTION_GOAL = 0.55
"""Issue 8: feature extraction at 55% or more of the bf16 matrix-product ceiling."""
GROUPS = ("extraction", "fast", "attention", "kernels", "bf16_weights", "pooler", "guide", "backbone_lora", "staging",
          "build", "compile")
DEFAULT_GROUPS = tuple(g for g in GROUPS if g not in ("build", "compile"))
COMPILE_PATHS = ("fast", "sdpa")
EXTRACTION_GROUPS = frozenset({"extraction", "fast", "attention", "bf16_weights", "compile"})
NUM_LABELS = 4
Step = Callable[[], object]


# ------------------------------------------------------------------------------------------------ FLOP per clip
@dataclass(frozen=True)
class ClipFlops:
    """Forward FLOP of one clip through each part of the classifier."""

    tokens: int
    backbone: float
    pooler: float
    classifier: float


def _self_attention_layer(tokens: int, dim: int, mlp_dim: int) -> float:
    """q, k, v, out projections and the two MLP products (2 FLOP per weight per token), plus QK^T and AV."""
    return 2 * tokens * (4 * dim * dim + 2 * dim * mlp_dim) + 4 * tokens * tokens * dim


def clip_flops(config: Any, frames: int) -> ClipFlops:
    """Analytic forward FLOP per clip of a VJEPA2Config at `frames` frames (layer norms, RoPE, softmax left out)."""
    d = config.hidden_size
    n = (frames // config.tubelet_size) * (config.crop_size // config.patch_size) ** 2
    patch_embedding = 2 * n * (config.in_chans * config.tubelet_size * config.patch_size**2) * d
    backbone = patch_embedding + config.num_hidden_layers * _self_attention_layer(n, d, int(d * config.mlp_ratio))
    pooler_mlp = 4 * d  # the pooler's MLPs use VJEPA2MLP's default ratio, not config.mlp_ratio
    # Cross-attention: one query token attends to the n tokens; no output projection; its MLP sees one token.
    cross = 2 * d * d + 2 * (2 * n * d * d) + 4 * n * d + 2 * (2 * d * pooler_mlp)
    pooler = config.num_pooler_layers * _self_attention_layer(n, d, pooler_mlp) + cross
    return ClipFlops(tokens=n, backbone=float(backbone), pooler=float(pooler),
                     classifier=float(2 * d * config.num_labels))


def counted_flops(config: Any, frames: int) -> dict[str, float]:
    """The same forward FLOP counted by torch's FlopCounterMode on a meta-device model (no memory, no weights)."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import VJEPA2ForVideoClassification

    with torch.device("meta"):
        model = VJEPA2ForVideoClassification(copy.deepcopy(config)).eval()
    clips = torch.empty(1, frames, config.in_chans, config.crop_size, config.crop_size, device="meta")
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            features = model.vjepa2.encoder(pixel_values_videos=clips).last_hidden_state
        backbone = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.pooler(features)
        pooler = counter.get_total_flops()
    return {"backbone": float(backbone), "pooler": float(pooler)}


# ------------------------------------------------------------------------------------------------ the machine
def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver_version() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def environment(device: torch.device) -> dict[str, Any]:
    """What BENCHMARKS.md must state next to every figure: card, driver, library versions."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        "accelerate": _version("accelerate"),
        "av": _version("av"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({
            "gpu": torch.cuda.get_device_name(device),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "driver": _driver_version(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        })
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def describe_environment(env: dict[str, Any]) -> str:
    where = (f"{env['gpu']} ({env['gpu_memory_gib']} GiB), driver {env['driver']}, CUDA {env['cuda']}"
             if "gpu" in env else f"CPU {env.get('cpu')}, {env['torch_threads']} torch threads")
    return (f"{where}; torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}, "
            f"Python {env['python']}")


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here; use --device cpu for a smoke run.")
    return torch.device(requested)


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers (and a run killed mid-write) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ timing
def significant(value: float, digits: int = 4) -> float:
    """Rounded to significant digits, so a CPU smoke run's tiny TFLOP/s stay readable."""
    return float(f"{value:.{digits}g}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(step: Step, warmup: int, iters: int, device: torch.device) -> list[float]:
    """Seconds per call after `warmup` untimed calls: CUDA events around each call on a GPU, the host clock else."""
    for _ in range(warmup):
        step()
    synchronize(device)
    if device.type != "cuda":
        times = []
        for _ in range(iters):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        return times
    events = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float | None]]:
    """Peak bytes allocated by torch inside the block (weights resident on the device included), in MiB."""
    release_memory(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    box: dict[str, float | None] = {"peak_mib": None}
    try:
        yield box
    finally:
        if device.type == "cuda":
            box["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def matmul_ceiling(device: torch.device, dtype: torch.dtype, size: int, warmup: int, iters: int) -> float:
    """TFLOP/s of one size^3 matrix product on random data (zeros run faster than real data)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = statistics.median(time_calls(lambda: torch.mm(a, b), warmup, iters, device))
    return 2 * size**3 / seconds / 1e12


# ------------------------------------------------------------------------------------------------ models and steps
def new_model(spec: str, device: torch.device) -> torch.nn.Module:
    """A fresh fp32 classifier in eval mode; random architectures are built on the device itself (seconds, not
    the minute a ViT-L takes to initialise on a CPU)."""
    from transformers import VJEPA2ForVideoClassification

    from vjepa_tune.models.loading import RANDOM_PREFIX, build_config, default_id2label, load_model

    torch.manual_seed(0)
    labels = default_id2label(NUM_LABELS)
    if spec.startswith(RANDOM_PREFIX):
        config = build_config(spec[len(RANDOM_PREFIX):], NUM_LABELS, labels)
        try:
            with torch.device(device):
                return VJEPA2ForVideoClassification(config).eval()
        except (RuntimeError, NotImplementedError):  # construction on the device refused: build here, then move
            return VJEPA2ForVideoClassification(config).to(device).eval()
    return load_model(spec, num_labels=NUM_LABELS, id2label=labels, device=device, log=lambda _: None)


def random_clips(config: Any, batch: int, frames: int, device: torch.device) -> torch.Tensor:
    return torch.randn(batch, frames, config.in_chans, config.crop_size, config.crop_size, device=device)


def extraction_step(model: torch.nn.Module, clips: torch.Tensor, dtype: torch.dtype | None,
                    forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Step:
    """The encoder only, inference mode, autocast where `dtype` is set: transformers' forward, or `forward` (what
    the feature store's `_encode` runs: FastEncoder, compiled or not)."""
    from vjepa_tune.models.adapters import backbone_features

    def step() -> object:
        with torch.inference_mode(), autocast(clips.device, dtype):
            if forward is not None:
                return forward(clips)
            return backbone_features(model, clips)

    return step


def fast_forward(model: torch.nn.Module) -> Any:
    """FastEncoder over the model's encoder, as the store and predict build it."""
    from vjepa_tune.models.adapters import unwrap
    from vjepa_tune.models.fast_encoder import fast_encoder

    fast = fast_encoder(unwrap(model).vjepa2.encoder)
    if fast is None:
        raise RuntimeError("FastEncoder refused this encoder")
    return fast


def training_step(model: torch.nn.Module, forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
                  inputs: torch.Tensor, dtype: torch.dtype | None) -> Step:
    """Forward, cross-entropy, backward, AdamW step: one optimizer step per call, as the loop makes it."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    labels = torch.arange(inputs.shape[0], device=inputs.device) % NUM_LABELS
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> object:
        with autocast(inputs.device, dtype):
            logits = forward(model, inputs)
        loss = loss_fn(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


@dataclass(frozen=True)
class AttentionPath:
    name: str
    implementation: str
    backend: str | None = None
    """A torch.nn.attention.SDPBackend member name forced for the call, or None for SDPA's own choice."""
    cuda_only: bool = False
    needs_package: str | None = None


ATTENTION_PATHS = (
    AttentionPath("eager", "eager"),
    AttentionPath("sdpa forced flash", "sdpa", "FLASH_ATTENTION"),
    AttentionPath("sdpa forced mem-efficient", "sdpa", "EFFICIENT_ATTENTION", cuda_only=True),
    AttentionPath("sdpa forced cudnn", "sdpa", "CUDNN_ATTENTION", cuda_only=True),
    AttentionPath("flash_attention_2", "flash_attention_2", cuda_only=True, needs_package="flash_attn"),
)


def set_attention(model: torch.nn.Module, implementation: str) -> None:
    """Switch the attention function every layer looks up at call time (they share the model's config)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:  # transformers without the setter: the layers read config._attn_implementation on every call
        model.config._attn_implementation = implementation


def with_backend(step: Step, backend: str | None) -> Step:
    if backend is None:
        return step
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = getattr(SDPBackend, backend)

    def forced() -> object:
        with sdpa_kernel([chosen]):
            return step()

    return forced


# ------------------------------------------------------------------------------------------------ the bench
@dataclass
class Measurement:
    name: str
    group: str
    batch: int
    precision: str
    """bf16 (autocast or bf16 weights) or fp32: which ceiling the figure is read against."""
    flop_per_clip: float
    flop_basis: str
    status: str = "pending"
    """ok, failed or skipped."""
    ms_per_call: float | None = None
    """Median over the timed calls; one call is one batch."""
    ms_range: tuple[float, float] | None = None
    clips_per_s: float | None = None
    tflops: float | None = None
    fraction_of_ceiling: float | None = None
    fraction_of_bf16: float | None = None
    """Of the bf16 ceiling whatever the row's precision: the share of what the card can do at its fastest."""
    peak_mib: float | None = None
    compile_s: float | None = None
    note: str = ""


@dataclass
class Settings:
    model: str
    frames: int
    batch_sizes: list[int]
    train_batch: int
    device: str
    warmup: int
    iters: int
    compile_modes: list[str]
    only: list[str]
    budget_s: float | None
    compile_paths: list[str] = field(default_factory=lambda: list(COMPILE_PATHS))


class Bench:
    """Runs measurements one at a time, keeps every result (failures too) and rewrites the JSON after each."""

    def __init__(self, settings: Settings, device: torch.device, out: Path | None):
        self.settings, self.device, self.out = settings, device, out
        self.started = time.perf_counter()
        self.report: dict[str, Any] = {"environment": environment(device), "settings": asdict(settings),
                                       "flops": {}, "ceilings_tflops": {}, "results": [], "checks": {}}

    def save(self) -> None:
        if self.out is not None:
            write_json_atomic(self.out, self.report)

    def wanted(self, group: str) -> bool:
        return group in self.settings.only

    def _over_budget(self) -> bool:
        budget = self.settings.budget_s
        return budget is not None and time.perf_counter() - self.started > budget

    def skip(self, m: Measurement, reason: str) -> Measurement:
        m.status, m.note = "skipped", reason
        return self._record(m)

    def run(self, m: Measurement, make_step: Callable[[], Step], *, first_call_is_compile: bool = False,
            annotate: Callable[[], str] | None = None, warmup: int | None = None, iters: int | None = None
            ) -> Measurement:
        """Time the step `make_step` builds (`warmup` and `iters` default to the settings'); any error (out of
        memory, an unsupported kernel) is recorded."""
        if self._over_budget():
            return self.skip(m, f"time budget of {self.settings.budget_s:.0f} s spent")
        step: Step | None = None
        try:
            with peak_memory(self.device) as memory:
                step = make_step()
                if first_call_is_compile:
                    started = time.perf_counter()
                    step()
                    synchronize(self.device)
                    m.compile_s = round(time.perf_counter() - started, 1)
                times = time_calls(step, self.settings.warmup if warmup is None else warmup,
                                   self.settings.iters if iters is None else iters, self.device)
        except Exception as exc:  # noqa: BLE001 - one unsupported path must not stop the others; it is recorded
            text = str(exc).strip().splitlines()
            m.status, m.note = "failed", f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
        else:
            seconds = statistics.median(times)
            m.status = "ok"
            # Significant digits, not decimals: a CPU smoke run's calls take a fraction of a millisecond.
            m.ms_per_call = significant(seconds * 1e3, 6)
            m.ms_range = (significant(min(times) * 1e3, 6), significant(max(times) * 1e3, 6))
            clips_per_s = m.batch / seconds
            tflops = clips_per_s * m.flop_per_clip / 1e12
            ceiling = self.report["ceilings_tflops"].get(m.precision)
            m.clips_per_s, m.tflops = significant(clips_per_s), significant(tflops)
            m.fraction_of_ceiling = significant(tflops / ceiling) if ceiling else None
            bf16 = self.report["ceilings_tflops"].get("bf16")
            m.fraction_of_bf16 = significant(tflops / bf16) if bf16 else None
            m.peak_mib = round(memory["peak_mib"], 1) if memory["peak_mib"] is not None else None
            if annotate is not None:
                m.note = annotate()
        finally:
            del step
            release_memory(self.device)
        return self._record(m)

    def _record(self, m: Measurement) -> Measurement:
        self.report["results"].append(asdict(m))
        self.save()
        print(format_line(m), flush=True)
        return m


def format_line(m: Measurement) -> str:
    if m.status != "ok":
        return f"{m.name:<38} b{m.batch:<3} {m.status}: {m.note}"
    pct = f"{100 * m.fraction_of_ceiling:5.1f}%" if m.fraction_of_ceiling is not None else "    -"
    peak = f"{m.peak_mib / 1024:6.2f} GiB" if m.peak_mib is not None else "     -"
    extra = f"  (compile {m.compile_s} s)" if m.compile_s is not None else ""
    return (f"{m.name:<38} b{m.batch:<3} {m.ms_per_call:10.2f} ms {m.clips_per_s:9.2f} clips/s "
            f"{m.tflops:8.4g} TFLOP/s {pct} {peak}{extra}")


# ------------------------------------------------------------------------------------------------ measurements
def measure_ceilings(bench: Bench, quick: bool) -> None:
    device = bench.device
    size = 8192 if device.type == "cuda" else 512
    warmup, iters = (1, 3) if quick else (3, 10)
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        tflops = matmul_ceiling(device, dtype, size, warmup, iters)
        bench.report["ceilings_tflops"][name] = significant(tflops)
        print(f"ceiling: {name} {size}^3 matrix product {tflops:.2f} TFLOP/s", flush=True)
        release_memory(device)
    bench.report["ceiling_matrix_size"] = size
    bench.save()


def measure_extraction(bench: Bench, model: torch.nn.Module, flops: ClipFlops) -> None:
    """Extraction at each batch; then, at the largest, the attention paths and bf16 weights."""
    device, s = bench.device, bench.settings
    config = model.config
    dtype = torch.bfloat16 if device.type == "cuda" else None
    precision = "bf16" if dtype is not None else "fp32"
    basis = "backbone forward"

    def measurement(name: str, group: str, batch: int) -> Measurement:
        return Measurement(name, group, batch, precision, flops.backbone, basis)

    if bench.wanted("extraction"):
        for batch in s.batch_sizes:
            bench.run(measurement("extract sdpa", "extraction", batch),
                      lambda b=batch: extraction_step(model, random_clips(config, b, s.frames, device), dtype))
    largest = max(s.batch_sizes)
    if bench.wanted("fast"):
        for batch in s.batch_sizes:
            bench.run(Measurement("extract fast", "fast", batch, precision, flops.backbone, basis),
                      lambda b=batch: extraction_step(model, random_clips(config, b, s.frames, device), dtype,
                                                      fast_forward(model)))
        for name, backend in (("flash", "FLASH_ATTENTION"), ("cudnn", "CUDNN_ATTENTION")):
            m = Measurement(f"extract fast, forced {name}", "fast", largest, precision, flops.backbone, basis)
            if device.type != "cuda":
                bench.skip(m, "CUDA only")
                continue
            bench.run(m, lambda backend=backend: with_backend(extraction_step(
                model, random_clips(config, largest, s.frames, device), dtype, fast_forward(model)), backend))
    if bench.wanted("attention"):
        for path in ATTENTION_PATHS:
            m = measurement(f"extract {path.name}", "attention", largest)
            if path.cuda_only and device.type != "cuda":
                bench.skip(m, "CUDA only")
                continue
            if path.needs_package and importlib.util.find_spec(path.needs_package) is None:
                bench.skip(m, f"the {path.needs_package} package is not installed")
                continue
            try:
                set_attention(model, path.implementation)
            except Exception as exc:  # noqa: BLE001 - transformers refuses the path here: say why, go on
                bench.skip(m, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300])
                set_attention(model, "sdpa")
                continue
            bench.run(m, lambda p=path: with_backend(
                extraction_step(model, random_clips(config, largest, s.frames, device), dtype), p.backend))
            set_attention(model, "sdpa")


def measure_kernels(bench: Bench, model: torch.nn.Module, flops: ClipFlops) -> None:
    """One encoder layer's parts alone, at the largest batch: what the whole forward can at best add up to."""
    device, s = bench.device, bench.settings
    config = model.config
    largest, n, d = max(s.batch_sizes), flops.tokens, config.hidden_size
    heads, mlp = config.num_attention_heads, int(d * config.mlp_ratio)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    precision = "bf16" if device.type == "cuda" else "fp32"
    basis = "per clip: the part's FLOP in one layer (one call is one layer's part for the batch)"
    backends = [("default", None)] + ([("flash", "FLASH_ATTENTION"), ("cudnn", "CUDNN_ATTENTION"),
                                       ("mem-efficient", "EFFICIENT_ATTENTION")] if device.type == "cuda" else [])
    for name, backend in backends:
        def make(backend: str | None = backend) -> Step:
            q, k, v = (torch.randn(largest, heads, n, d // heads, device=device, dtype=dtype) for _ in range(3))

            def step() -> object:
                with torch.inference_mode():
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v)

            return with_backend(step, backend)

        bench.run(Measurement(f"kernel: attention, sdpa {name}", "kernels", largest, precision,
                              4.0 * n * n * d, basis), make)
    for name, k_dim, n_dim in (("q/k/v product", d, 3 * d), ("out projection", d, d), ("mlp fc1", d, mlp),
                               ("mlp fc2", mlp, d)):
        def make(k_dim: int = k_dim, n_dim: int = n_dim) -> Step:
            x = torch.randn(largest * n, k_dim, device=device, dtype=dtype)
            weight = torch.randn(n_dim, k_dim, device=device, dtype=dtype) / k_dim**0.5
            bias = torch.randn(n_dim, device=device, dtype=dtype)
            return lambda: torch.nn.functional.linear(x, weight, bias)

        bench.run(Measurement(f"kernel: {name}", "kernels", largest, precision, 2.0 * n * k_dim * n_dim, basis),
                  make)


def measure_bf16_weights(bench: Bench, model: torch.nn.Module, flops: ClipFlops) -> None:
    """Extraction with the weights themselves in bf16 (no per-call casts); converts `model` in place."""
    device, s = bench.device, bench.settings
    largest = max(s.batch_sizes)
    m = Measurement("extract sdpa, bf16 weights", "bf16_weights", largest, "bf16", flops.backbone,
                    "backbone forward")

    def make() -> Step:
        model.eval().to(torch.bfloat16)
        return extraction_step(model, random_clips(model.config, largest, s.frames, device).to(torch.bfloat16), None)

    bench.run(m, make)


def measure_compile(bench: Bench, flops: ClipFlops) -> None:
    """Extraction through torch.compile of FastEncoder, then of transformers' encoder, on a fresh model; the first
    call's time is the compile."""
    from vjepa_tune.models.adapters import unwrap

    device, s = bench.device, bench.settings
    dtype = torch.bfloat16 if device.type == "cuda" else None
    largest = max(s.batch_sizes)
    model = new_model(s.model, device)
    for mode in s.compile_modes:
        for path in s.compile_paths:
            torch._dynamo.reset()
            m = Measurement(f"extract {path}, compile {mode}", "compile", largest, "bf16" if dtype else "fp32",
                            flops.backbone, "backbone forward")

            def make(mode: str = mode, path: str = path) -> Step:
                chosen = None if mode == "default" else mode
                if path == "fast":  # as the store and predict compile it
                    compiled = fast_forward(model).compiled(chosen)
                else:
                    encoder = unwrap(model).vjepa2.encoder
                    compiled = torch.compile(lambda clips: encoder(pixel_values_videos=clips).last_hidden_state,
                                             mode=chosen, dynamic=False)
                clips = random_clips(model.config, largest, s.frames, device)
                return extraction_step(model, clips, dtype, compiled)

            bench.run(m, make, first_call_is_compile=True, annotate=compiled_graphs)


def compiled_graphs() -> str:
    """How many graphs torch.compile made since the last reset: 1 means the timed calls never recompiled."""
    from torch._dynamo.utils import counters

    return f"graphs compiled: {counters['stats']['unique_graphs']}"


def measure_pooler(bench: Bench, model: torch.nn.Module, flops: ClipFlops) -> None:
    """pooler_and_head on stored backbone features: no backbone at all, the pooler trains."""
    from vjepa_tune.models.adapters import apply_strategy, classify_features

    device, s = bench.device, bench.settings
    dtype = torch.bfloat16 if device.type == "cuda" else None
    model = apply_strategy(model, "pooler_and_head")
    for batch in s.batch_sizes:
        m = Measurement("pooler_and_head step, stored features", "pooler", batch, "bf16" if dtype else "fp32",
                        3 * (flops.pooler + flops.classifier), "3x pooler+head forward (trained)")
        bench.run(m, lambda b=batch: training_step(
            model, classify_features, torch.randn(b, flops.tokens, model.config.hidden_size, device=device), dtype))


def measure_guide(bench: Bench, flops: ClipFlops) -> None:
    from vjepa_tune.models.adapters import apply_strategy
    from vjepa_tune.training.inputs import forward_clips

    device, s = bench.device, bench.settings
    m = Measurement("guide step: lora, fp32, backbone", "guide", 1, "fp32",
                    flops.backbone + 2 * flops.pooler + 3 * flops.classifier,
                    "backbone forward + 2x pooler forward (LoRA: activation gradients) + 3x head")

    def make() -> Step:
        model = apply_strategy(new_model(s.model, device), "lora")
        return training_step(model, forward_clips, random_clips(model.config, 1, s.frames, device), None)

    bench.run(m, make)


def measure_backbone_lora(bench: Bench, flops: ClipFlops) -> None:
    from vjepa_tune.models.adapters import apply_strategy
    from vjepa_tune.training.inputs import forward_clips

    device, s = bench.device, bench.settings
    dtype = torch.bfloat16 if device.type == "cuda" else None
    for checkpointing in (False, True):
        name = "backbone_lora step" + (", checkpointing" if checkpointing else "")
        m = Measurement(name, "backbone_lora", s.train_batch, "bf16" if dtype else "fp32",
                        2 * (flops.backbone + flops.pooler) + 3 * flops.classifier,
                        "2x backbone and pooler forward (LoRA: activation gradients), recomputation not counted")

        def make(checkpointing: bool = checkpointing) -> Step:
            model = new_model(s.model, device)
            if checkpointing:  # the call build_model makes; newer transformers renamed it, with a FutureWarning
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model = apply_strategy(model, "backbone_lora")
            return training_step(model, forward_clips, random_clips(model.config, s.train_batch, s.frames, device),
                                 dtype)

        bench.run(m, make)


def measure_staging(bench: Bench, model: torch.nn.Module) -> None:
    """The store's copies through pinned memory against plain copies, on one batch of uint8 clips as the workers
    hand them over: the same features (bit for bit), and each direction's copy time."""
    from vjepa_tune.models.adapters import unwrap
    from vjepa_tune.models.fast_encoder import fast_encoder
    from vjepa_tune.training.extraction import Encoding

    device, s = bench.device, bench.settings
    check: dict[str, Any] = {"batch": max(s.batch_sizes)}
    bench.report["checks"]["staging"] = check
    if device.type != "cuda":
        check.update(status="skipped", note="CUDA only")
        bench.save()
        return
    config = model.config
    clips = [torch.randint(0, 256, (s.frames, config.in_chans, config.crop_size, config.crop_size),
                           dtype=torch.uint8) for _ in range(check["batch"])]
    forward = fast_encoder(unwrap(model).vjepa2.encoder)
    try:
        feats = {}
        for pinned in (False, True):
            encoding = Encoding(model.eval(), device, torch.bfloat16, pinned=pinned)
            out = encoding.encode(forward, clips, "bf16")
            feats[pinned] = encoding.staging.to_host(out, torch.bfloat16).wait()
            to_device = time_calls(lambda e=encoding: e.staging.to_device(clips), 1, 5, device)
            to_host = time_calls(lambda e=encoding, o=out: e.staging.to_host(o, torch.bfloat16).wait(), 1, 5, device)
            name = "pinned" if pinned else "plain"
            check[f"{name}_to_device_ms"] = significant(statistics.median(to_device) * 1e3)
            check[f"{name}_to_host_ms"] = significant(statistics.median(to_host) * 1e3)
        check["to_device_mib"] = round(sum(c.numel() for c in clips) / 2**20, 1)
        check["to_host_mib"] = round(feats[True].numel() * 2 / 2**20, 1)
        check["same_features"] = bool(torch.equal(feats[True], feats[False]))
        check["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a failed check is recorded, the run goes on
        check.update(status="failed", note=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300])
    finally:
        release_memory(device)
    print(f"staging check: {check}", flush=True)
    bench.save()


def measure_build(bench: Bench) -> None:
    """The random model drawn as a run draws it (`models.build`, on the CPU, seeded by the run seed) against the same
    draw under `torch.device(DEVICE)`: a GPU's generator is another generator, so the weights differ unless shown
    otherwise here, and a run folder must rebuild its frozen weights exactly."""
    from transformers import VJEPA2ForVideoClassification

    from vjepa_tune.models.build import build_base_model
    from vjepa_tune.models.loading import RANDOM_PREFIX, build_config
    from vjepa_tune.randomness import key_seed

    device, spec, seed = bench.device, bench.settings.model, 0
    check: dict[str, Any] = {"spec": spec, "seed": seed}
    bench.report["checks"]["build"] = check
    if not spec.startswith(RANDOM_PREFIX):
        check.update(status="skipped", note="only random:* models are drawn")
        bench.save()
        return
    classes = [str(i) for i in range(NUM_LABELS)]
    try:
        started = time.perf_counter()
        on_cpu = build_base_model(spec, classes, seed)
        check["cpu_build_s"] = round(time.perf_counter() - started, 2)
        config = build_config(spec[len(RANDOM_PREFIX):], NUM_LABELS, dict(enumerate(classes)))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(key_seed(seed, "init"))
            started = time.perf_counter()
            with torch.device(device):
                on_device = VJEPA2ForVideoClassification(config)
            synchronize(device)
            check["device_build_s"] = round(time.perf_counter() - started, 2)
        drawn, again = on_cpu.state_dict(), on_device.state_dict()
        differ = [k for k in drawn if not torch.equal(drawn[k], again[k].cpu())]
        check.update(status="ok", same_weights=not differ, tensors=len(drawn), differing_tensors=len(differ))
    except Exception as exc:  # noqa: BLE001 - a failed check is recorded, the run goes on
        check.update(status="failed", note=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300])
    finally:
        release_memory(device)
    print(f"build check: {check}", flush=True)
    bench.save()


# ------------------------------------------------------------------------------------------------ report
def extraction_summary(report: dict[str, Any]) -> dict[str, Any] | None:
    """The fastest extraction path and how far it is from the goal."""
    rows = [r for r in report["results"] if r["group"] in EXTRACTION_GROUPS
            and r["status"] == "ok" and r["fraction_of_ceiling"] is not None]
    if not rows:
        return None
    best = max(rows, key=lambda r: r["fraction_of_ceiling"])
    return {"name": best["name"], "batch": best["batch"], "precision": best["precision"],
            "clips_per_s": best["clips_per_s"],
            "fraction_of_ceiling": best["fraction_of_ceiling"], "goal": EXTRACTION_GOAL,
            "met": best["fraction_of_ceiling"] >= EXTRACTION_GOAL}


def results_table(results: list[dict[str, Any]]) -> list[str]:
    """Every measurement as a markdown table row (failed and skipped ones with their reason)."""
    lines = ["| measurement | batch | precision | ms per batch | clips/s | TFLOP/s | % of ceiling | "
             "% of bf16 ceiling | peak memory | note |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {r['batch']} | {r['precision']} | | | | | | | {r['status']}: {r['note']} |")
            continue
        pct = f"{100 * r['fraction_of_ceiling']:.1f}%" if r["fraction_of_ceiling"] is not None else ""
        bf16 = f"{100 * r['fraction_of_bf16']:.1f}%" if r.get("fraction_of_bf16") is not None else ""
        peak = f"{r['peak_mib'] / 1024:.2f} GiB" if r["peak_mib"] is not None else ""
        note = "; ".join(x for x in (f"compile {r['compile_s']} s" if r["compile_s"] is not None else "", r["note"])
                         if x)
        lines.append(f"| {r['name']} | {r['batch']} | {r['precision']} | {r['ms_per_call']:.2f} | "
                     f"{r['clips_per_s']:.2f} | {r['tflops']:.4g} | {pct} | {bf16} | {peak} | {note} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    env, flops, ceilings = report["environment"], report["flops"], report["ceilings_tflops"]
    s = report["settings"]
    size = report.get("ceiling_matrix_size")
    lines = [
        f"# V-JEPA 2 throughput: `{s['model']}`, {s['frames']} frames, {flops.get('tokens')} tokens per clip",
        "",
        f"Machine: {describe_environment(env)}.",
        "",
        f"Ceilings ({size}^3 matrix product, random data): "
        + ", ".join(f"{k} {v} TFLOP/s" for k, v in ceilings.items())
        + f". FLOP per clip, forward: backbone {flops.get('backbone', 0) / 1e12:.4g} T (FlopCounterMode "
        f"{flops.get('counted_backbone', 0) / 1e12:.4g} T; FACTS.md: 1.65 T for ViT-L at 16x256), pooler "
        f"{flops.get('pooler', 0) / 1e12:.4g} T.",
        "",
        *results_table(report["results"]),
    ]
    best = report.get("extraction_best")
    if best:
        verdict = "met" if best["met"] else "not met"
        lines += ["", f"Fastest extraction: {best['name']} at batch {best['batch']}, {best['clips_per_s']} clips/s, "
                      f"{100 * best['fraction_of_ceiling']:.1f}% of the {best['precision']} ceiling (goal "
                      f"{100 * EXTRACTION_GOAL:.0f}%: {verdict})."]
    for name, check in report.get("checks", {}).items():
        lines += ["", f"Check `{name}`: " + ", ".join(f"{k} {v}" for k, v in check.items()) + "."]
    lines += ["", "FLOP basis per row (JSON `flop_basis`): extraction rows count the backbone forward; training rows "
                  "count needed forward and backward work (trained part 3x forward, frozen part that gradients pass "
                  "through 2x, frozen part before anything trained 1x), recomputation excluded."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:vitl", help="Model spec (random:ARCH builds on the device).")
    parser.add_argument("--frames", type=int, default=16, help="Frames per clip.")
    parser.add_argument("--batch_sizes", default="1,8,32", help="Comma-separated batch sizes for extraction and "
                                                                "the pooler step; attention paths use the largest.")
    parser.add_argument("--train_batch", type=int, default=8, help="Batch of the backbone_lora steps.")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--compile", default="",
                        help="Comma-separated torch.compile modes to time at the largest batch (default, "
                             "max-autotune-no-cudagraphs, ...); none by default.")
    parser.add_argument("--compile_paths", default=",".join(COMPILE_PATHS),
                        help="Which forwards --compile times: fast (FastEncoder, what the store runs), sdpa "
                             "(transformers' encoder).")
    parser.add_argument("--only", default=",".join(DEFAULT_GROUPS),
                        help=f"Comma-separated groups to run, of {', '.join(GROUPS)} (compile also needs --compile; "
                             f"default: all but build and compile).")
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed calls per measurement.")
    parser.add_argument("--warmup", type=int, default=None, help="Untimed calls first (default 3; --quick 1).")
    parser.add_argument("--iters", type=int, default=None, help="Timed calls (default 10; --quick 2).")
    parser.add_argument("--budget_s", type=float, default=None, help="Skip measurements that would start later.")
    parser.add_argument("--out", type=Path, default=Path("gpu_throughput.json"), help="JSON results.")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the table here.")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.compile = [m.strip() for m in args.compile.split(",") if m.strip()]
    args.only = [g.strip() for g in args.only.split(",") if g.strip()]
    args.compile_paths = [p.strip() for p in args.compile_paths.split(",") if p.strip()]
    if not set(args.compile_paths) <= set(COMPILE_PATHS):
        parser.error(f"--compile_paths takes {', '.join(COMPILE_PATHS)}, got {args.compile_paths}")
    if args.compile and "compile" not in args.only:
        args.only.append("compile")
    unknown = sorted(set(args.only) - set(GROUPS))
    if unknown or not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error(f"--only takes groups of {', '.join(GROUPS)} (got {unknown}); --batch_sizes needs whole "
                     "numbers >= 1.")
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.iters = args.iters if args.iters is not None else (2 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    settings = Settings(model=args.model, frames=args.frames, batch_sizes=args.batch_sizes,
                        train_batch=args.train_batch, device=str(device), warmup=args.warmup, iters=args.iters,
                        compile_modes=args.compile, only=args.only, budget_s=args.budget_s,
                        compile_paths=args.compile_paths)
    bench = Bench(settings, device, args.out)
    print(describe_environment(bench.report["environment"]), flush=True)

    model = new_model(args.model, device)
    flops = clip_flops(model.config, args.frames)
    counted = counted_flops(model.config, args.frames)
    bench.report["flops"] = {**asdict(flops), "counted_backbone": counted["backbone"],
                             "counted_pooler": counted["pooler"], "reference_vitl_16x256": REFERENCE_VITL_FLOP}
    print(f"FLOP per clip: backbone {flops.backbone / 1e12:.4g} T analytic, {counted['backbone'] / 1e12:.4g} T "
          f"counted; pooler {flops.pooler / 1e12:.4g} T; {flops.tokens} tokens", flush=True)
    measure_ceilings(bench, args.quick)

    # One fp32 model serves extraction, the pooler step, then bf16 weights (which converts it); the training
    # steps and compile get fresh ones, so no measurement's peak memory holds another's model.
    measure_extraction(bench, model, flops)
    if bench.wanted("kernels"):
        measure_kernels(bench, model, flops)
    if bench.wanted("pooler"):
        measure_pooler(bench, model, flops)
    if bench.wanted("staging"):
        measure_staging(bench, model)
    if bench.wanted("bf16_weights"):
        measure_bf16_weights(bench, model, flops)
    del model
    release_memory(device)
    if bench.wanted("guide"):
        measure_guide(bench, flops)
    if bench.wanted("backbone_lora"):
        measure_backbone_lora(bench, flops)
    if bench.wanted("compile"):
        measure_compile(bench, flops)
    if bench.wanted("build"):
        measure_build(bench)

    bench.report["extraction_best"] = extraction_summary(bench.report)
    bench.report["elapsed_s"] = round(time.perf_counter() - bench.started, 1)
    bench.save()
    text = markdown(bench.report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
