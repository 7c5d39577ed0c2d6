"""The `vjepa-tune pretrain` command: its flags and the call of the recipe (which imports torch, so it is imported
when the command runs).

Its flags come from `config.PretrainConfig`, less `config.PRETRAIN_LEFT_OFF`: `--data` keeps only the settings
pretraining uses (which videos, how clips are cut and augmented: no labels, no splits), `--cache` only how the probes'
features are stored, while `--probe.data` keeps every `train` data flag.
"""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

from vjepa_tune.config import (
    PRETRAIN_LEFT_OFF,
    CacheConfig,
    DataConfig,
    PretrainConfig,
    from_plain,
    validate_pretrain,
)


def build(p: ArgumentParser) -> None:
    defaults = PretrainConfig()
    p.add_class_arguments(PretrainConfig, sub_configs=True, skip={"data", "cache"})
    p.add_class_arguments(DataConfig, "data", sub_configs=True, default=defaults.data,
                          skip=set(PRETRAIN_LEFT_OFF["data"]))
    p.add_class_arguments(CacheConfig, "cache", sub_configs=True, default=defaults.cache,
                          skip=set(PRETRAIN_LEFT_OFF["cache"]))
    p.add_argument(
        "--resume",
        type=str | None,
        default=None,
        help="auto: continue the newest unfinished pretraining run in --out; or the path of a run folder to continue.",
    )


def run(args: Namespace) -> int:
    from vjepa_tune.pretraining.recipe import pretrain  # here: `pretrain --help` and the others start without torch

    values = {k: v for k, v in args.as_dict().items() if k not in {"config", "resume", "__path__"}}
    result = pretrain(validate_pretrain(from_plain(PretrainConfig, values)), resume=args.resume)
    print(result.summary())
    return 0
