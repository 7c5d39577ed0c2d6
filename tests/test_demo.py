"""`vjepa-tune demo` end to end: the guide's four strategies on the bundled `tiny`, its table and its records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from vjepa_tune.compare import GUIDE_STRATEGIES


def test_demo_trains_the_four_guide_strategies_and_writes_the_guides_table(demo_result: Path) -> None:
    metrics = {m["approach"]: m for m in (json.loads(p.read_text()) for p in demo_result.glob("*/metrics.json"))}
    assert set(metrics) == set(GUIDE_STRATEGIES)
    for m in metrics.values():
        assert m["model"] == "tiny" and [h["epoch"] for h in m["history"]] == [1, 2, 3, 4, 5]
        assert m["effective_batch"] == 4, "the guide's batch 1 x 4 accumulation steps"
    assert metrics["head_only"]["trainable_params"] < metrics["lora"]["trainable_params"]
    assert metrics["lora"]["trainable_params"] < metrics["pooler_and_head"]["trainable_params"]
    assert metrics["pooler_and_head"]["trainable_params"] < metrics["pooler_head_and_lora"]["trainable_params"]

    report = (demo_result / "report.md").read_text()
    assert "| Approach | Test Acc | Val Acc | Trainable Params | % of Total | Training Time |" in report
    for name in GUIDE_STRATEGIES:
        assert name in report
    rows = list(csv.DictReader((demo_result.parent / "experiments.csv").open()))
    assert sorted(r["approach"] for r in rows) == sorted(GUIDE_STRATEGIES)
    assert (demo_result / "training_curves.png").exists() and (demo_result / "confusion_best.png").exists()



def test_the_demos_best_strategy_reaches_80_percent_on_the_four_actions(demo_result: Path) -> None:
    """Issue 4: with the demo's defaults (data seed 0) the best strategy reaches at least 0.80 test accuracy
    (chance 0.25); BENCHMARKS.md records every strategy for data seeds 0, 1 and 2."""
    accuracy = {p.parent.name: json.loads(p.read_text())["test_acc"] for p in demo_result.glob("*/metrics.json")}
    assert max(accuracy.values()) >= 0.80, accuracy
