"""CPU smoke tests of the GPU benchmarks with tiny settings: a session with a GPU gets one short lease, so the
scripts it runs must already produce complete, self-consistent figures here (benchmarks/gpu_throughput.py,
benchmarks/gpu_end_to_end.py, benchmarks/run_on_gpu.sh)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str) -> types.ModuleType:
    """A benchmark script as a module (benchmarks/ is no package); registered so its dataclasses resolve."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: a second intra-op thread mostly waits (25x slower calls seen)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def throughput() -> types.ModuleType:
    return _load("gpu_throughput")


@pytest.fixture(scope="module")
def end_to_end(throughput: types.ModuleType) -> types.ModuleType:
    return _load("gpu_end_to_end")


# ------------------------------------------------------------------------------------------------ FLOP accounting
@pytest.mark.parametrize("arch", ["tiny", "vitl"])
def test_analytic_flops_equal_torch_flop_counter(throughput: types.ModuleType, arch: str) -> None:
    from vjepa_tune.models.loading import build_config

    config = build_config(arch, 4)
    analytic = throughput.clip_flops(config, 16)
    counted = throughput.counted_flops(config, 16)
    assert analytic.backbone == pytest.approx(counted["backbone"], rel=1e-9)
    assert analytic.pooler == pytest.approx(counted["pooler"], rel=1e-9)
    if arch == "vitl":
        assert analytic.tokens == 2048
        assert analytic.backbone == pytest.approx(throughput.REFERENCE_VITL_FLOP, rel=0.005)  # FACTS.md: 1.65 T


# ------------------------------------------------------------------------------------------------ throughput
@pytest.fixture(scope="module")
def throughput_run(throughput: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("throughput")
    code = throughput.main(["--model", "random:tiny", "--device", "cpu", "--quick", "--batch_sizes", "1,2",
                            "--train_batch", "1", "--warmup", "0", "--iters", "1",
                            "--out", str(out / "t.json"), "--markdown", str(out / "t.md")])
    assert code == 0
    return json.loads((out / "t.json").read_text()), (out / "t.md").read_text()


def test_throughput_measures_every_path_or_says_why_not(throughput_run: tuple[dict, str]) -> None:
    report, _ = throughput_run
    rows = {(r["name"], r["batch"]): r for r in report["results"]}
    for batch in (1, 2):
        assert rows[("extract sdpa", batch)]["status"] == "ok"
        assert rows[("extract fast", batch)]["status"] == "ok"
        assert rows[("pooler_and_head step, stored features", batch)]["status"] == "ok"
    for name in ("extract eager", "extract sdpa, bf16 weights",
                 "extract sdpa forced flash"):
        assert rows[(name, 2)]["status"] == "ok", rows[(name, 2)]["note"]
    for name in ("extract sdpa forced mem-efficient", "extract sdpa forced cudnn", "extract flash_attention_2",
                 "extract fast, forced flash", "extract fast, forced cudnn"):
        assert rows[(name, 2)]["status"] == "skipped" and rows[(name, 2)]["note"] == "CUDA only"
    for name in ("kernel: attention, sdpa default", "kernel: q/k/v product", "kernel: mlp fc2"):
        assert rows[(name, 2)]["status"] == "ok", rows[(name, 2)]["note"]
    guide = rows[("guide step: lora, fp32, backbone", 1)]
    assert guide["status"] == "ok" and guide["precision"] == "fp32"
    assert rows[("backbone_lora step", 1)]["status"] == "ok"
    assert rows[("backbone_lora step, checkpointing", 1)]["status"] == "ok"
    assert set(report["ceilings_tflops"]) == {"bf16", "fp32"} and min(report["ceilings_tflops"].values()) > 0
    assert report["environment"]["torch"] and report["environment"]["transformers"]


def test_throughput_figures_agree_with_each_other(throughput: types.ModuleType, throughput_run: tuple[dict, str]
                                                  ) -> None:
    report, text = throughput_run
    flops, ceilings = report["flops"], report["ceilings_tflops"]
    assert flops["backbone"] == pytest.approx(flops["counted_backbone"], rel=1e-9)
    ok = [r for r in report["results"] if r["status"] == "ok"]
    for r in ok:
        assert r["clips_per_s"] == pytest.approx(r["batch"] * 1e3 / r["ms_per_call"], rel=2e-3)
        assert r["tflops"] == pytest.approx(r["clips_per_s"] * r["flop_per_clip"] / 1e12, rel=2e-3)
        assert r["fraction_of_ceiling"] == pytest.approx(r["tflops"] / ceilings[r["precision"]], rel=2e-3)
        if r["group"] in throughput.EXTRACTION_GROUPS:
            assert r["flop_per_clip"] == flops["backbone"]
        assert f"| {r['name']} | {r['batch']} |" in text
    extraction = [r for r in ok if r["group"] in throughput.EXTRACTION_GROUPS]
    best = max(extraction, key=lambda r: r["fraction_of_ceiling"])
    assert (report["extraction_best"]["name"], report["extraction_best"]["batch"]) == (best["name"], best["batch"])
    assert "Fastest extraction:" in text


def test_a_failing_path_is_recorded_and_the_next_one_still_runs(throughput: types.ModuleType, tmp_path: Path
                                                                ) -> None:
    import torch

    settings = throughput.Settings(model="random:tiny", frames=16, batch_sizes=[1], train_batch=1, device="cpu",
                                   warmup=0, iters=2, compile_modes=[], only=list(throughput.GROUPS), budget_s=None)
    bench = throughput.Bench(settings, torch.device("cpu"), tmp_path / "r.json")
    bench.report["ceilings_tflops"] = {"fp32": 1.0}

    def broken() -> object:
        raise RuntimeError("no kernel for this shape\nsecond line")

    failed = bench.run(throughput.Measurement("broken", "attention", 1, "fp32", 1e9, "x"), lambda: broken)
    fine = bench.run(throughput.Measurement("fine", "attention", 1, "fp32", 1e9, "x"), lambda: lambda: time.sleep(0.01))
    assert failed.status == "failed" and failed.note == "RuntimeError: no kernel for this shape"
    assert fine.status == "ok" and fine.ms_per_call >= 10
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in saved["results"]] == ["failed", "ok"]

    bench.settings.budget_s = 0.0
    late = bench.run(throughput.Measurement("late", "attention", 1, "fp32", 1e9, "x"), lambda: lambda: None)
    assert late.status == "skipped" and "budget" in late.note


