import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import VJEPA2Model

from vjepa_tune.errors import BadInput
from vjepa_tune.models import loading
from vjepa_tune.models.adapters import apply_strategy
from vjepa_tune.models.hub import connect_target, forget_hub_probes, hub_reachable
from vjepa_tune.models.loading import (
    ARCHITECTURES,
    build_config,
    check_crop_size,
    load_model,
    model_crop_size,
    tiny_checkpoint_dir,
)

SRC = Path(__file__).resolve().parents[2] / "src"
LABELS4 = {0: "sitting_down", 1: "standing_up", 2: "waving", 3: "other"}
LABELS3 = {0: "a", 1: "b", 2: "c"}


def tiny(labels: dict[int, str], seed: int = 0):
    torch.manual_seed(seed)
    return load_model("random:tiny", num_labels=len(labels), id2label=labels, log=lambda _: None)


def state_equal(a: torch.nn.Module, b: torch.nn.Module, prefix: str) -> bool:
    sa = {k: v for k, v in a.state_dict().items() if k.startswith(prefix)}
    sb = {k: v for k, v in b.state_dict().items() if k.startswith(prefix)}
    return sa.keys() == sb.keys() and len(sa) > 0 and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_tiny_has_the_architecture_labels_and_sdpa():
    model = tiny(LABELS4)
    config = model.config
    for field, value in ARCHITECTURES["tiny"].items():
        assert getattr(config, field) == value, field
    assert config.hidden_size <= 192 and config.num_hidden_layers <= 6
    assert config.id2label == LABELS4
    assert config.label2id == {"sitting_down": 0, "standing_up": 1, "waving": 2, "other": 3}
    assert config._attn_implementation == "sdpa"
    assert model.classifier.out_features == 4
    assert not model.training
    with torch.no_grad():
        logits = model(pixel_values_videos=torch.randn(1, 16, 3, 64, 64)).logits
    assert logits.shape == (1, 4)


def test_random_weights_come_from_the_global_rng():
    assert state_equal(tiny(LABELS4, seed=3), tiny(LABELS4, seed=3), "")
    assert not state_equal(tiny(LABELS4, seed=3), tiny(LABELS4, seed=4), "vjepa2.encoder.layer.0.attention")


def test_published_architectures():
    assert build_config("vitl", 4).to_dict()["hidden_size"] == 1024
    vith, vitg = build_config("vith", 4), build_config("vitg", 4)
    assert (vith.hidden_size, vith.num_hidden_layers, vith.num_attention_heads) == (1280, 32, 16)
    assert (vitg.hidden_size, vitg.num_hidden_layers, vitg.num_attention_heads) == (1408, 40, 22)
    assert vitg.mlp_ratio == pytest.approx(48 / 11)
    assert {build_config(a, 4).crop_size for a in ("vitl", "vith", "vitg")} == {256}
    assert build_config("vitg", 2).id2label == {0: "class_0", 1: "class_1"}


def test_unknown_architecture_is_bad_input():
    with pytest.raises(BadInput, match="random:vitx.*random:vitl"):
        load_model("random:vitx", num_labels=4, id2label=LABELS4)


def test_labels_must_cover_every_class():
    with pytest.raises(BadInput, match="id2label"):
        load_model("random:tiny", num_labels=4, id2label=LABELS3)


def test_meta_build_has_no_weight_memory():
    model = load_model("random:vitl", num_labels=4, id2label=LABELS4, meta=True)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert sum(p.numel() for p in model.parameters()) == 375_311_748


def test_local_directory_with_the_same_labels_loads_every_weight(tmp_path):
    saved = tiny(LABELS4)
    saved.save_pretrained(tmp_path / "ckpt")
    lines: list[str] = []
    loaded = load_model(str(tmp_path / "ckpt"), num_labels=4, id2label=LABELS4, log=lines.append)
    assert lines == []
    assert state_equal(saved, loaded, "")
    assert loaded.config._attn_implementation == "sdpa"
    assert loaded.dtype == torch.float32


def test_label_count_change_reinitialises_the_classifier(tmp_path):
    saved = tiny(LABELS3)
    saved.save_pretrained(tmp_path / "ckpt3")
    lines: list[str] = []
    loaded = load_model(str(tmp_path / "ckpt3"), num_labels=4, id2label=LABELS4, log=lines.append)
    assert lines == ["classifier re-initialised: checkpoint has 3 labels (ckpt3), data has 4."]
    assert loaded.classifier.weight.shape == (4, 128)
    assert loaded.config.id2label == LABELS4
    assert state_equal(saved, loaded, "vjepa2.") and state_equal(saved, loaded, "pooler.")


