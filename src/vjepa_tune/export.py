"""`vjepa-tune export`: a run's best model as a standard Hugging Face directory, or as a peft adapter.

Merged (`--merge`, and always for strategies without adapters): LoRA folded into the weights, written by
`save_pretrained` with the run's id2label/label2id and a `VJEPA2VideoProcessor` config matching the model's
crop, so plain `transformers` loads it with `VJEPA2ForVideoClassification.from_pretrained` and
`AutoVideoProcessor.from_pretrained`, and `vjepa-tune train --model OUT_DIR` can start from it.

Adapter (lora and backbone_lora without `--merge`): peft's adapter files, the trained classifier included
(`modules_to_save`), which `PeftModel.from_pretrained` puts back on the base model; the base model's config is
kept in `base_model/config.json` and the card says which base it needs. `pooler_head_and_lora` also trains the
pooler's base weights, which an adapter cannot carry: it is exported merged, and the command says so.

A pretraining run (`vjepa-tune pretrain`) exports its target encoder as it is, already a plain transformers model:
the best by the probe's validation accuracy when the run probed, else the last.

Every export gets a model card (README.md): strategy, data, metrics and the commands that made it. The folder
is written aside and moved into place, so a failed export never leaves half a directory behind.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonargparse import ArgumentParser, Namespace

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.statistics import format_interval
from vjepa_tune.files import staged_folder
from vjepa_tune.models.specs import RANDOM_PREFIX, TINY, hub_id
from vjepa_tune.models.strategies import get_strategy
from vjepa_tune.runs.folder import (
    BEST_MODEL_DIR,
    CONFIG_FILE,
    HF_CONFIG_FILE,
    MODEL_DIR,
    is_pretraining_run,
    read_finished_metrics,
    read_model_meta,
    read_pretrain_config,
)
from vjepa_tune.text import counted
from vjepa_tune.tracking.records import versions

if TYPE_CHECKING:  # torch, transformers and peft load when an export runs, not when the command line starts
    import torch

BASE_CONFIG_DIR = "base_model"
CARD_FILE = "README.md"


@dataclass
class ExportResult:
    out_dir: Path
    kind: str
    """merged (a plain transformers model), adapter (a peft adapter on the base model) or pretrained (a
    pretraining run's target encoder, a plain transformers model)."""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = "a peft adapter" if self.kind == "adapter" else "a Hugging Face model"
        files = ", ".join(sorted(p.name for p in self.out_dir.iterdir()))
        return f"exported {what} to {self.out_dir} ({files})"


def rebuild_base_model(run_dir: str | Path) -> torch.nn.Module:
    """The base model a run started from, before its strategy: what an adapter export goes on.

    Weights the run had to initialise itself (all of a `random:*` model, a pooler missing from a backbone-only
    checkpoint, the new classifier) are drawn from the run seed exactly as training drew them.
    """
    from vjepa_tune.models.build import build_base_model  # here, not at the top: the command line starts without torch

    meta = read_model_meta(Path(run_dir))
    return build_base_model(meta["model"], list(meta["classes"]), meta["init_seed"])


def _check_out_dir(run_dir: Path, out_dir: Path, overwrite: bool) -> None:
    run, out = run_dir.resolve(), out_dir.resolve()
    if out == run or out in run.parents:
        raise BadInput(f"OUT_DIR {out_dir} holds the run folder {run_dir} itself; choose another folder.")
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"OUT_DIR {out_dir} exists and is not a folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise BadInput(f"OUT_DIR {out_dir} already exists and is not empty; pass --overwrite to replace it.")


def _base_name(spec: str) -> str:
    """What an adapter records as its base: the hub id, the local folder's full path, or the spec itself."""
    if spec != TINY and not spec.startswith(RANDOM_PREFIX) and Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser().resolve())
    return spec


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    merge: bool = False,
    overwrite: bool = False,
    last: bool = False,
    command: str | None = None,
) -> ExportResult:
    """Write the run's best model to `out_dir` (see the module docstring for what each kind holds); with `last`, a
    pretraining run's encoder after its last step instead of the best probe's."""
    # here, not at the top: the command line starts without torch
    from peft import PeftModel
    from transformers import VJEPA2VideoProcessor

    from vjepa_tune.models.adapters import unwrap
    from vjepa_tune.models.loading import model_crop_size, quiet_transformers
    from vjepa_tune.runs.checkpoint import load_run_model

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if is_pretraining_run(run_dir):
        return export_pretraining_run(run_dir, out_dir, merge=merge, overwrite=overwrite, last=last,
                                      command=command)
    if last:
        raise BadInput(f"--last applies only to a pretraining run (it exports model/ instead of best_model/); "
                       f"{run_dir} is a training run, whose export is its best model.")
    meta = read_model_meta(run_dir)
    _check_out_dir(run_dir, out_dir, overwrite)
    strategy = get_strategy(meta["strategy"])
    model, cfg, classes = load_run_model(run_dir)
    notes: list[str] = []
    if not strategy.uses_lora:
        kind = "merged"
        if not merge:
            notes.append(f"{strategy.name} trains no adapters: the whole model is exported (nothing to merge).")
    elif strategy.train_pooler and not merge:
        kind = "merged"
        notes.append(
            f"{strategy.name} changes the pooler's base weights too, which a LoRA adapter cannot carry: it "
            "is exported merged only (as with --merge)."
        )
    else:
        kind = "merged" if merge else "adapter"

    with staged_folder(out_dir, replace=True) as staging, quiet_transformers():  # checked above: empty, or --overwrite
        crop = model_crop_size(model)
        if kind == "merged":
            plain = model.merge_and_unload() if isinstance(model, PeftModel) else unwrap(model)
            plain.requires_grad_(False)
            plain.save_pretrained(staging, safe_serialization=True)
        else:
            peft_config = model.peft_config[model.active_adapter]
            peft_config.base_model_name_or_path = _base_name(meta["model"])
            # No embedding check: peft would look the base up on the hub to compare vocabularies.
            model.save_pretrained(staging, save_embedding_layers=False)
            unwrap(model).config.save_pretrained(staging / BASE_CONFIG_DIR)
        VJEPA2VideoProcessor(crop_size=crop).save_pretrained(staging)
        card = model_card(run_dir, meta, cfg, classes, kind, notes, command)
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
    return ExportResult(out_dir, kind, notes)


