"""Training the backbone on one device: `backbone_lora` and V-JEPA pretraining steps, their clips/s, peak memory, the
largest batch that fits, and each as a share of the bf16 matrix-product ceiling measured in the same run.

    python benchmarks/gpu_training.py [--model random:vitl] [--frames 16] [--train_batch 8]
        [--kinds backbone_lora,pretrain] [--device auto|cuda|cpu] [--no_largest] [--max_step_s 20] [--quick]
        [--budget_s S] [--out training.json] [--markdown training.md]

For each kind (each row after warm-up, timed per call with CUDA events, peak memory reset between):
- the guide-style step: fp32, batch 1, no autocast, no gradient checkpointing (how the guide trains);
- bf16 autocast at `--train_batch` (half of it first, for the memory model), without and with gradient checkpointing;
then, on a GPU, for each setting as the budget allows (without checkpointing first): the memory model
`peak = a + b x batch` from the two batches (what any card's largest batch follows from), the largest batch it
predicts on this card, that batch tried (and bisected on out of memory, a few tries; no step larger than
`--max_step_s` seconds is expected to take), and its clips/s.

`backbone_lora`: the classifier with LoRA on the backbone and the pooler, as `train --strategy backbone_lora` builds
it, cross-entropy, AdamW. `pretrain`: `pretraining.objective.JepaObjective` on the backbone (context encoder and
predictor trained, the target encoder an EMA copy), masks from `pretraining.masks.draw_masks` with the official
settings, drawn per step beforehand, AdamW, the EMA update after each step: what a pretraining step costs whatever
recipe drives it.

FLOP per clip count needed work, as `gpu_throughput.py` does: a trained part 3x its forward, a frozen part gradients
pass through 2x, a frozen part before anything trained 1x (pretraining: the target encoder's forward 1x, the context
encoder over the context tokens and the predictor 3x, from the drawn masks' token counts); recomputation under
gradient checkpointing is not counted. Every figure is written to `--out` as soon as it is measured.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_throughput beside this file
from gpu_throughput import (  # noqa: E402 - after the path it is found on
    NUM_LABELS,
    Bench,
    Measurement,
    Settings,
    Step,
    _self_attention_layer,
    autocast,
    clip_flops,
    describe_environment,
    measure_ceilings,
    new_model,
    peak_memory,
    random_clips,
    release_memory,
    resolve_device,
    results_table,
    synchronize,
    training_step,
)

KINDS = ("backbone_lora", "pretrain")
MEMORY_HEADROOM = 0.94
"""Share of the card's memory a batch may plan to use: the CUDA context and the allocator's fragmentation take the
rest."""
EMA_MOMENTUM = 0.99925


# ------------------------------------------------------------------------------------------------ FLOP per clip
def pretrain_forward_flops(config: Any, frames: int, context_tokens: list[int], target_tokens: list[int]
                           ) -> tuple[float, float]:
    """(target encoder, trained part) forward FLOP of one clip under one draw per mask set (`context_tokens[i]` and
    `target_tokens[i]` for set i): the target encoder sees every token; the patch embedding runs once, the context
    encoder's layers over each set's context tokens, the predictor over its context and target tokens."""
    d, n = config.hidden_size, clip_flops(config, frames).tokens
    patch_embedding = 2 * n * (config.in_chans * config.tubelet_size * config.patch_size**2) * d
    target = clip_flops(config, frames).backbone
    dp, mlp = config.pred_hidden_size, int(config.hidden_size * config.mlp_ratio)
    pred_mlp = int(dp * config.pred_mlp_ratio)
    trained = float(patch_embedding)
    for context, masked in zip(context_tokens, target_tokens, strict=True):
        trained += config.num_hidden_layers * _self_attention_layer(context, d, mlp)
        trained += 2 * context * d * dp  # into the predictor's width
        trained += config.pred_num_hidden_layers * _self_attention_layer(context + masked, dp, pred_mlp)
        trained += 2 * masked * dp * d  # back to the encoder's width, target tokens only
    return float(target), trained


def pretrain_step_flops(config: Any, frames: int, draws: list[list[Any]]) -> float:
    """Needed work of one clip's step, averaged over the draws the timed steps cycle through."""
    total = 0.0
    for draw in draws:
        target, trained = pretrain_forward_flops(config, frames, [m.context.shape[1] for m in draw],
                                                 [m.target.shape[1] for m in draw])
        total += target + 3 * trained
    return total / len(draws)


def backbone_lora_step_flops(config: Any, frames: int) -> float:
    """LoRA on the backbone and pooler: activation gradients through both (2x their forward), the head 3x."""
    flops = clip_flops(config, frames)
    return 2 * (flops.backbone + flops.pooler) + 3 * flops.classifier