# ------------------------------------------------------------------------------------------------ end to end
def test_stage_clock_times_wrapped_calls_per_run_and_restores(end_to_end: types.ModuleType) -> None:
    def work(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    def run_point(point: object, cfg: types.SimpleNamespace) -> str:
        return owner.work(0.02)

    owner = types.SimpleNamespace(work=work, run_point=run_point)
    clock = end_to_end.StageClock()
    clock.wrap(owner, "work", "training")
    clock.label_runs(owner, "run_point", lambda point, cfg: cfg.run_name)
    finished: list[float] = []
    clock.after_run = lambda: finished.append(clock.by_run["lora"]["wall"])  # what keeps partial results
    assert owner.work(0.01) == "done"
    assert owner.run_point(None, types.SimpleNamespace(run_name="lora")) == "done"
    assert len(finished) == 1 and finished[0] >= 0.02
    assert clock.calls["training"] == 2 and clock.totals["training"] >= 0.03
    assert clock.by_run["lora"]["training"] >= 0.02 and clock.by_run["lora"]["wall"] >= clock.by_run["lora"]["training"]
    assert clock.by_run["(grid)"]["training"] >= 0.01
    clock.restore()
    assert owner.work is work and owner.run_point is run_point


def test_extrapolation_scales_training_and_evaluation_by_clip_counts(end_to_end: types.ModuleType) -> None:
    stages = {"extraction": 0.0, "training": 4.0, "evaluation": 2.0}
    sample = {"runs": {"lora": {"epochs": 1, "num_train": 8, "num_val": 2, "num_test": 2, "stages_s": stages}}}
    full_stages = {"extraction": 30.0, "training": 10.0, "evaluation": 5.0}
    full = {"wall_s": 100.0, "runs": {"lora": {"wall_s": 60.0, "num_train": 80, "num_val": 20, "num_test": 20,
                                               "stages_s": full_stages}}}
    estimate = end_to_end.extrapolate(full, sample, epochs=5)
    run = estimate["runs"]["lora"]
    assert run["s_per_training_clip"] == pytest.approx(0.5) and run["s_per_eval_clip"] == pytest.approx(0.5)
    assert run["training_s"] == pytest.approx(5 * 80 * 0.5)
    assert run["evaluation_s"] == pytest.approx((5 * 20 + 20) * 0.5)
    assert run["other_s"] == pytest.approx(60 - 30 - 10 - 5)
    assert estimate["grid_overhead_s"] == pytest.approx(40.0)
    assert estimate["wall_s"] == pytest.approx(40 + 15 + 200 + 60) and estimate["complete"]


@pytest.fixture(scope="module")
def end_to_end_run(end_to_end: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("e2e")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # main sets it for --device cpu; undone after the run
    try:
        code = end_to_end.main(["--model", "random:tiny", "--device", "cpu", "--strategies", "head_only,lora",
                                "--videos_per_class", "3", "--size", "64x64", "--video_frames", "16", "--epochs", "1",
                                "--synth_workers", "0", "--no_store_videos_per_class", "3", "--work", str(out / "work"),
                                "--extraction_sweep", "0:2,1:5", "--cache_batch_size", "3",
                                "--out", str(out / "e.json"), "--markdown", str(out / "e.md")])
    finally:
        monkeypatch.undo()
    assert code == 0
    return json.loads((out / "e.json").read_text()), (out / "e.md").read_text()


def test_end_to_end_times_every_stage_of_the_store_grid(end_to_end: types.ModuleType,
                                                        end_to_end_run: tuple[dict, str]) -> None:
    report, text = end_to_end_run
    assert report["synthesis"]["videos"] == 12
    store = report["store"]
    assert store["exit_code"] == 0 and set(store["runs"]) == {"head_only", "lora"}
    stages = store["stages_s"]
    top = sum(stages[name] for name in end_to_end.TOP_STAGES)
    assert top <= store["wall_s"] + 0.05
    assert stages["other"] == pytest.approx(store["wall_s"] - top, abs=0.05)
    assert stages["extraction"] == pytest.approx(
        stages["decode_wait"] + sum(stages[p] for p in end_to_end.EXTRACTION_PARTS), abs=0.05)
    for name in ("extraction", "backbone_forward", "training", "evaluation", "model_build"):
        assert stages[name] > 0, name
    run = store["runs"]["lora"]
    # One backbone pass per stored clip: every training view (one per epoch) and the eval view of val and test.
    assert store["backbone_clips"] == run["num_train"] * run["epochs"] + run["num_val"] + run["num_test"]
    # head_only runs first and fills the store; lora finds the backbone features there and runs no backbone.
    assert store["runs"]["head_only"]["stages_s"]["backbone_forward"] > 0
    assert run["stages_s"]["backbone_forward"] == 0 and run["stages_s"]["store_writes"] == 0
    assert store["runs"]["head_only"]["stages_s"]["store_writes"] > 0  # on the writer threads, still counted
    assert all(0 <= r["test_acc"] <= 1 and r["epochs"] == 1 for r in store["runs"].values())
    assert "Goal: under 180 s of wall time" in text and "| **wall time** |" in text


def test_end_to_end_sweeps_extraction_settings_after_the_grid(end_to_end_run: tuple[dict, str]) -> None:
    report, text = end_to_end_run
    store = report["store"]
    sweep = report["extraction_sweep"]
    assert [(row["num_workers"], row["cache_batch_size"]) for row in sweep] == [(0, 2), (1, 5)]
    for row in sweep:  # each in a fresh store: every clip the grid extracts, extracted again
        assert row["clips"] == store["backbone_clips"] and row["stages_s"]["extraction"] > 0
    assert "--cache.batch_size 3" in store["command"]
    assert store["backbone_calls"] == math.ceil(store["backbone_clips"] / 3)
    assert "Extraction alone" in text and "| 1 | 5 |" in text


def test_end_to_end_extrapolates_the_grid_without_the_store(end_to_end_run: tuple[dict, str]) -> None:
    report, text = end_to_end_run
    no_store = report["no_store"]
    assert no_store["mode"] == "extrapolate"
    assert no_store["sample"]["backbone_clips"] == 0  # --cache.enabled false: nothing extracted, nothing stored
    assert "--cache.enabled false" in no_store["sample"]["command"]
    estimate = no_store["estimate"]
    assert estimate["complete"] and set(estimate["runs"]) == {"head_only", "lora"}
    for run in estimate["runs"].values():
        assert run["s_per_training_clip"] > 0 and run["s_per_eval_clip"] > 0
        assert run["wall_s"] == pytest.approx(run["other_s"] + run["training_s"] + run["evaluation_s"], abs=0.3)
    assert math.isfinite(estimate["wall_s"]) and estimate["wall_s"] > 0
    assert "Without the store" in text


# ------------------------------------------------------------------------------------------------ shell scripts
@pytest.mark.parametrize("script", [BENCHMARKS / "run_on_gpu.sh", SCRIPTS / "fetch_gpu_wheels.sh"])
def test_shell_scripts_parse(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