# ------------------------------------------------------------------------------------------------ model card
def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


def _clip_code(data: DataConfig) -> list[str]:
    """Python lines that read `video.mp4` and label the clip the run would cut from it (`model`, `processor`)."""
    n = int(data.frames_per_clip)
    if data.sampling == "random_window":
        step = int(data.frame_step)
        pick = [
            f"# {n} frames {step} apart from the middle of the video, as the run cut its evaluation clips",
            f"start = max(0, (len(frames) - {(n - 1) * step + 1}) // 2)",
            f"video = np.stack([frames[min(start + {step} * k, len(frames) - 1)] for k in range({n})])",
        ]
    else:
        pick = [
            f"# {n} frames spread evenly over the whole video, as the run sampled its clips (here by frame count;",
            "# the run takes the frame on screen at each part's middle in time: the same unless the rate varies)",
            f"video = np.stack([frames[(2 * k + 1) * len(frames) // {2 * n}] for k in range({n})])",
        ]
    return [
        'with av.open("video.mp4") as container:',
        '    frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]',
        *pick,
        'inputs = processor(video, return_tensors="pt")',
        "with torch.no_grad():",
        "    probs = model(**inputs).logits.softmax(-1)[0]",
        "print(model.config.id2label[int(probs.argmax())], round(float(probs.max()), 3))",
    ]


def _python_block(imports: list[str], load: list[str], data: DataConfig) -> list[str]:
    """One complete example: imports, loading the model and its processor, labelling one video."""
    head = ["import av", "import numpy as np", "import torch", *imports]
    return ["```python", *sorted(head, key=lambda line: line.startswith("from ")), "", *load,
            'processor = AutoVideoProcessor.from_pretrained("OUT_DIR")', "", *_clip_code(data), "```"]


def _merged_use(data: DataConfig) -> list[str]:
    return _python_block(
        ["from transformers import AutoVideoProcessor, VJEPA2ForVideoClassification"],
        ['model = VJEPA2ForVideoClassification.from_pretrained("OUT_DIR").eval()'],
        data,
    )


