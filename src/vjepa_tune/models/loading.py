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
import importlib.resources
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from transformers import VJEPA2Config, VJEPA2ForVideoClassification
from transformers.utils import logging as hf_logging

from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted

ARCHITECTURES: dict[str, dict] = {
    # The default VJEPA2Config(): the ViT-L of facebook/vjepa2-vitl-fpc16-256-ssv2 and vjepa2-vitl-fpc64-256.
    "vitl": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        mlp_ratio=4.0,
        patch_size=16,
        tubelet_size=2,
        crop_size=256,
        frames_per_clip=64,
        num_pooler_layers=3,
        pred_hidden_size=384,
        pred_num_attention_heads=12,
        pred_num_hidden_layers=12,
        pred_num_mask_tokens=10,
    ),
    # facebook/vjepa2-vith-fpc64-256.
    "vith": dict(
        hidden_size=1280,
        num_hidden_layers=32,
        num_attention_heads=16,
        mlp_ratio=4.0,
        patch_size=16,
        tubelet_size=2,
        crop_size=256,
        frames_per_clip=64,
        num_pooler_layers=3,
        pred_hidden_size=384,
        pred_num_attention_heads=12,
        pred_num_hidden_layers=12,
        pred_num_mask_tokens=10,
    ),
    # facebook/vjepa2-vitg-fpc64-256 (the 384 px variant differs only in crop_size).
    "vitg": dict(
        hidden_size=1408,
        num_hidden_layers=40,
        num_attention_heads=22,
        mlp_ratio=48 / 11,
        patch_size=16,
        tubelet_size=2,
        crop_size=256,
        frames_per_clip=64,
        num_pooler_layers=3,
        pred_hidden_size=384,
        pred_num_attention_heads=12,
        pred_num_hidden_layers=12,
        pred_num_mask_tokens=10,
    ),
    # A small V-JEPA 2 for tests and the demo; the bundled `tiny` checkpoint has exactly this shape.
    # Its pooler keeps three self-attention layers, so LoRA targets the same 15 modules as on ViT-L.
    "tiny": dict(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        mlp_ratio=4.0,
        patch_size=16,
        tubelet_size=2,
        crop_size=64,
        frames_per_clip=16,
        num_pooler_layers=3,
        pred_hidden_size=32,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
        pred_num_mask_tokens=1,
    ),
}

RANDOM_PREFIX = "random:"
TINY = "tiny"
TINY_SMALL_DATA_NOTE = (
    "note: `tiny` is a 1.8 M-parameter V-JEPA 2 pretrained on an easy synthetic task that shares no class with "
    "yours (docs/tiny_model.md). It learns the demo's four actions from `vjepa-tune synth --variety 0` videos "
    "(40 per class, 64 px, 32 frames) in the default 5 epochs with --data.crop_scale 1,1, as `vjepa-tune demo` "
    "does; on synth's default --variety 1, or in one or two epochs, it stays at chance accuracy. It is for trying "
    "the tool; real footage needs a real model (the default ViT-L)."
)
"""What `tiny` can learn, and with which settings (the demo's, see demo.py)."""


def small_data_note(model: str, val_acc: float, test_acc: float, num_classes: int) -> str | None:
    """`TINY_SMALL_DATA_NOTE` for a `tiny` run whose validation and test accuracy both stayed near chance (within a
    third of the way from chance to 1: under 0.5 for four classes), where a user needs it; None otherwise."""
    chance = 1 / max(1, num_classes)
    if model == TINY and max(val_acc, test_acc) < chance + (1 - chance) / 3:
        return TINY_SMALL_DATA_NOTE
    return None
ATTN_IMPLEMENTATION = "sdpa"


def default_id2label(num_labels: int) -> dict[int, str]:
    """Placeholder class names where only a count is known (e.g. `info --num_labels 4`)."""
    return {i: f"class_{i}" for i in range(num_labels)}


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


def tiny_checkpoint_dir() -> Path:
    """Where the bundled `tiny` checkpoint lives inside the installed package."""
    return Path(str(importlib.resources.files("vjepa_tune") / "assets" / "tiny"))


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own load report; `load_model` states what matters in one line each."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


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


