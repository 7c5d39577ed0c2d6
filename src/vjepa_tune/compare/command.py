"""The `vjepa-tune compare` command: its flags (lists where the grid has axes) and the call of the recipe."""

from __future__ import annotations

import copy
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from vjepa_tune.compare.grid import GUIDE_STRATEGIES, CompareGrid
from vjepa_tune.config import DataConfig, LoraConfig, StrategyName, TrainConfig, from_plain
from vjepa_tune.text import counted


def build(p: ArgumentParser) -> None:
    p.add_argument(
        "--strategies",
        "--strategy",
        type=list[StrategyName],
        default=list(GUIDE_STRATEGIES),
        help="Strategies to compare (comma-separated); default the guide's four.",
    )
    p.add_argument(
        "--seeds",
        "--seed",
        type=list[int],
        default=[TrainConfig.seed],
        help="Training seeds (comma-separated); each is a full repetition of the grid on the same split, and the "
        "report gives the mean ± standard deviation over them. The split is made with the first, unless "
        "--data_seeds is given.",
    )
    p.add_argument(
        "--data_seeds",
        type=list[int] | None,
        default=None,
        help="Seeds of the split (comma-separated), for a random or group split: each draws its own train, "
        "validation and test videos and trains its own runs of the grid. Default: one split, made with the first "
        "of --seeds.",
    )
    p.add_class_arguments(
        TrainConfig, sub_configs=True, skip={"strategy", "run_name", "learning_rate", "seed", "data", "lora"}
    )
    p.add_argument(
        "--learning_rate",
        type=list[float],
        default=[TrainConfig.learning_rate],
        help="Learning rates to try (comma-separated).",
    )
    p.add_class_arguments(DataConfig, "data", sub_configs=True, skip={"videos_per_class"})
    p.groups["data"].add_argument(
        "--data.videos_per_class",
        type=list[int] | None,
        default=None,
        help="Sizes to try, videos per class (comma-separated); the split is made at the largest, smaller "
        "sizes shrink only its training part. Default: all videos.",
    )
    lora = p.add_argument_group("LoRA adapters (lora and pooler_head_and_lora); lists to try", name="lora")
    for name, kind in (("rank", int), ("alpha", float), ("dropout", float)):
        lora.add_argument(f"--lora.{name}", type=list[kind], default=[getattr(LoraConfig, name)],
                          help=f"LoRA {name} values to try (comma-separated).")


def compare_from_namespace(values: dict[str, Any]) -> tuple[TrainConfig, CompareGrid]:
    """The base configuration and the grid from parsed `compare` flags (a plain nested dict)."""
    values = copy.deepcopy({k: v for k, v in values.items() if k not in {"config", "__path__"}})
    data, lora = dict(values.pop("data", {}) or {}), dict(values.pop("lora", {}) or {})
    grid = CompareGrid(
        strategies=list(values.pop("strategies")),
        videos_per_class=data.pop("videos_per_class", None),
        learning_rate=values.pop("learning_rate"),
        lora_rank=lora.get("rank"),
        lora_alpha=lora.get("alpha"),
        lora_dropout=lora.get("dropout"),
        seeds=values.pop("seeds"),
        data_seeds=values.pop("data_seeds", None),
    )
    base = from_plain(TrainConfig, {**values, "data": data})
    return base, grid


def run(args: Namespace) -> int:
    from vjepa_tune.compare.recipe import run_compare  # here, not at the top: the command line starts without torch

    base, grid = compare_from_namespace(args.as_dict())
    result = run_compare(base, grid)
    if result.failed:
        print(f"{len(result.failed)} of {counted(len(result.runs), 'run')} failed; see {result.report}")
        return 1
    return 0