def test_same_label_count_with_other_names_reinitialises_the_classifier(tmp_path):
    saved = tiny(LABELS3)
    saved.save_pretrained(tmp_path / "ckpt")
    lines: list[str] = []
    other = {0: "x", 1: "y", 2: "z"}
    loaded = load_model(str(tmp_path / "ckpt"), num_labels=3, id2label=other, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("classifier re-initialised: checkpoint labels (a, b, c)")
    assert not torch.equal(loaded.classifier.weight, saved.classifier.weight)
    assert torch.equal(loaded.classifier.bias, torch.zeros(3))
    assert state_equal(saved, loaded, "pooler.")


def test_backbone_only_checkpoint_warns_that_the_pooler_is_random(tmp_path):
    torch.manual_seed(0)
    backbone = VJEPA2Model(build_config("tiny", 2))
    backbone.save_pretrained(tmp_path / "backbone")
    lines: list[str] = []
    loaded = load_model(str(tmp_path / "backbone"), num_labels=4, id2label=LABELS4, log=lines.append)
    assert any("no pooler weights" in line and "pooler starts from random weights" in line for line in lines)
    assert any(line.startswith("classifier starts from random weights") for line in lines)
    assert not any("re-initialised" in line for line in lines)
    assert torch.equal(
        loaded.vjepa2.encoder.layer[0].attention.query.weight,
        backbone.encoder.layer[0].attention.query.weight,
    )


def test_local_directory_on_meta_reads_only_the_config(tmp_path):
    tiny(LABELS3).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    model = load_model(str(tmp_path / "ckpt"), num_labels=4, id2label=LABELS4, meta=True)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert model.config.id2label == LABELS4 and model.config.hidden_size == 128


def test_loading_a_checkpoint_prints_no_progress_bar_and_leaves_transformers_settings_as_they_were(capfd):
    from transformers.utils import logging as hf_logging

    load_model("tiny", num_labels=4, id2label=LABELS4, log=lambda _: None)
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
    assert hf_logging.is_progress_bar_enabled()


def test_tiny_loads_from_the_bundled_folder(tmp_path, monkeypatch):
    saved = tiny(LABELS4)
    saved.save_pretrained(tmp_path / "tiny")
    monkeypatch.setattr(loading, "tiny_checkpoint_dir", lambda: tmp_path / "tiny")
    assert state_equal(saved, load_model("tiny", num_labels=4, id2label=LABELS4, log=print), "")


def test_missing_tiny_bundle_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "tiny_checkpoint_dir", lambda: tmp_path / "absent")
    with pytest.raises(BadInput, match="bundled tiny checkpoint is missing.*random:tiny"):
        load_model("tiny", num_labels=4, id2label=LABELS4)


@pytest.mark.skipif(
    not (tiny_checkpoint_dir() / "config.json").is_file(), reason="tiny checkpoint not bundled yet"
)
def test_bundled_tiny_checkpoint_has_the_tiny_architecture():
    config = json.loads((tiny_checkpoint_dir() / "config.json").read_text())
    assert {k: config[k] for k in ARCHITECTURES["tiny"]} == pytest.approx(ARCHITECTURES["tiny"])


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def no_hub(tmp_path, monkeypatch):
    """A hub that cannot be reached (its endpoint a closed local port) and an empty local Hugging Face cache."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    forget_hub_probes()
    yield
    forget_hub_probes()


def test_the_hub_probe_says_unreachable_at_once_for_a_closed_port_and_reachable_for_a_listening_one(no_hub):
    started = time.perf_counter()
    assert hub_reachable() is False
    assert time.perf_counter() - started < 1.0
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}") is True


def test_the_hub_probe_connects_to_the_proxy_unless_no_proxy_exempts_the_hub(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert connect_target("https://huggingface.co") == ("proxy.example", 3128)
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    assert connect_target("https://huggingface.co") == ("huggingface.co", 443)
    assert connect_target("http://127.0.0.1:8080") == ("127.0.0.1", 8080)


def test_a_hub_id_with_the_hub_unreachable_fails_at_once_saying_what_to_use_instead(no_hub):
    started = time.perf_counter()
    with pytest.raises(BadInput) as error:
        load_model("facebook/vjepa2-vitl-fpc16-256-ssv2", num_labels=4, id2label=LABELS4)
    assert time.perf_counter() - started < 5.0, "no half minute of retries"
    message = str(error.value)
    assert "--model facebook/vjepa2-vitl-fpc16-256-ssv2 is a Hugging Face hub id" in message
    assert "cannot be reached" in message and "not in the local Hugging Face cache" in message
    assert "local folder" in message and "--model tiny" in message and "--model random:vitl" in message


def test_a_hub_id_with_HF_HUB_OFFLINE_fails_train_at_once_and_leaves_nothing(
    no_hub, synth_root, tmp_path, monkeypatch, capsys
):
    from vjepa_tune.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    code = main(["train", "--model", "facebook/vjepa2-vitl-fpc16-256-ssv2", "--data.root", str(synth_root),
                 "--out", str(tmp_path / "runs")])
    assert time.perf_counter() - started < 5.0
    err = capsys.readouterr().err
    assert code == 2 and "HF_HUB_OFFLINE is set" in err and "--model tiny" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


_LOAD_FROM_CACHE = """
import sys
from vjepa_tune.models.loading import load_model