def _adapter_use(run_dir: Path, meta: dict[str, Any], data: DataConfig) -> list[str]:
    """How to put the adapter on its base model, by kind of base; every example prints the run's class names."""
    spec = meta["model"]
    rebuilt = _python_block(
        ["from peft import PeftModel", "from transformers import AutoVideoProcessor",
         "from vjepa_tune.export import rebuild_base_model"],
        [f"base = rebuild_base_model({json.dumps(str(Path(run_dir).resolve()))})  # the run this adapter is from",
         'model = PeftModel.from_pretrained(base, "OUT_DIR").eval()'],
        data,
    )
    if spec.startswith(RANDOM_PREFIX):
        return [
            f"The run started from `{spec}`, whose weights vjepa-tune draws from the run seed "
            f"({meta['init_seed']}); `base_model/config.json` is its configuration. Rebuild it with vjepa-tune, "
            "or export with `--merge` for a model that needs nothing else:",
            "",
            *rebuilt,
        ]
    imports = ["from peft import PeftModel",
               "from transformers import AutoVideoProcessor, VJEPA2Config, VJEPA2ForVideoClassification"]
    if spec == TINY:
        where = "vjepa-tune's bundled `tiny` checkpoint"
        source = "tiny_checkpoint_dir()"
        imports.append("from vjepa_tune.models.specs import tiny_checkpoint_dir")
    else:
        name = hub_id(spec) or str(Path(spec).expanduser().resolve())
        where, source = f"`{name}`", json.dumps(name)
    direct = _python_block(
        imports,
        ['config = VJEPA2Config.from_pretrained("OUT_DIR/base_model")  # the base model with this run\'s classes',
         f"base = VJEPA2ForVideoClassification.from_pretrained({source}, config=config, "
         "ignore_mismatched_sizes=True)",
         'model = PeftModel.from_pretrained(base, "OUT_DIR").eval()  # the LoRA matrices and the trained classifier'],
        data,
    )
    return [
        f"The adapter goes on {where}; the classifier comes with the adapter, and `base_model/config.json` "
        "holds the base model's configuration with this run's classes:",
        "",
        *direct,
        "",
        "If that checkpoint has no pooler (a backbone-only V-JEPA 2 checkpoint), the run drew the pooler's "
        "weights from its seed and the adapter needs exactly those: rebuild the base with vjepa-tune, or export "
        "with `--merge`:",
        "",
        *rebuilt,
    ]


def model_card(
    run_dir: Path,
    meta: dict[str, Any],
    cfg: TrainConfig,
    classes: list[str],
    kind: str,
    notes: list[str],
    command: str | None,
) -> str:
    """README.md for the export: what was trained on what, how well it did, and how to load it."""
    metrics = read_finished_metrics(run_dir) or {}
    hub = hub_id(meta["model"])
    front = [
        "---",
        f"library_name: {'transformers' if kind == 'merged' else 'peft'}",
        "pipeline_tag: video-classification",
        "tags:",
        "  - video-classification",
        "  - vjepa2",
        "  - vjepa-tune",
        f"  - {meta['strategy']}",
    ]
    if hub is not None:
        front.append(f"base_model: {hub}")
    front.append("---")
    data = cfg.data
    lora = meta.get("lora") or {}
    uses_lora = get_strategy(meta["strategy"]).uses_lora
    lines = [
        *front,
        "",
        f"# V-JEPA 2 video classifier: {', '.join(classes[:8])}{', ...' if len(classes) > 8 else ''}",
        "",
        f"Fine-tuned with vjepa-tune from `{meta['model']}` using the "
        f"`{meta['strategy']}` strategy"
        + (
            f" (LoRA rank {lora.get('rank')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')})"
            if uses_lora
            else ""
        )
        + ".",
        "",
        f"This folder is {'a complete transformers model' if kind == 'merged' else 'a peft LoRA adapter'}"
        + (" (LoRA folded into the weights)." if kind == "merged" and uses_lora else "."),
        *(f"\n> {note}" for note in notes),
        "",
        "## Data",
        "",
        f"- data set: `{data.root}` (format {data.format}), split {metrics.get('split_method', '-')}: "
        f"{metrics.get('num_train', '-')} train / {metrics.get('num_val', '-')} val / "
        f"{metrics.get('num_test', '-')} test videos"
        + (f", {counted(metrics['skipped_videos'], 'unreadable video')} left out" if metrics.get("skipped_videos")
           else ""),
        f"- classes ({len(classes)}): {', '.join(classes)}",
        f"- clips: {data.frames_per_clip} frames ({data.sampling} sampling"
        + (f", every {counted(data.frame_step, 'frame')}" if data.sampling == "random_window" else "")
        + f"), {meta.get('crop_size') or data.crop_size} px crops",
        "",
        "## Results",
        "",
    ]
    if metrics:
        lines += [
            "| test acc | best val acc | mean class acc | macro-F1 | trainable params | training time |",
            "|---|---|---|---|---|---|",
            f"| {_pct(metrics.get('test_acc'))} | {_pct(metrics.get('best_val_acc'))} | "
            f"{_pct(metrics.get('mean_class_acc'))} | {_pct(metrics.get('macro_f1'))} | "
            f"{metrics.get('trainable_params', 0):,} of {metrics.get('total_params', 0):,} "
            f"({metrics.get('trainable_pct', 0):.3g}%) | {metrics.get('train_time_s', 0):.0f} s |",
        ]
    else:
        lines.append("The run has no metrics.json (it did not finish): no test results.")
    lines += ["", "## Use", "", "`OUT_DIR` stands for this folder and `video.mp4` for your video.", ""]
    lines += _merged_use(data) if kind == "merged" else _adapter_use(run_dir, meta, data)
    lines += [
        "",
        "## How it was made",
        "",
        "```",
        f"vjepa-tune train --config {Path(run_dir).resolve() / CONFIG_FILE}",
        command or f"vjepa-tune export {run_dir} OUT_DIR",
        "```",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items() if v) + ".",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ pretraining
