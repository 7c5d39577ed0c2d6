"""Make a `VJEPA2ForVideoClassification` from any model spec, with the data's labels.

One entry point (`load_model`) for every kind of `--model`: a hub id, a local Hugging Face
directory, the bundled `tiny` checkpoint, or `random:ARCH`. The classification head always gets the
data's labels; whatever the checkpoint could not supply (a head for other labels, a pooler missing
from a backbone-only checkpoint) starts from random weights and the caller is told so through `log`,
since it changes what a strategy such as head_only can learn.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from transformers import VJEPA2Config, VJEPA2ForVideoClassification
from transformers.utils import logging as hf_logging

from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import unwrap
from vjepa_tune.models.hub import cache_only, first_line, hub_failure, is_hub_id
from vjepa_tune.models.specs import ARCHITECTURES, RANDOM_PREFIX, TINY, default_id2label, tiny_checkpoint_dir
from vjepa_tune.text import counted

ATTN_IMPLEMENTATION = "sdpa"


def _labels(num_labels: int, id2label: dict[int, str] | None) -> dict[int, str]:
    if num_labels < 1:
        raise BadInput(f"--num_labels must be >= 1, got {num_labels!r}.")
    if id2label is None:
        return default_id2label(num_labels)
    labels = {int(k): str(v) for k, v in id2label.items()}
    if sorted(labels) != list(range(num_labels)):
        raise BadInput(
            f"id2label must name classes 0..{num_labels - 1} exactly once, got ids {sorted(labels)} "
            f"for num_labels={num_labels}."
        )
    return labels


def _set_labels(config: VJEPA2Config, id2label: dict[int, str]) -> None:
    config.id2label = dict(id2label)
    config.label2id = {name: i for i, name in id2label.items()}


def build_config(arch: str, num_labels: int, id2label: dict[int, str] | None = None) -> VJEPA2Config:
    """The VJEPA2Config of a named architecture with the data's labels."""
    if arch not in ARCHITECTURES:
        raise BadInput(
            f"unknown architecture {arch!r} in --model random:{arch}; choose one of "
            f"{', '.join(RANDOM_PREFIX + a for a in ARCHITECTURES)}."
        )
    config = VJEPA2Config(**ARCHITECTURES[arch], attn_implementation=ATTN_IMPLEMENTATION)
    _set_labels(config, _labels(num_labels, id2label))
    return config


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own load report and its "Loading weights" progress bar (a second of a small model's
    load, printed by every command that loads one); `load_model` states what matters in one line each."""
    previous = hf_logging.get_verbosity()
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bar_was_on:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' reports and its progress bars (saving a small model draws one per shard)."""
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with _quiet_transformers():
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _resolve_source(spec: str) -> tuple[str, str]:
    """(what from_pretrained gets, a short name for messages) for a non-random spec."""
    if spec == TINY:
        folder = tiny_checkpoint_dir()
        if not (folder / "config.json").is_file():
            raise BadInput(
                f"--model tiny: the bundled tiny checkpoint is missing from this installation (expected "
                f"config.json and model.safetensors in {folder}). Reinstall vjepa-tune, or use "
                "--model random:tiny for the same architecture with random weights."
            )
        return str(folder), TINY
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise BadInput(
                f"--model {spec}: {path} is not a Hugging Face model directory (it needs a "
                "config.json next to the weights, as written by save_pretrained or "
                "`vjepa-tune export --merge`)."
            )
        return str(path), path.resolve().name
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise BadInput(f"--model {spec}: no such directory.")
    return spec, spec


def _read_checkpoint_config(source: str, spec: str, local_only: bool = False) -> VJEPA2Config:
    try:
        config_dict, _ = VJEPA2Config.get_config_dict(source, local_files_only=local_only)
    except OSError as error:
        if Path(source).is_dir():
            message = f"--model {spec}: could not read {source}/config.json: {first_line(error)}"
            raise BadInput(message) from error
        raise hub_failure(spec, error) from error
    model_type = config_dict.get("model_type")
    if model_type != "vjepa2":
        raise BadInput(
            f"--model {spec}: its config.json has model_type {model_type!r}, not 'vjepa2'; vjepa-tune "
            "fine-tunes V-JEPA 2 models only."
        )
    with _quiet_transformers():
        return VJEPA2Config.from_pretrained(source, local_files_only=local_only)


