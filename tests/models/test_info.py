import pytest
import torch

from vjepa_tune.config import LoraConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import apply_strategy
from vjepa_tune.models.info import count_parameters, format_info, format_pct, format_strategies, model_info
from vjepa_tune.models.loading import load_model

# FACTS.md, "Parameter counts with 4 labels" (ViT-L); backbone_lora adds encoder LoRA (96 modules at
# r=16: 3,145,728).
VITL_TABLE = {
    "head_only": (4_100, 375_311_748, "0.001"),
    "pooler_and_head": (49_340_420, 375_311_748, "13.15"),
    "lora": (495_620, 375_803_268, "0.13"),
    "pooler_head_and_lora": (49_831_940, 375_803_268, "13.26"),
    "backbone_lora": (495_620 + 3_145_728, 375_803_268 + 3_145_728, "0.96"),
}


@pytest.fixture(scope="module")
def vitl_infos() -> dict[str, dict]:
    return {
        s: model_info("random:vitl", s, 4, LoraConfig(rank=16, alpha=32, dropout=0.1)) for s in VITL_TABLE
    }


@pytest.mark.parametrize("strategy", list(VITL_TABLE))
def test_vitl_counts_equal_the_reference_table(vitl_infos, strategy):
    info = vitl_infos[strategy]
    trainable, total, pct = VITL_TABLE[strategy]
    assert (info["trainable_params"], info["total_params"]) == (trainable, total)
    assert format_pct(info["trainable_pct"]) == pct
    assert info["trainable_pct"] == pytest.approx(100 * trainable / total)


def test_vitl_counts_by_part(vitl_infos):
    totals = {part: c["total"] for part, c in vitl_infos["lora"]["by_part"].items()}
    assert totals == {"backbone": 325_971_328, "pooler": 49_336_320, "classifier": 4_100, "adapters": 491_520}
    assert vitl_infos["backbone_lora"]["by_part"]["adapters"] == {"trainable": 3_637_248, "total": 3_637_248}
    assert vitl_infos["pooler_and_head"]["by_part"]["pooler"] == {
        "trainable": 49_336_320,
        "total": 49_336_320,
    }
    assert vitl_infos["head_only"]["by_part"]["backbone"] == {"trainable": 0, "total": 325_971_328}


def test_lora_rank_sets_the_adapter_size():
    info = model_info("random:vitl", "lora", 4, LoraConfig(rank=8))
    assert info["by_part"]["adapters"]["total"] == 491_520 // 2
    assert info["lora"]["rank"] == 8


def test_label_count_sets_the_classifier_size():
    assert model_info("random:vitl", "head_only", 101, LoraConfig())["trainable_params"] == 1024 * 101 + 101


def test_peft_copy_of_the_classifier_is_counted_once():
    torch.manual_seed(0)
    plain = load_model("random:tiny", num_labels=4, id2label=None)
    plain_total = sum(p.numel() for p in plain.parameters())
    wrapped = apply_strategy(plain, "lora", LoraConfig())
    counts = count_parameters(wrapped)
    adapters = 15 * 16 * (128 + 128)
    assert counts.total == plain_total + adapters
    assert sum(p.numel() for p in wrapped.parameters()) == plain_total + adapters + 516  # what peft holds
    assert counts.by_part["classifier"] == (516, 516)


def test_format_info_reads_as_a_table(vitl_infos):
    text = format_info(vitl_infos["lora"])
    assert "random:vitl: hidden 1024, 24 layers, 16 heads" in text
    assert "rank 16, alpha 32, dropout 0.1" in text
    assert "495,620" in text and "375,803,268" in text and "(0.13% trainable)" in text
    assert "adapters" in text and "491,520" in text
    assert "LoRA" not in format_info(vitl_infos["head_only"])


def test_format_strategies_lists_one_row_each(vitl_infos):
    lines = format_strategies(list(vitl_infos.values())).splitlines()
    assert len(lines) == 1 + len(VITL_TABLE)
    assert lines[2].split() == ["pooler_and_head", "49,340,420", "375,311,748", "13.15"]


def test_unknown_strategy_is_bad_input():
    with pytest.raises(BadInput, match="--strategy 'everything'"):
        model_info("random:tiny", "everything", 4, LoraConfig())