# ------------------------------------------------------------------------------------------------ steps
def new_backbone_lora(spec: str, device: torch.device, checkpointing: bool) -> torch.nn.Module:
    from vjepa_tune.models.adapters import apply_strategy
    from vjepa_tune.models.build import enable_activation_checkpointing

    model = new_model(spec, device)
    if checkpointing:  # the call build_model makes
        enable_activation_checkpointing(model)
    return apply_strategy(model, "backbone_lora")


def new_objective(spec: str, device: torch.device, checkpointing: bool) -> torch.nn.Module:
    """JepaObjective over a fresh backbone (no classifier, no pooler), in training mode."""
    from vjepa_tune.pretraining.objective import JepaObjective

    backbone = new_model(spec, device).vjepa2  # the classifier's pooler and head are dropped with it
    return JepaObjective(backbone, gradient_checkpointing=checkpointing).train()


def mask_draws(config: Any, frames: int, batch: int, count: int = 2) -> list[list[Any]]:
    """`count` steps' masks for a batch, drawn as a recipe draws them (official settings, keyed by step)."""
    from vjepa_tune.config import MaskSettings
    from vjepa_tune.pretraining.masks import TokenGrid, draw_masks

    grid = TokenGrid.of(config, frames)
    ids = [f"clip-{i}" for i in range(batch)]
    return [draw_masks(MaskSettings(), grid, seed=0, step=step, clip_ids=ids) for step in range(count)]