said = []
model = load_model("someone/tiny-copy", num_labels=2, id2label={0: "a", 1: "b"}, log=said.append)
print(type(model).__name__, "|".join(said))
"""


@pytest.mark.parametrize("why", ["offline", "unreachable"])
def test_a_hub_model_in_the_local_cache_still_loads_without_the_hub(tmp_path, why):
    snapshot = tmp_path / "hub" / "models--someone--tiny-copy" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((tiny_checkpoint_dir() / name).read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SRC), "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HOME": str(tmp_path / "home"), "OMP_WAIT_POLICY": "PASSIVE"}
    env |= {"HF_HUB_OFFLINE": "1"} if why == "offline" else {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    done = subprocess.run([sys.executable, "-c", _LOAD_FROM_CACHE], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("VJEPA2ForVideoClassification ")
    assert "loading someone/tiny-copy from the local Hugging Face cache" in done.stdout


def test_folder_without_config_is_bad_input(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(BadInput, match="config.json"):
        load_model(str(tmp_path / "weights"), num_labels=4, id2label=LABELS4)
    with pytest.raises(BadInput, match="no such directory"):
        load_model(str(tmp_path / "nowhere"), num_labels=4, id2label=LABELS4)


def test_non_vjepa2_checkpoint_is_bad_input(tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadInput, match="model_type 'bert'"):
        load_model(str(tmp_path / "bert"), num_labels=4, id2label=LABELS4)


def test_crop_size_is_the_models_and_nothing_else():
    model = tiny(LABELS4)
    assert model_crop_size(model) == 64
    assert check_crop_size(model, None) == 64
    assert check_crop_size(model.config, 64) == 64
    assert check_crop_size(build_config("vitl", 4), None) == 256
    wrapped = apply_strategy(model, "lora")
    assert model_crop_size(wrapped) == 64
    with pytest.raises(BadInput, match="--data.crop_size 224 differs from the model's crop size 64"):
        check_crop_size(wrapped, 224)


def test_a_model_loaded_as_it_is_keeps_its_labels_and_says_which_parts_its_checkpoint_lacked(tmp_path):
    from vjepa_tune.models.loading import load_model_as_is

    torch.manual_seed(0)
    VJEPA2Model(build_config("tiny", 2)).save_pretrained(tmp_path / "backbone")
    model, lacking = load_model_as_is(str(tmp_path / "backbone"), log=lambda _: None)
    assert lacking == {"pooler", "classifier"}
    classifier = tiny(LABELS3)
    state = {k: v for k, v in classifier.state_dict().items() if not k.startswith("vjepa2.predictor.")}
    classifier.save_pretrained(tmp_path / "classifier", state_dict=state)
    model, lacking = load_model_as_is(str(tmp_path / "classifier"), log=lambda _: None)
    assert lacking == {"predictor"} and model.config.id2label == classifier.config.id2label
    assert torch.equal(model.classifier.weight, classifier.classifier.weight)
    whole, lacking = load_model_as_is("tiny", log=lambda _: None)
    assert lacking == frozenset() and len(whole.config.id2label) == 24, "tiny's own pretext classes"
    assert load_model_as_is("random:tiny", log=lambda _: None)[1] == frozenset()