def _is_hub_id(source: str) -> bool:
    """What `_resolve_source` gave names a model on the hub, not a folder here."""
    return not Path(source).expanduser().exists()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _hub_failure(spec: str, error: Exception) -> BadInput:
    return BadInput(
        f"--model {spec}: could not load it from the Hugging Face hub (the hub could not be "
        f"reached, or it has no such model: {_first_line(error)}). {_LOCAL_CHOICES.format(spec=spec)}"
    )


_LOCAL_CHOICES = (
    "Use a model on this machine instead: a local folder in Hugging Face format (download it where the hub is "
    "reachable with `hf download {spec} --local-dir DIR`, copy DIR here and pass --model DIR), --model tiny (the "
    "small V-JEPA 2 bundled with vjepa-tune, for trying the tool) or --model random:vitl (the architecture with "
    "random weights, for testing)."
)

HUB_PROBE_TIMEOUT_S = 3.0
"""How long the reachability probe waits for a connection to the hub (or its proxy) before calling it unreachable."""

_PROBE_REUSE_S = 60.0
_probed: dict[tuple[str, int], tuple[float, bool]] = {}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or when huggingface_hub was imported."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hub_endpoint() -> str:
    """The hub's address: HF_ENDPOINT when set, else huggingface_hub's (https://huggingface.co)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _connect_target(endpoint: str) -> tuple[str, int]:
    """Where a request to `endpoint` first connects: its proxy (HTTPS_PROXY and the like, unless NO_PROXY
    exempts the host), else the endpoint itself."""
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_url.hostname:
            return proxy_url.hostname, proxy_url.port or (443 if proxy_url.scheme == "https" else 80)
    return host, port


def hub_reachable(endpoint: str | None = None, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a connection to the hub (or the proxy that reaches it) opens within `timeout_s`.

    A short TCP connect, not a request: it costs milliseconds when the network is up and at most `timeout_s` when
    it is not (a name lookup that hangs is given up on too), where huggingface_hub's own retries take half a
    minute. The answer is reused for a minute, so a model's config and weights cost one probe.
    """
    host, port = _connect_target(endpoint or hub_endpoint())
    if not host:
        return False
    now = time.monotonic()
    cached = _probed.get((host, port))
    if cached is not None and now - cached[0] < _PROBE_REUSE_S:
        return cached[1]
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    probe = threading.Thread(target=connect, name="hub-probe", daemon=True)
    probe.start()
    probe.join(timeout_s)
    reachable = bool(outcome) and outcome[0]
    _probed[(host, port)] = (now, reachable)
    return reachable


def _cached_locally(repo_id: str) -> bool:
    """The repo's config.json is in the local Hugging Face cache (a model downloaded before)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def _hub_local_only(spec: str, log: Callable[[str], None]) -> bool:
    """For a hub id: True to load from the local cache only (the hub cannot be reached, and the model is cached);
    False to load from the hub. Raises at once, without huggingface_hub's half minute of retries, when the hub
    cannot be reached and the model is not cached."""
    if hub_offline():
        why = "HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        why = f"the hub ({hub_endpoint()}) cannot be reached from here"
    else:
        return False
    if _cached_locally(spec):
        log(f"{why}: loading {spec} from the local Hugging Face cache.")
        return True
    raise BadInput(
        f"--model {spec} is a Hugging Face hub id, but {why} and the model is not in the local Hugging Face "
        f"cache. {_LOCAL_CHOICES.format(spec=spec)}"
    )


def _read_checkpoint_config(source: str, spec: str, local_only: bool = False) -> VJEPA2Config:
    try:
        config_dict, _ = VJEPA2Config.get_config_dict(source, local_files_only=local_only)
    except OSError as error:
        if Path(source).is_dir():
            message = f"--model {spec}: could not read {source}/config.json: {_first_line(error)}"
            raise BadInput(message) from error
        raise _hub_failure(spec, error) from error
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
    local_only = _is_hub_id(source) and _hub_local_only(spec, log)
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
    local_only = _is_hub_id(source) and _hub_local_only(spec, log)
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
        raise _hub_failure(spec, error) from error
    _report_loading(model, info, checkpoint_labels, labels, name, log)
    return model.to(device).eval()


def _config_of(model_or_config: torch.nn.Module | VJEPA2Config) -> VJEPA2Config:
    if isinstance(model_or_config, VJEPA2Config):
        return model_or_config
    from vjepa_tune.models.strategies import unwrap

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
