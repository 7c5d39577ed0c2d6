"""CPU smoke tests of the GPU benchmarks with tiny settings: a session with a GPU gets one short lease, so the
scripts it runs must already produce complete, self-consistent figures here (benchmarks/gpu_throughput.py,
benchmarks/gpu_end_to_end.py, benchmarks/gpu_training.py, benchmarks/gpu_decode_probe.py, benchmarks/run_on_gpu.sh)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tarfile
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


@pytest.fixture(scope="module")
def training(throughput: types.ModuleType) -> types.ModuleType:
    return _load("gpu_training")


@pytest.fixture(scope="module")
def decode_probe(throughput: types.ModuleType) -> types.ModuleType:
    return _load("gpu_decode_probe")


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
                            "--only", ",".join((*throughput.DEFAULT_GROUPS, "build")),
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
        assert r["fraction_of_bf16"] == pytest.approx(r["tflops"] / ceilings["bf16"], rel=2e-3)
        if r["group"] in throughput.EXTRACTION_GROUPS:
            assert r["flop_per_clip"] == flops["backbone"]
        assert f"| {r['name']} | {r['batch']} |" in text
    extraction = [r for r in ok if r["group"] in throughput.EXTRACTION_GROUPS]
    best = max(extraction, key=lambda r: r["fraction_of_ceiling"])
    assert (report["extraction_best"]["name"], report["extraction_best"]["batch"]) == (best["name"], best["batch"])
    assert "Fastest extraction:" in text


def test_the_checks_say_what_they_found_or_why_they_did_not_run(throughput_run: tuple[dict, str]) -> None:
    report, text = throughput_run
    staging, build = report["checks"]["staging"], report["checks"]["build"]
    assert staging["status"] == "skipped" and staging["note"] == "CUDA only"  # pinned memory needs CUDA
    # On a CPU the "device" is the CPU: the same generator, so the same weights; on a GPU this is the question.
    assert build["status"] == "ok" and build["same_weights"] and build["tensors"] > 0 and build["cpu_build_s"] >= 0
    assert "Check `build`" in text and "Check `staging`" in text


def test_compile_times_only_the_forwards_asked_for(throughput: types.ModuleType) -> None:
    args = throughput.parse_args(["--compile", "max-autotune-no-cudagraphs,default", "--compile_paths", "fast"])
    assert args.compile == ["max-autotune-no-cudagraphs", "default"] and args.compile_paths == ["fast"]
    assert "compile" in args.only and "build" not in throughput.parse_args([]).only
    with pytest.raises(SystemExit):
        throughput.parse_args(["--compile_paths", "fast,triton"])


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


def test_stage_clock_times_the_callables_a_wrapped_function_makes(end_to_end: types.ModuleType) -> None:
    def make_forward(seconds: float):  # as extraction gets its forward from encoder_forward
        def forward(x: int) -> int:
            time.sleep(seconds)
            return x + 1
        return forward

    owner = types.SimpleNamespace(make_forward=make_forward)
    clock = end_to_end.StageClock()
    clock.wrap_made(owner, "make_forward", "forward_host")
    forward = owner.make_forward(0.01)
    assert clock.calls["forward_host"] == 0, "making the callable is not timed"
    assert forward(1) == 2 and forward(2) == 3
    assert clock.calls["forward_host"] == 2 and clock.totals["forward_host"] >= 0.02
    clock.restore()
    assert owner.make_forward is make_forward


def test_stage_clock_adds_gpu_time_from_events_to_the_run_that_queued_the_work(end_to_end: types.ModuleType) -> None:
    class Event:  # a CUDA event's interface: record(), elapsed_time(other) in milliseconds
        def record(self) -> None:
            self.at = time.perf_counter()

        def elapsed_time(self, end: Event) -> float:
            return (end.at - self.at) * 1e3

    synchronised: list[bool] = []
    owner = types.SimpleNamespace(encode=lambda: time.sleep(0.01))
    clock = end_to_end.StageClock(synchronize=lambda: synchronised.append(True), gpu_event=Event)
    clock.wrap(owner, "encode", "encode_host", gpu_stage="backbone_gpu")
    clock.current = "head_only"
    owner.encode()
    owner.encode()
    assert clock.totals["backbone_gpu"] == 0 and not synchronised, "nothing waits for the GPU while the run goes on"
    clock.current = "lora"
    clock.resolve_gpu()
    assert synchronised == [True] and clock.calls["backbone_gpu"] == 2
    assert clock.by_run["head_only"]["backbone_gpu"] >= 0.02 and clock.by_run["lora"]["backbone_gpu"] == 0
    clock.resolve_gpu()
    assert synchronised == [True], "resolved events are not counted twice"


def test_a_part_that_would_end_after_the_deadline_does_not_start(end_to_end: types.ModuleType) -> None:
    assert end_to_end.late_start(None, 500.0, 100.0) is None
    assert end_to_end.late_start(300.0, 150.0, 100.0) is None
    assert end_to_end.late_start(300.0, 250.0, 100.0) == "skipped: about 100 s expected, 50 s left"


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
    for name in ("extraction", "encode_host", "training", "evaluation", "model_build", "state_writes"):
        assert stages[name] > 0, name
    assert stages["backbone_gpu"] == 0, "no CUDA events on a CPU (there the host's encode is the forward)"
    # The host's encode, split: stacking the clips (milliseconds here) and the forward's call (on a CPU the forward
    # itself) are inside it.
    assert stages["forward_host"] > 0 and stages["stage_in"] >= 0 and stages["copies_out"] >= 0
    assert stages["stage_in"] + stages["forward_host"] <= stages["encode_host"] + 0.05
    run = store["runs"]["lora"]
    # One backbone pass per stored clip: every training view (one per epoch) and the eval view of val and test.
    assert store["backbone_clips"] == run["num_train"] * run["epochs"] + run["num_val"] + run["num_test"]
    # head_only runs first and fills the store; lora finds the backbone features there and runs no backbone.
    assert store["runs"]["head_only"]["stages_s"]["encode_host"] > 0
    assert run["stages_s"]["encode_host"] == 0 and run["stages_s"]["store_writes"] == 0
    assert store["runs"]["head_only"]["stages_s"]["store_writes"] > 0  # on the writer threads, still counted
    assert all(0 <= r["test_acc"] <= 1 and r["epochs"] == 1 for r in store["runs"].values())
    assert "Goals (issue 20): wall time" in text and "| **wall time** |" in text
    assert f"extraction inside the grid {store['backbone_clips'] / stages['extraction']:.1f} clips/s" in text


def test_end_to_end_sweeps_extraction_settings_after_the_grid(end_to_end: types.ModuleType,
                                                              end_to_end_run: tuple[dict, str]) -> None:
    report, text = end_to_end_run
    store = report["store"]
    sweep = report["extraction_sweep"]
    assert [(row["num_workers"], row["cache_batch_size"]) for row in sweep] == [(0, 2), (1, 5)]
    for row in sweep:  # each in a fresh store: every clip the grid extracts, extracted again
        assert row["clips"] == store["backbone_clips"] and row["stages_s"]["extraction"] > 0
    assert "--cache.batch_size 3" in store["command"]
    assert store["backbone_calls"] == math.ceil(store["backbone_clips"] / 3)
    assert "Extraction alone" in text and "| 1 | 5 |" in text
    late = {**report, "extraction_sweep": [*sweep, {"num_workers": 8, "cache_batch_size": 32,
                                                    "skipped": "skipped: about 90 s expected, 20 s left"}]}
    assert "| 8 | 32 | | | | | | | skipped: about 90 s expected, 20 s left |" in end_to_end.markdown(late)


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


# ------------------------------------------------------------------------------------------------ training steps
@pytest.fixture(scope="module")
def training_run(training: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("training")
    code = training.main(["--model", "random:tiny", "--device", "cpu", "--quick", "--train_batch", "1",
                          "--warmup", "0", "--iters", "1", "--out", str(out / "t.json"),
                          "--markdown", str(out / "t.md")])
    assert code == 0
    return json.loads((out / "t.json").read_text()), (out / "t.md").read_text()


def test_training_measures_each_kind_guide_style_and_with_and_without_checkpointing(training_run: tuple[dict, str]
                                                                                   ) -> None:
    report, text = training_run
    rows = {r["name"]: r for r in report["results"]}
    for kind in ("backbone_lora", "pretrain"):
        guide = rows[f"{kind} step, guide-style (fp32, batch 1)"]
        assert guide["status"] == "ok" and guide["precision"] == "fp32" and guide["batch"] == 1
        for name in (f"{kind} step", f"{kind} step, checkpointing"):
            assert rows[name]["status"] == "ok" and rows[name]["flop_per_clip"] > 0
            assert rows[name]["fraction_of_bf16"] == pytest.approx(
                rows[name]["tflops"] / report["ceilings_tflops"]["bf16"], rel=2e-3)
            largest = rows[f"{name}, largest batch"]
            assert largest["status"] == "skipped" and "CUDA only" in largest["note"]
        assert f"| {kind} step, checkpointing | 1 |" in text
    assert report["environment"]["torch"] and "% of bf16 ceiling" in text


def test_pretraining_flops_equal_torch_flop_counter(training: types.ModuleType) -> None:
    """The analytic count (target encoder over every token; context encoder, predictor over the drawn masks' tokens)
    is what the objective's forward computes, counted by torch (SDPA's math path, whose products it sees)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import VJEPA2Model

    from vjepa_tune.models.loading import build_config
    from vjepa_tune.pretraining.objective import JepaObjective, encode_targets

    config = build_config("tiny", 4)
    objective = JepaObjective(VJEPA2Model(config))
    draws = training.mask_draws(config, 16, batch=2)
    clips = torch.randn(2, 16, 3, config.crop_size, config.crop_size)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        with FlopCounterMode(display=False) as whole:
            objective(clips, draws[0])
        with FlopCounterMode(display=False) as target_only:
            encode_targets(objective.target_encoder, clips)
    target, trained = training.pretrain_forward_flops(
        config, 16, [m.context.shape[1] for m in draws[0]], [m.target.shape[1] for m in draws[0]])
    assert 2 * target == target_only.get_total_flops()
    assert 2 * (target + trained) == whole.get_total_flops()
    both = [training.pretrain_forward_flops(config, 16, [m.context.shape[1] for m in d],
                                            [m.target.shape[1] for m in d]) for d in draws]
    assert training.pretrain_step_flops(config, 16, draws) == pytest.approx(sum(t + 3 * u for t, u in both) / 2)