def pretrain_step(objective: torch.nn.Module, clips: torch.Tensor, dtype: torch.dtype | None,
                  draws: list[list[Any]]) -> Step:
    """Objective forward, backward, AdamW step, EMA update of the target encoder: one optimizer step per call."""
    optimizer = torch.optim.AdamW(objective.trainable_parameters(), lr=1e-5, weight_decay=0.04)
    cycle = itertools.cycle(draws)

    def step() -> object:
        with autocast(clips.device, dtype):
            loss = objective(clips, next(cycle)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        objective.update_target(EMA_MOMENTUM)
        return loss

    return step


@dataclass(frozen=True)
class Kind:
    """How to build one kind of training step at a batch, and its FLOP per clip."""

    name: str
    make: Callable[[int, torch.dtype | None, bool], Step]
    """(batch, autocast dtype or None, gradient checkpointing) -> a step on a fresh model."""
    flop_per_clip: Callable[[int], float]
    flop_basis: str


def kinds(spec: str, device: torch.device, frames: int) -> dict[str, Kind]:
    from vjepa_tune.models.loading import RANDOM_PREFIX, build_config, model_config
    from vjepa_tune.training.inputs import forward_clips

    config = (build_config(spec[len(RANDOM_PREFIX):], NUM_LABELS) if spec.startswith(RANDOM_PREFIX)
              else model_config(spec))

    def lora(batch: int, dtype: torch.dtype | None, checkpointing: bool) -> Step:
        model = new_backbone_lora(spec, device, checkpointing)
        return training_step(model, forward_clips, random_clips(model.config, batch, frames, device), dtype)

    def pretrain(batch: int, dtype: torch.dtype | None, checkpointing: bool) -> Step:
        objective = new_objective(spec, device, checkpointing)
        clips = random_clips(config, batch, frames, device)
        return pretrain_step(objective, clips, dtype, mask_draws(config, frames, batch))

    return {
        "backbone_lora": Kind("backbone_lora", lora, lambda _: backbone_lora_step_flops(config, frames),
                              "2x backbone and pooler forward (LoRA: activation gradients) + 3x head"),
        "pretrain": Kind("pretrain", pretrain,
                         lambda batch: pretrain_step_flops(config, frames, mask_draws(config, frames, batch)),
                         "target encoder forward + 3x (context encoder over context tokens + predictor)"),
    }


# ------------------------------------------------------------------------------------------------ largest batch
@dataclass
class MemoryModel:
    """Peak memory of one step as `intercept + per_clip x batch`, from two batches; what any card fits follows."""

    batches: tuple[int, int]
    peaks_mib: tuple[float, float]
    intercept_mib: float
    per_clip_mib: float

    @classmethod
    def fit(cls, first: tuple[int, float], second: tuple[int, float]) -> MemoryModel:
        (b1, p1), (b2, p2) = sorted((first, second))
        if b1 == b2:
            raise ValueError("a memory model needs two different batch sizes")
        per_clip = max((p2 - p1) / (b2 - b1), 1e-6)
        return cls((b1, b2), (p1, p2), p1 - per_clip * b1, per_clip)

    def largest(self, capacity_mib: float) -> int:
        return max(0, math.floor((capacity_mib - self.intercept_mib) / self.per_clip_mib))


def search_largest(fits: Callable[[int], bool], known: int, predicted: int, *, cap: int, tries: int = 4
                   ) -> tuple[int, list[tuple[int, bool]]]:
    """The largest batch that `fits`, given that `known` fits, to within a sixteenth: `predicted` first (never above
    `cap`); up by a tenth while it fits, down by a tenth while nothing above `known` has, then bisecting, within
    `tries` tries. Returns it and the (batch, fitted) pairs tried."""
    lo, hi, tried = known, None, []
    candidate = min(max(predicted, known + 1), cap)
    while len(tried) < tries and lo < candidate <= cap:
        ok = fits(candidate)
        tried.append((candidate, ok))
        if ok:
            lo = candidate
        else:
            hi = candidate
        if hi is not None and hi - lo <= max(1, lo // 16):
            break
        if hi is None:
            candidate = min(cap, max(lo + 1, math.ceil(lo * 1.1)))
        elif lo == known:
            candidate = max(lo + 1, math.floor(hi * 0.9))
        else:
            candidate = (lo + hi) // 2
    return lo, tried


def try_batch(make: Callable[[], Step], device: torch.device) -> tuple[bool, float | None, float]:
    """One step built by `make`: (fitted, peak MiB, seconds); out of memory is a result, not an error."""
    step: Step | None = None
    started = time.perf_counter()
    fitted = True
    with peak_memory(device) as memory:
        try:
            step = make()
            step()
            synchronize(device)
        except torch.cuda.OutOfMemoryError:
            fitted = False  # the exception (and the activations its frames hold) is gone after this block
    seconds = time.perf_counter() - started
    del step
    release_memory(device)
    return fitted, memory["peak_mib"] if fitted else None, seconds


# ------------------------------------------------------------------------------------------------ measuring
def measure_steps(bench: Bench, kind: Kind) -> dict[bool, dict[int, Measurement]]:
    """The guide-style row, then bf16 at half of `--train_batch` and at it, without and with gradient
    checkpointing; returns the bf16 rows by checkpointing and batch."""
    device, s = bench.device, bench.settings
    dtype = torch.bfloat16 if device.type == "cuda" else None
    precision = "bf16" if dtype is not None else "fp32"
    guide = Measurement(f"{kind.name} step, guide-style (fp32, batch 1)", kind.name, 1, "fp32",
                        kind.flop_per_clip(1), kind.flop_basis)
    bench.run(guide, lambda: kind.make(1, None, False))
    rows: dict[bool, dict[int, Measurement]] = {}
    for checkpointing in (False, True):
        name = f"{kind.name} step" + (", checkpointing" if checkpointing else "")
        rows[checkpointing] = {}
        for batch in sorted({max(1, s.train_batch // 2), s.train_batch}):
            m = Measurement(name, kind.name, batch, precision, kind.flop_per_clip(batch),
                            kind.flop_basis + ("; recomputation not counted" if checkpointing else ""))
            rows[checkpointing][batch] = bench.run(m, lambda b=batch, c=checkpointing: kind.make(b, dtype, c))
    return rows


def measure_largest(bench: Bench, kind: Kind, checkpointing: bool, rows: dict[int, Measurement],
                    max_step_s: float) -> None:
    """The memory model of one setting from its two bf16 rows, the largest batch it predicts on this card, that
    batch tried (and bisected) as the time budget allows, and its clips/s."""
    device, s = bench.device, bench.settings
    name = f"{kind.name} step" + (", checkpointing" if checkpointing else "")
    row = Measurement(f"{name}, largest batch", kind.name, s.train_batch, "bf16", kind.flop_per_clip(s.train_batch),
                      kind.flop_basis)
    if device.type != "cuda":
        bench.skip(row, "CUDA only (no memory limit to find on a CPU)")
        return
    measured = [r for r in rows.values() if r.status == "ok" and r.peak_mib is not None]
    if len(measured) < 2:
        bench.skip(row, "the two batches of the memory model did not both run")
        return
    model = MemoryModel.fit(*((r.batch, r.peak_mib) for r in measured))
    capacity = torch.cuda.get_device_properties(device).total_memory / 2**20 * MEMORY_HEADROOM
    predicted = model.largest(capacity)
    cap = max(s.train_batch, math.floor(max_step_s * (rows[s.train_batch].clips_per_s or 1.0)))
    left = (s.budget_s - (time.perf_counter() - bench.started)) if s.budget_s is not None else math.inf
    tries = int(max(0, min(4, left // (max_step_s + 5))))  # a try builds a model (seconds) and runs one step

    def fits(batch: int) -> bool:
        return try_batch(lambda: kind.make(batch, torch.bfloat16, checkpointing), device)[0]

    found, tried = search_largest(fits, s.train_batch, predicted, cap=cap, tries=tries)
    bench.report.setdefault("memory_models", []).append(
        {"name": name, **asdict(model), "capacity_mib": round(capacity), "predicted_largest": predicted,
         "largest_found": found, "tried": tried, "step_cap": cap})
    bench.save()
    note = (f"peak {model.intercept_mib / 1024:.2f} GiB + {model.per_clip_mib / 1024:.3f} GiB per clip; predicted "
            f"{predicted} on {capacity / 1024:.0f} GiB; tried {tried}"
            + (f"; steps capped at {cap} clips (--max_step_s)" if predicted > cap else "")
            + ("" if tries else "; no time left to try"))
    left = (s.budget_s - (time.perf_counter() - bench.started)) if s.budget_s is not None else math.inf
    if found <= s.train_batch or left < 3 * max_step_s:
        bench.skip(row, note)
        return
    row.batch, row.flop_per_clip = found, kind.flop_per_clip(found)
    timed = bench.run(row, lambda: kind.make(found, torch.bfloat16, checkpointing), warmup=1, iters=2)
    timed.note = f"{timed.note}; {note}" if timed.note else note
    bench.report["results"][-1] = asdict(timed)
    bench.save()


def markdown(report: dict[str, Any]) -> str:
    s, ceilings = report["settings"], report["ceilings_tflops"]
    lines = [
        f"# Training steps on `{s['model']}`, {s['frames']} frames per clip",
        "",
        f"Machine: {describe_environment(report['environment'])}.",
        "",
        f"Ceilings ({report.get('ceiling_matrix_size')}^3 matrix product, random data): "
        + ", ".join(f"{k} {v} TFLOP/s" for k, v in ceilings.items()) + ".",
        "",
        *results_table(report["results"]),
    ]
    models = report.get("memory_models") or []
    if models:
        lines += ["", "Memory per step, `peak = a + b x batch` (fitted on two batches; a card of M GiB fits about "
                      f"({MEMORY_HEADROOM} M - a) / b clips):", "",
                  "| step | a (GiB) | b (GiB per clip) | predicted largest here | largest found | "
                  "tried (batch, fitted) |",
                  "|---|---:|---:|---:|---:|---|"]
        for m in models:
            lines.append(f"| {m['name']} | {m['intercept_mib'] / 1024:.2f} | {m['per_clip_mib'] / 1024:.3f} | "
                         f"{m['predicted_largest']} | {m['largest_found']} | {m['tried']} |")
    lines += ["", "FLOP basis per row (JSON `flop_basis`): needed forward and backward work (trained part 3x forward, "
                  "frozen part that gradients pass through 2x, frozen part before anything trained 1x), recomputation "
                  "excluded; the guide-style rows are read against the fp32 ceiling, every row also against bf16."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:vitl", help="Model spec (random:ARCH builds on the device).")
    parser.add_argument("--frames", type=int, default=16, help="Frames per clip.")
    parser.add_argument("--train_batch", type=int, default=8, help="Batch of the bf16 rows (and half of it).")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"Comma-separated, of {', '.join(KINDS)}.")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--no_largest", action="store_true", help="Skip the memory model and the largest batch.")
    parser.add_argument("--max_step_s", type=float, default=20.0,
                        help="Try no batch whose one step is expected to take longer (from the --train_batch row).")
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed calls per measurement.")
    parser.add_argument("--warmup", type=int, default=None, help="Untimed calls first (default 2; --quick 1).")
    parser.add_argument("--iters", type=int, default=None, help="Timed calls (default 5; --quick 2).")
    parser.add_argument("--budget_s", type=float, default=None, help="Skip measurements that would start later.")
    parser.add_argument("--out", type=Path, default=Path("gpu_training.json"), help="JSON results.")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the tables here.")
    args = parser.parse_args(argv)
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not args.kinds or not set(args.kinds) <= set(KINDS) or args.train_batch < 1:
        parser.error(f"--kinds takes {', '.join(KINDS)} (got {args.kinds}); --train_batch needs a whole number >= 1")
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.iters = args.iters if args.iters is not None else (2 if args.quick else 5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    settings = Settings(model=args.model, frames=args.frames, batch_sizes=[1], train_batch=args.train_batch,
                        device=str(device), warmup=args.warmup, iters=args.iters, compile_modes=[],
                        only=list(args.kinds), budget_s=args.budget_s, compile_paths=[])
    bench = Bench(settings, device, args.out)
    print(describe_environment(bench.report["environment"]), flush=True)
    measure_ceilings(bench, args.quick)
    # Every kind's steps first, then the largest batches (the slow part) as the budget allows, cheapest first.
    chosen = [kind for name, kind in kinds(args.model, device, args.frames).items() if name in args.kinds]
    rows = {kind.name: measure_steps(bench, kind) for kind in chosen}
    if not args.no_largest:
        for checkpointing in (False, True):
            for kind in chosen:
                measure_largest(bench, kind, checkpointing, rows[kind.name][checkpointing], args.max_step_s)
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
