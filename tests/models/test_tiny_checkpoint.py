"""The bundled `tiny` checkpoint: present, small, loadable offline by plain transformers, and trained."""

import huggingface_hub.constants
import pytest
import torch
from safetensors import safe_open
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.models.loading import ARCHITECTURES, build_config, load_model, tiny_checkpoint_dir
from vjepa_tune.synth.pretext import PRETEXT_ID2LABEL, heldout_example

TINY = tiny_checkpoint_dir()
DEMO_LABELS = {0: "sitting_down", 1: "standing_up", 2: "waving", 3: "other"}


@pytest.fixture(scope="module")
def offline_load():
    """The checkpoint as plain transformers loads it, with the hub out of reach."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        model, info = VJEPA2ForVideoClassification.from_pretrained(str(TINY), output_loading_info=True)
    return model.eval(), info


def test_bundled_files_exist_and_fit_in_20_mb():
    sizes = {path.name: path.stat().st_size for path in TINY.iterdir() if path.is_file()}
    assert {"config.json", "model.safetensors"} <= set(sizes)
    assert sum(sizes.values()) <= 20_000_000


def test_plain_transformers_loads_every_weight_into_the_tiny_architecture(offline_load):
    model, info = offline_load
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for field, value in ARCHITECTURES["tiny"].items():
        assert getattr(model.config, field) == pytest.approx(value), field
    with torch.device("meta"):
        reference = VJEPA2ForVideoClassification(
            build_config("tiny", len(PRETEXT_ID2LABEL), PRETEXT_ID2LABEL)
        )
    expected = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    assert {name: tuple(t.shape) for name, t in model.state_dict().items()} == expected
    assert {int(k): v for k, v in model.config.id2label.items()} == PRETEXT_ID2LABEL


def test_weights_are_stored_in_bfloat16_and_load_as_float32(offline_load):
    model, _ = offline_load
    state = model.state_dict()
    with safe_open(str(TINY / "model.safetensors"), "pt") as stored:
        names = list(stored.keys())
        assert names and all(stored.get_slice(name).get_dtype() == "BF16" for name in names)
        for name in ("vjepa2.encoder.layer.0.attention.query.weight", "classifier.weight"):
            assert torch.equal(state[name], stored.get_tensor(name).float())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_video_gives_finite_logits_over_the_pretext_classes(offline_load):
    model, _ = offline_load
    with torch.no_grad():
        logits = model(pixel_values_videos=torch.randn(1, 16, 3, 64, 64)).logits
    assert logits.shape == (1, len(PRETEXT_ID2LABEL)) and torch.isfinite(logits).all()


def test_the_weights_are_pretrained_on_the_pretext_task(offline_load):
    """Well above chance (1 in 24) on held-out pretext clips: the shipped file is the trained model (0.36 over 192
    full-variety clips when bundled; a random model scores about 0.04)."""
    model, _ = offline_load
    examples = [heldout_example(0, i) for i in range(2 * len(PRETEXT_ID2LABEL))]
    clips = torch.stack([e.clip for e in examples])
    labels = torch.tensor([e.label for e in examples])
    with torch.no_grad():
        accuracy = (model(pixel_values_videos=clips).logits.argmax(-1) == labels).float().mean().item()
    assert accuracy >= 0.2


def test_load_model_tiny_keeps_the_backbone_and_gives_the_demo_a_fresh_head(offline_load):
    pretrained, _ = offline_load
    messages: list[str] = []
    model = load_model("tiny", num_labels=4, id2label=DEMO_LABELS, log=messages.append)
    assert model.classifier.out_features == 4 and model.config.id2label == DEMO_LABELS
    assert any("classifier re-initialised" in m for m in messages)
    ours, theirs = model.state_dict(), pretrained.state_dict()
    for name in theirs:
        if name.startswith(("vjepa2.encoder.", "pooler.")):
            assert torch.equal(ours[name], theirs[name]), name