def export_pretraining_run(run_dir: Path, out_dir: Path, *, merge: bool = False, overwrite: bool = False,
                           last: bool = False, command: str | None = None) -> ExportResult:
    """Write a pretraining run's model, the target encoder, as a plain Hugging Face folder with a model card: the
    best by the probe's validation accuracy when the run probed (best_model/), else, or with `last`, the one after
    the last step (model/)."""
    _check_out_dir(run_dir, out_dir, overwrite)
    best, final = run_dir / BEST_MODEL_DIR, run_dir / MODEL_DIR
    metrics = read_finished_metrics(run_dir) or {}
    if last and not (final / HF_CONFIG_FILE).is_file():
        raise BadInput(f"--last: {run_dir} has no {MODEL_DIR}/ yet (a pretraining run writes it when it ends); "
                       f"finish it with `vjepa-tune pretrain --resume {run_dir}`, or export {BEST_MODEL_DIR}/ without "
                       "--last.")
    source = best if (best / HF_CONFIG_FILE).is_file() and not last else final
    if not (source / HF_CONFIG_FILE).is_file():
        raise BadInput(f"{run_dir} holds no model yet: a pretraining run writes {MODEL_DIR}/ when it ends, and "
                       f"{BEST_MODEL_DIR}/ at its first probe; resume it with `vjepa-tune pretrain --resume "
                       f"{run_dir}`.")
    notes = ["a pretraining run's model is its target encoder, a plain transformers model: there is nothing to "
             "merge."] if merge else []
    notes.append(f"exported {source.name}/, the target encoder {_which_encoder(source, metrics)}"
                 + (f" ({MODEL_DIR}/ holds the one after the last step: --last exports it)" if source == best
                    else ""))
    cfg = read_pretrain_config(run_dir)
    with staged_folder(out_dir, replace=True) as staging:  # checked above: empty, or --overwrite
        shutil.copytree(source, staging, dirs_exist_ok=True)
        card = pretraining_model_card(run_dir, source, cfg.model, str(cfg.data.root), metrics, command,
                                      target_held=cfg.ema.start == 1 and cfg.ema.end == 1)
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
    return ExportResult(out_dir, "pretrained", notes)


def _card_title(model: str, data: str, source: Path, metrics: dict[str, Any], target_held: bool) -> str:
    """The card's title: "pretrained further" only when the exported encoder is not the one the run started from."""
    if target_held:
        return (f"# V-JEPA 2 encoder: `{model}` as it came: its continued pretraining on `{data}` held the target "
                "encoder still (EMA momentum 1)")
    if _unchanged(source, metrics):
        return f"# V-JEPA 2 encoder: `{model}` as it came, the best of its continued pretraining on `{data}`"
    return f"# V-JEPA 2 encoder: `{model}` pretrained further on `{data}`"


def _unchanged(source: Path, metrics: dict[str, Any]) -> bool:
    """Whether `source` is best_model/ and that is the encoder the run started from (no later probe did better)."""
    return source.name == BEST_MODEL_DIR.name and metrics.get("best_probe_step") == 0


def _which_encoder(source: Path, metrics: dict[str, Any]) -> str:
    """Which of the run's encoders `source` holds, in words (the model card and the export's console say it)."""
    probes = metrics.get("probes") or []
    chosen = next((p for p in probes if p["step"] == metrics.get("best_probe_step")), None)
    if source.name != BEST_MODEL_DIR.name or chosen is None:
        return "after the run's last step"
    if _unchanged(source, metrics):
        return ("the best probe by validation accuracy, which was the encoder the run started from: no later "
                "step probed better")
    return f"the best probe by validation accuracy, after {counted(chosen['step'], 'step')}"


