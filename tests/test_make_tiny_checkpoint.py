"""scripts/make_tiny_checkpoint.py, the producer of the bundled `tiny`, runs end to end with tiny settings: every
loss it trains is finite and recorded, and what it saves loads as a V-JEPA 2 classifier."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_tiny_checkpoint.py"


@pytest.mark.parametrize("pose_weight", ["8", "0"])
def test_one_short_cycle_trains_every_target_and_saves_a_loadable_checkpoint(tmp_path: Path, pose_weight: str) -> None:
    from transformers import VJEPA2ForVideoClassification

    spec = importlib.util.spec_from_file_location("make_tiny_checkpoint", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, curve = tmp_path / "tiny", tmp_path / "curve"
    argv = ["--out", str(out), "--curve_dir", str(curve), "--steps", "2", "--batch_size", "2", "--warmup_steps", "1",
            "--heldout_per_class", "1", "--eval_every", "1", "--workers", "0", "--pose_weight", pose_weight]
    assert script.main(argv) == 0

    rows = list(csv.DictReader((curve / "training_curve.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2"]
    for name in ("train_loss", "train_part_loss", "train_motion_loss", "heldout_motion_loss"):
        assert all(math.isfinite(float(r[name])) for r in rows), name
    posed = [math.isfinite(float(r[name])) for r in rows for name in ("train_pose_loss", "heldout_pose_loss")]
    assert all(posed) if pose_weight != "0" else not any(posed), "0: the bundled recipe, without pose"
    assert json.loads((curve / "summary.json").read_text())["pose_weight"] == float(pose_weight)
    model = VJEPA2ForVideoClassification.from_pretrained(out)
    assert model.config.num_labels == 24 and (curve / "training_curve.png").exists()