def test_the_memory_model_predicts_the_largest_batch_and_the_search_finds_it(training: types.ModuleType) -> None:
    model = training.MemoryModel.fit((8, 2048.0 + 8 * 300.0), (4, 2048.0 + 4 * 300.0))
    assert model.intercept_mib == pytest.approx(2048.0) and model.per_clip_mib == pytest.approx(300.0)
    assert model.largest(2048.0 + 300.0 * 61.5) == 61

    true_largest, tried = 57, []

    def fits(batch: int) -> bool:
        tried.append(batch)
        return batch <= true_largest

    found, log = training.search_largest(fits, known=8, predicted=61, cap=1000)
    assert found <= true_largest and true_largest - found <= max(1, found // 16)
    assert log[0] == (61, False) and [b for b, _ in log] == tried and len(tried) <= 4
    found, log = training.search_largest(fits, known=8, predicted=50, cap=1000)
    assert log[0] == (50, True) and found >= 50, "a prediction that fits is tried higher"
    found, log = training.search_largest(fits, known=8, predicted=61, cap=20)
    assert (found, log) == (20, [(20, True)]), "no step beyond the cap"


# ------------------------------------------------------------------------------------------------ GPU decoding
@pytest.fixture(scope="module")
def decode_run(decode_probe: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("decode")
    code = decode_probe.main(["--size", "64x64", "--frames", "30", "--timing_size", "64x64", "--timing_frames", "16",
                              "--repeats", "1", "--work", str(out / "work"),
                              "--out", str(out / "d.json"), "--markdown", str(out / "d.md")])
    assert code == 0
    return json.loads((out / "d.json").read_text()), (out / "d.md").read_text()


def test_the_decode_probe_reports_no_cuda_cleanly_and_its_controls_pass(decode_run: tuple[dict, str]) -> None:
    import torch

    report, text = decode_run
    assert report["gpu_decoding"]["cuda"] is torch.cuda.is_available() is False
    methods = {m["name"]: m for m in report["methods"]}
    for name in ("cuda hwaccel, downloaded", "cuda hwaccel, on the GPU", "cuvid decoder"):
        assert methods[name]["status"] == "skipped" and methods[name]["note"] == "no CUDA"
    exact, converted = methods["cpu threaded (control)"], methods["cpu nv12 + torch colour (control)"]
    assert exact["trusted"] and all(s["max_abs"] == 0 for s in exact["sources"])
    assert converted["trusted"] and len(converted["sources"]) == 5  # four B-frame sources and one in colour
    assert any(s["max_abs"] > 0 for s in converted["sources"]), "another colour conversion is not bit-exact"
    assert report["reference_ms_per_video"] > 0 and converted["ms_per_video"] > 0
    assert "| cuvid decoder | skipped | no |" in text and "Tolerance per frame" in text


def test_the_decode_comparison_catches_frames_out_of_order_and_off_colour(decode_probe: types.ModuleType) -> None:
    import numpy as np

    frames = [decode_probe.pattern_frame(i, 64, 64) for i in range(6)]
    reference = decode_probe.Decoded(frames, [i / 25 for i in range(6)])
    same = decode_probe.compare("x", reference, decode_probe.Decoded(list(frames), list(reference.times)), exact=True)
    assert same.same_frames and same.same_times and same.within_tolerance and same.max_abs == 0
    swapped = [frames[0], frames[2], frames[1], *frames[3:]]  # B-frames left in decoding order
    got = decode_probe.compare("x", reference, decode_probe.Decoded(swapped, list(reference.times)), exact=False)
    assert not got.same_frames
    assert not decode_probe.nearest_own_frame(frames, swapped) and decode_probe.nearest_own_frame(frames, frames)
    late = decode_probe.compare("x", reference, decode_probe.Decoded(list(frames), [t + 0.04 for t in reference.times]),
                                exact=False)
    assert got.frames == late.frames == 6 and not late.same_times
    tinted = [np.clip(f.astype(np.int16) + 20, 0, 255).astype(np.uint8) for f in frames]
    off = decode_probe.compare("x", reference, decode_probe.Decoded(tinted, list(reference.times)), exact=False)
    assert off.same_frames and not off.within_tolerance
    short = decode_probe.compare("x", reference, decode_probe.Decoded(frames[:5], reference.times[:5]), exact=False)
    assert not short.same_frames and short.note == "a different number of frames"


def test_nv12_is_converted_as_ffmpeg_converts_untagged_video(decode_probe: types.ModuleType) -> None:
    import torch

    y = torch.tensor([[16, 235], [126, 81]], dtype=torch.uint8)
    grey = torch.full((1, 1, 2), 128, dtype=torch.uint8)
    rgb = decode_probe.nv12_to_rgb(y, grey)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[1, 0].tolist() == [128, 128, 128]  # limited range: 16..235 spread over 0..255
    red = decode_probe.nv12_to_rgb(torch.tensor([[81]], dtype=torch.uint8).expand(2, 2),
                                   torch.tensor([[[90, 240]]], dtype=torch.uint8))  # BT.601 red
    assert all(abs(a - b) <= 2 for a, b in zip(red[0, 0].tolist(), [255, 0, 0], strict=True))


def test_the_launch_probe_times_the_eager_forward_under_growing_load(tmp_path: Path) -> None:
    out = tmp_path / "launch.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_launch_probe.py"), "--model", "random:tiny",
                           "--device", "cpu", "--busy", "1", "--iters", "2", "--out", str(out),
                           "--markdown", str(tmp_path / "launch.md")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(BENCHMARKS.parent / "src")})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["condition"], r["forward"]) for r in rows] == [
        ("quiet", "eager"), ("1 busy processes", "eager"), ("1 busy processes + writer thread", "eager"),
        ("1 busy processes + writer thread", "CUDA graph")]
    assert all(r["clips_per_s"] > 0 and r["batches"] == 2 and r["device_ms_per_batch"] is None for r in rows[:3])
    assert rows[3]["note"] == "skipped: CUDA only"
    assert "| quiet | eager | 2 |" in (tmp_path / "launch.md").read_text()


