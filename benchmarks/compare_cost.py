"""What the feature store saves a `compare` grid: wall time and backbone forward passes, store on vs off.

    python benchmarks/compare_cost.py [--model tiny] [--videos_per_class 10] [--size 320x240] [--frames 32]

Runs `vjepa-tune compare` twice in one process on the same synthetic videos, with default flags (the
guide's four strategies, 5 epochs, batch 1 x 4): once with the feature store (in a fresh store folder, so its
extraction is paid here) and once with `--cache.enabled false`. Every forward pass of the V-JEPA 2 encoder, in
either path, is counted by a global module forward hook, with the clips it carried. Goal: at least 2.5x less
wall time and at least 4x fewer backbone passes with the store.

`--model` defaults to `tiny`, the bundled pretrained checkpoint; where this installation lacks it, the
benchmark says so and uses `random:tiny`, the same architecture with random weights (the cost is the same:
only the weights' values differ). Prints a table and writes it to `benchmarks/results/compare_cost.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import vjepa_tune  # noqa: F401 - first, so its OMP_WAIT_POLICY=PASSIVE default is set before torch loads

RESULTS = Path(__file__).resolve().parent / "results" / "compare_cost.md"


@dataclass
class Cost:
    label: str
    wall_s: float = 0.0
    passes: int = 0
    clips: int = 0
    test_acc: dict[str, float] | None = None


class EncoderCounter:
    """Counts forward passes of every VJEPA2Encoder, whoever calls it (extraction or a training step)."""

    def __init__(self) -> None:
        from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder

        self.encoder_class = VJEPA2Encoder
        self.passes = 0
        self.clips = 0
        self.handle = None

    def __enter__(self) -> EncoderCounter:
        from torch.nn.modules.module import register_module_forward_hook

        self.handle = register_module_forward_hook(self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def _count(self, module: object, args: object, output: object) -> None:
        if isinstance(module, self.encoder_class):
            self.passes += 1
            self.clips += int(output.last_hidden_state.shape[0])


def resolve_model(requested: str) -> tuple[str, str]:
    """The model to run and a note; `tiny` falls back to `random:tiny` where the checkpoint is missing."""
    if requested != "tiny":
        return requested, ""
    from vjepa_tune.models.specs import tiny_checkpoint_dir

    if (tiny_checkpoint_dir() / "config.json").is_file():
        return "tiny", ""
    return "random:tiny", "the bundled `tiny` checkpoint is missing here: `random:tiny` (same shape) ran"


def run_grid(label: str, argv: list[str]) -> Cost:
    from vjepa_tune import cli

    cost = Cost(label)
    log = io.StringIO()
    with EncoderCounter() as counter, contextlib.redirect_stdout(log):
        started = time.perf_counter()
        code = cli.main(argv)
        cost.wall_s = time.perf_counter() - started
    if code != 0:
        sys.stdout.write(log.getvalue())
        raise SystemExit(f"compare ({label}) exited with code {code}")
    cost.passes, cost.clips = counter.passes, counter.clips
    cost.test_acc = _test_accuracies(Path(argv[argv.index("--out") + 1]))
    return cost


def _test_accuracies(out: Path) -> dict[str, float]:
    import json

    (folder,) = out.glob("compare-*")
    return {
        json.loads(m.read_text())["approach"]: json.loads(m.read_text())["test_acc"]
        for m in sorted(folder.glob("*/metrics.json"))
    }


def format_results(costs: list[Cost], setup: str, note: str) -> str:
    store, no_store = costs
    lines = [
        "# `compare` with and without the feature store",
        "",
        setup,
        "",
        "| path | wall time | encoder forward passes | clips through the encoder |",
        "|---|---|---|---|",
    ]
    for c in costs:
        lines.append(f"| {c.label} | {c.wall_s:.1f} s | {c.passes} | {c.clips} |")
    lines += [
        f"| **ratio (off / on)** | **{no_store.wall_s / store.wall_s:.2f}x** | "
        f"**{no_store.passes / max(store.passes, 1):.2f}x** | "
        f"**{no_store.clips / max(store.clips, 1):.2f}x** |",
        "",
        "Goal: at least 2.5x less wall time and at least 4x fewer backbone passes with the store.",
        "",
        "Test accuracy per strategy (store on / off): "
        + ", ".join(f"{k} {store.test_acc[k]:.3f} / {no_store.test_acc.get(k, float('nan')):.3f}"
                    for k in store.test_acc),
    ]
    if note:
        lines += ["", f"Note: {note}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="Model spec (tiny: random:tiny where it is missing).")
    parser.add_argument("--videos_per_class", type=int, default=10, help="Synthetic videos per class.")
    parser.add_argument("--size", default="320x240", help="Synthetic video size WxH.")
    parser.add_argument("--frames", type=int, default=32, help="Frames per synthetic video.")
    parser.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one).")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file for the figures.")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice). On a machine shared with "
                        "other jobs, 1 keeps threads from spinning against each other.")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from vjepa_tune.synth import parse_size, synthesize

    model, note = resolve_model(args.model)
    import vjepa_tune.compare.recipe  # noqa: F401 - imported before timing, so neither path pays for the imports
    import vjepa_tune.training.recipe  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="compare-cost-") as tmp:
        work = args.work or Path(tmp)
        data = synthesize(work / "videos", videos_per_class=args.videos_per_class, size=parse_size(args.size),
                          frames=args.frames, seed=0, progress=False).root
        common = ["compare", "--data.root", str(data), "--model", model, "--cache.dir", str(work / "store")]
        costs = [
            run_grid("store on (default)", [*common, "--out", str(work / "on")]),
            run_grid("store off (`--cache.enabled false`)", [*common, "--out", str(work / "off"),
                                                            "--cache.enabled", "false"]),
        ]
    setup = (
        f"The guide's four strategies x 5 epochs (default flags) on `{model}`, {4 * args.videos_per_class} "
        f"synthetic videos ({args.videos_per_class} per class, {args.size}, {args.frames} frames), one "
        f"process, store in a fresh folder. Machine: {platform.machine()}, torch threads: "
        f"{torch.get_num_threads()}, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}; "
        f"torch {torch.__version__}, Python {platform.python_version()}."
    )
    text = format_results(costs, setup, note)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {args.results}")


if __name__ == "__main__":
    main()
