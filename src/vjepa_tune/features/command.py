"""The `vjepa-tune features` command: its flags (`config.FeaturesConfig`) and the call of `write_features`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser, Namespace

from vjepa_tune.config import FeaturesConfig, from_plain


def build(p: ArgumentParser) -> None:
    p.add_argument("model", type=str,
                   help="A hub id, a local Hugging Face folder, tiny, random:ARCH, a pretraining run (its model/ "
                        "folder) or a trained run (its backbone with LoRA merged, and its pooler for --pool pooler).")
    p.add_argument("videos", type=str, nargs="+", help="Video files and folders (searched recursively).")
    p.add_argument("--out", type=Path, required=True,
                   help="Folder for NAME.npy and NAME.json per video (the inputs' subfolders mirrored) and "
                        "features.json; a rerun skips the videos already there.")
    p.add_class_arguments(FeaturesConfig, sub_configs=True)
    p.add_argument("--format", type=Literal["plain", "actionformer"], default="plain",
                   help="actionformer: also write actionformer.yaml (its dataset config) and, with --annotations, "
                        "the annotation file of the videos written.")
    p.add_argument("--annotations", type=Path | None, default=None,
                   help="With --format actionformer: an ActivityNet/THUMOS annotation JSON whose keys are the "
                        "videos' keys (their paths under the input folder, without extension).")


def run(a: Namespace) -> int:
    from vjepa_tune.features.recipe import write_features  # here: the command line starts without torch

    values = a.as_dict()
    settings = {name: values[name] for name in FeaturesConfig.__dataclass_fields__}
    summary = write_features(a.model, a.videos, Path(a.out), from_plain(FeaturesConfig, settings),
                             output_format=a.format, annotations=a.annotations,
                             log=lambda message: print(message, file=sys.stderr))
    print(summary.describe())
    return 0