def _classifier_encoder_code() -> list[str]:
    """The card's code for an encoder saved with its source's pooler and classifier: loaded as the classifier it is,
    so transformers reports no unexpected weights (`VJEPA2Model` would list every pooler and classifier tensor)."""
    return ["from transformers import VJEPA2ForVideoClassification",
            "",
            'model = VJEPA2ForVideoClassification.from_pretrained("OUT_DIR").eval()',
            "encoder = model.vjepa2  # the encoder alone; features: encoder(pixel_values_videos=...)"]


def pretraining_model_card(run_dir: Path, source: Path, model: str, data: str, metrics: dict[str, Any],
                           command: str | None, *, target_held: bool = False) -> str:
    """README.md for a pretraining run's export: what was pretrained on what, which encoder this is, what the probe
    measured, and how to load it. `target_held`: the run's EMA momentum was 1 throughout, so its target encoder,
    the one exported, is the one it started from."""
    config = json.loads((source / HF_CONFIG_FILE).read_text(encoding="utf-8"))
    classifier = "VJEPA2ForVideoClassification" in (config.get("architectures") or [])
    hub = hub_id(model)
    probes = metrics.get("probes") or []
    which = _which_encoder(source, metrics)
    front = ["---", "library_name: transformers",
             f"pipeline_tag: {'video-classification' if classifier else 'feature-extraction'}", "tags:",
             "  - vjepa2", "  - vjepa-tune", "  - self-supervised", "  - continued-pretraining"]
    if hub is not None:
        front.append(f"base_model: {hub}")
    front.append("---")
    lines = [
        *front,
        "",
        _card_title(model, data, source, metrics, target_held),
        "",
        f"Continued V-JEPA self-supervised pretraining with vjepa-tune from `{model}` on "
        + (f"{counted(metrics['num_videos'], 'unlabelled video')}, {counted(metrics['steps'], 'optimizer step')} of "
           f"{metrics['effective_batch']} clips" if metrics else "unlabelled videos (the run had not finished)")
        + ". The weights are the **target encoder** (V-JEPA's moving average of the trained encoder, the one V-JEPA "
        f"evaluates), {which}, with its predictor"
        + (" and the source's pooler and classifier, which pretraining does not train (fine-tune them for your "
           "classes)." if classifier else "."),
        "",
        "## Probe",
        "",
    ]
    if probes:
        lines += ["| step | validation acc (95% CI) | test acc (95% CI) |", "|---|---|---|"]
        lines += [f"| {p['step']} | {format_interval(p['val_acc'], p['val_ci'])} | "
                  f"{format_interval(p['test_acc'], p['test_ci'])} |" for p in probes]
        lines += ["", metrics.get("verdict", "")]
    else:
        lines.append("The run did not probe its encoder on labelled videos.")
    lines += [
        "",
        "## Use",
        "",
        "`OUT_DIR` stands for this folder.",
        "",
        "```python",
        *(_classifier_encoder_code() if classifier else [
            "from transformers import VJEPA2Model",
            "",
            'encoder = VJEPA2Model.from_pretrained("OUT_DIR").eval()  # features: encoder(pixel_values_videos=...)']),
        "```",
        "",
        "Fine-tune it for your classes: `vjepa-tune train --model OUT_DIR --strategy pooler_and_head "
        "--data.root YOUR_LABELLED_VIDEOS`.",
        "",
        "## How it was made",
        "",
        "```",
        f"vjepa-tune pretrain --config {Path(run_dir).resolve() / CONFIG_FILE}",
        command or f"vjepa-tune export {run_dir} OUT_DIR",
        "```",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items() if v) + ".",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ command
def build(p: ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="A finished run folder (made by train, compare or pretrain).")
    p.add_argument("out_dir", type=Path, help="Folder to write the exported model into.")
    p.add_argument(
        "--merge",
        type=bool,
        default=False,
        help="Fold LoRA into the weights: a plain transformers model (default for runs without LoRA).",
    )
    p.add_argument("--overwrite", type=bool, default=False, help="Replace OUT_DIR if it exists.")
    p.add_argument("--last", type=bool, default=False,
                   help="A pretraining run: export model/, the encoder after the last step, instead of best_model/ "
                        "(the best probe's).")


def run(args: Namespace) -> int:
    flags = "".join(f" --{name}" for name in ("merge", "overwrite", "last") if getattr(args, name))
    command = f"vjepa-tune export {args.run_dir} {args.out_dir}{flags}"
    result = export_run(args.run_dir, args.out_dir, merge=args.merge, overwrite=args.overwrite, last=args.last,
                        command=command)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(result.summary())
    return 0