# ------------------------------------------------------------------------------------------------ shell scripts
@pytest.mark.parametrize("script", [BENCHMARKS / "run_on_gpu.sh", SCRIPTS / "fetch_gpu_wheels.sh"])
def test_shell_scripts_parse(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_device_script_names_its_calls_and_refuses_others() -> None:
    done = subprocess.run(["bash", str(BENCHMARKS / "run_on_gpu.sh"), "issue21"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr and "issue20" in done.stderr


def test_the_device_call_leaves_few_enough_files_for_the_device_tool_to_bring_back_all(tmp_path: Path) -> None:
    """The device tool returns at most 8 files from $OUT: each of the six parts leaves its table, everything else
    (the environment, every JSON and log, anything left loose) goes into raw.tar."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "left_from_before.log").write_text("a file of an earlier call\n")
    tiny = "--model random:tiny --quick"
    env = {**os.environ, "WHEELS": "", "DEVICE": "cpu", "PY": sys.executable, "OUT": str(out), "E2E_WORKERS": "0",
           "COMPILE_MODES": "", "EXTRACTION_SWEEP": "0:4", "CHECKS_ARGS": tiny, "COMPILE_ARGS": tiny,
           "E2E_ARGS": "--model random:tiny --strategies head_only --videos_per_class 2 --size 64x64 "
                       "--video_frames 16 --epochs 1 --synth_workers 0",
           "DECODE_ARGS": "--timing_size 64x64 --timing_frames 16 --repeats 1",
           "TRAINING_ARGS": "--model random:tiny --quick --train_batch 1 --warmup 0 --iters 1",
           "LAUNCH_ARGS": "--model random:tiny --iters 1"}
    done = subprocess.run(["bash", str(BENCHMARKS / "run_on_gpu.sh"), "issue20"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    parts = ["checks", "compile", "decode", "end_to_end", "launch", "training"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{part}.md" for part in parts), "raw.tar"])
    with tarfile.open(out / "raw.tar") as raw:
        assert sorted(raw.getnames()) == sorted([*(f"{part}.{ext}" for part in parts for ext in ("json", "log")),
                                                 "environment.txt", "left_from_before.log"])
        assert json.load(raw.extractfile("checks.json"))["checks"]["build"]["same_weights"] is True
    assert "Check `build`" in done.stdout


def test_issue17s_device_call_brings_back_each_run_folder_and_its_table(tmp_path: Path) -> None:
    """`run_on_gpu.sh issue17` pretrains both conditions for the time it has and leaves, within the device tool's 8
    files, the table and each run folder as a tarball (the model the CPU machine probes, without the checkpoint)."""
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "WHEELS": "", "PY": sys.executable, "OUT": str(out), "E2E_WORKERS": "0",
           "PRETRAIN_ARGS": f"--work {tmp_path / 'work'} --unlabelled_per_class 2 --calibration_steps 2 "
                            "--log_every 1 --batch_size 2 --max_steps 4"}
    done = subprocess.run(["bash", str(BENCHMARKS / "run_on_gpu.sh"), "issue17"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["adaptation.tar.gz", "pretrain_scale.md", "raw.tar",
                                                     "scratch.tar.gz"]
    with tarfile.open(out / "raw.tar") as raw:
        assert sorted(raw.getnames()) == ["environment.txt", "pretrain_scale.json", "pretrain_scale.log"]
        rows = json.load(raw.extractfile("pretrain_scale.json"))["runs"]
    assert [(r["condition"], r["steps"], r["batch"], r["clips"]) for r in rows] == [("scratch", 4, 2, 8),
                                                                                    ("adaptation", 4, 2, 8)]
    assert rows[1]["flags"][-2:] == ["--predictor.warmup_steps", "1"]  # a quarter of the run
    for name in ("scratch", "adaptation"):
        with tarfile.open(out / f"{name}.tar.gz") as run:
            names = run.getnames()
        assert f"{name}-gpu/model/model.safetensors" in names and f"{name}-gpu/scale_flags.txt" in names
        assert f"{name}-gpu/metrics.json" in names and not any("/checkpoint" in n for n in names)
    assert "| scratch (`random:tiny`) | 4 of 2: 8 |" in (out / "pretrain_scale.md").read_text()