def model_config(spec: str, log: Callable[[str], None] = lambda _: None) -> VJEPA2Config:
    """The configuration `spec` names, read without its weights: what a run checks before it starts (a model
    that cannot be loaded, its crop size)."""
    if spec.startswith(RANDOM_PREFIX):
        return build_config(spec[len(RANDOM_PREFIX) :], 1)
    source, _ = _resolve_source(spec)
    local_only = is_hub_id(source) and cache_only(spec, log)
    return _read_checkpoint_config(source, spec, local_only)


def _preview(id2label: dict[int, str], count: int = 3) -> str:
    names = [id2label[i] for i in sorted(id2label)]
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _reinit_classifier(model: VJEPA2ForVideoClassification) -> None:
    """Initialise the head as VJEPA2PreTrainedModel._init_weights does for a fresh model."""
    with torch.no_grad():
        torch.nn.init.trunc_normal_(model.classifier.weight, std=model.config.initializer_range)
        torch.nn.init.zeros_(model.classifier.bias)


def _report_loading(
    model: VJEPA2ForVideoClassification,
    info: dict,
    checkpoint_labels: dict[int, str],
    labels: dict[int, str],
    name: str,
    log: Callable[[str], None],
) -> None:
    missing = set(info.get("missing_keys", ()))
    mismatched = {key for key, *_ in info.get("mismatched_keys", ())}
    missing_backbone = sorted(k for k in missing if k.startswith("vjepa2.encoder."))
    if missing_backbone:
        raise BadInput(
            f"--model {name}: the checkpoint lacks {len(missing_backbone)} encoder weights (e.g. "
            f"{missing_backbone[0]}); it is not a V-JEPA 2 checkpoint this architecture can load."
        )
    if any(k.startswith("pooler.") for k in missing):
        log(
            f"warning: {name} is a backbone-only checkpoint (no pooler weights): the attentive pooler starts "
            "from random weights, so head_only would train a linear layer on a random pooler; prefer "
            "pooler_and_head, lora or pooler_head_and_lora."
        )
    if "classifier.weight" in missing:
        log(f"classifier starts from random weights: {name} has no classification head.")
        return
    if checkpoint_labels == labels:
        return
    if "classifier.weight" not in mismatched:
        _reinit_classifier(model)
    if len(checkpoint_labels) != len(labels):
        log(
            f"classifier re-initialised: checkpoint has {counted(len(checkpoint_labels), 'label')} ({name}), "
            f"data has {len(labels)}."
        )
    else:
        log(
            f"classifier re-initialised: checkpoint labels ({_preview(checkpoint_labels)}) of {name} differ "
            f"from the data's ({_preview(labels)})."
        )


def load_model(
    spec: str,
    *,
    num_labels: int,
    id2label: dict[int, str] | None,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
    meta: bool = False,
) -> VJEPA2ForVideoClassification:
    """A V-JEPA 2 classifier for `num_labels` classes, in eval mode, in float32.

    `random:ARCH` draws weights from torch's global RNG (the caller seeds it). `meta=True` builds
    every spec on the meta device from its config alone (no weights read, no memory used), for
    counting parameters.
    """
    labels = _labels(num_labels, id2label)
    if spec.startswith(RANDOM_PREFIX):
        config = build_config(spec[len(RANDOM_PREFIX) :], num_labels, labels)
        if meta:
            with torch.device("meta"):
                return VJEPA2ForVideoClassification(config).eval()
        return VJEPA2ForVideoClassification(config).to(device).eval()

    source, name = _resolve_source(spec)
    local_only = is_hub_id(source) and cache_only(spec, log)
    checkpoint_config = _read_checkpoint_config(source, spec, local_only)
    checkpoint_labels = {int(k): v for k, v in (checkpoint_config.id2label or {}).items()}
    config = copy.deepcopy(checkpoint_config)
    config._attn_implementation = ATTN_IMPLEMENTATION
    _set_labels(config, labels)
    if meta:
        with torch.device("meta"):
            return VJEPA2ForVideoClassification(config).eval()
    try:
        with _quiet_transformers():
            model, info = VJEPA2ForVideoClassification.from_pretrained(
                source,
                config=config,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                attn_implementation=ATTN_IMPLEMENTATION,
                dtype=torch.float32,
                local_files_only=local_only,
            )
    except OSError as error:
        if Path(source).is_dir():
            raise BadInput(f"--model {spec}: could not read the weights in {source}: {error}") from error
        raise hub_failure(spec, error) from error
    _report_loading(model, info, checkpoint_labels, labels, name, log)
    return model.to(device).eval()


