"""What `--model` can name, without loading anything: a hub id, a local Hugging Face folder, the bundled `tiny`
checkpoint, or `random:ARCH` for one of `ARCHITECTURES` with random weights. No torch: the command line and the
model card read these at start-up.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

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


def default_id2label(num_labels: int) -> dict[int, str]:
    """Placeholder class names where only a count is known (e.g. `info --num_labels 4`)."""
    return {i: f"class_{i}" for i in range(num_labels)}


def tiny_checkpoint_dir() -> Path:
    """Where the bundled `tiny` checkpoint lives inside the installed package."""
    return Path(str(importlib.resources.files("vjepa_tune") / "assets" / "tiny"))


def hub_id(spec: str) -> str | None:
    """The spec when it names a model on the hub (not tiny, random:*, or a local folder)."""
    if spec == TINY or spec.startswith(RANDOM_PREFIX) or Path(spec).expanduser().exists():
        return None
    return spec