CHECKPOINT_PARTS = ("predictor", "pooler", "classifier")
"""The parts of a V-JEPA 2 checkpoint besides its encoder, which a checkpoint may lack (a classifier checkpoint has
no predictor; a backbone checkpoint has neither pooler nor classifier)."""


def load_model_as_is(spec: str, *, log: Callable[[str], None] = print
                     ) -> tuple[VJEPA2ForVideoClassification, frozenset[str]]:
    """The model `spec` names as its checkpoint has it (its own labels, its predictor), in float32 and eval mode, and
    which of `CHECKPOINT_PARTS` the checkpoint lacked (transformers drew them from the global generator: the caller
    seeds it). A `random:ARCH` model has every part (all random, one label). What continued pretraining starts from.
    """
    if spec.startswith(RANDOM_PREFIX):
        return VJEPA2ForVideoClassification(build_config(spec[len(RANDOM_PREFIX) :], 1)).eval(), frozenset()
    source, name = _resolve_source(spec)
    local_only = is_hub_id(source) and cache_only(spec, log)
    config = _read_checkpoint_config(source, spec, local_only)
    config._attn_implementation = ATTN_IMPLEMENTATION
    try:
        with _quiet_transformers():
            model, info = VJEPA2ForVideoClassification.from_pretrained(
                source, config=config, output_loading_info=True, attn_implementation=ATTN_IMPLEMENTATION,
                dtype=torch.float32, local_files_only=local_only,
            )
    except OSError as error:
        if Path(source).is_dir():
            raise BadInput(f"--model {spec}: could not read the weights in {source}: {error}") from error
        raise hub_failure(spec, error) from error
    missing = set(info.get("missing_keys", ()))
    missing_backbone = sorted(k for k in missing if k.startswith("vjepa2.encoder."))
    if missing_backbone:
        raise BadInput(
            f"--model {name}: the checkpoint lacks {len(missing_backbone)} encoder weights (e.g. "
            f"{missing_backbone[0]}); it is not a V-JEPA 2 checkpoint this architecture can load."
        )
    prefixes = {"predictor": "vjepa2.predictor.", "pooler": "pooler.", "classifier": "classifier."}
    lacking = frozenset(part for part, prefix in prefixes.items() if any(k.startswith(prefix) for k in missing))
    return model.eval(), lacking


def _config_of(model_or_config: torch.nn.Module | VJEPA2Config) -> VJEPA2Config:
    if isinstance(model_or_config, VJEPA2Config):
        return model_or_config
    return unwrap(model_or_config).config


def model_crop_size(model: torch.nn.Module | VJEPA2Config) -> int:
    """The frame size (pixels, square) the model's position grid was built for."""
    return int(_config_of(model).crop_size)


def check_crop_size(model_or_config: torch.nn.Module | VJEPA2Config, requested: int | None) -> int:
    """The crop size to use: the model's, refusing any other request (positions would be silently wrong)."""
    crop = model_crop_size(model_or_config)
    if requested is not None and int(requested) != crop:
        raise BadInput(
            f"--data.crop_size {requested} differs from the model's crop size {crop}; the model's "
            f"position grid is fixed by it. Leave --data.crop_size unset (it defaults to {crop})."
        )
    return crop
