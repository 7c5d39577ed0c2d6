"""`vjepa-tune compare` end to end on random:tiny: the grid, its shared split and store, rerun and resume.

One real grid (2 strategies x 2 sizes, one epoch) is trained once for the module; the other tests read it, run
it again, or run small variations of it sharing its feature store.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from vjepa_tune import cli
from vjepa_tune.compare.grid import CompareGrid, compare_folder, grid_identity
from vjepa_tune.compare.recipe import run_compare
from vjepa_tune.config import CacheConfig, DataConfig, TrainConfig
from vjepa_tune.errors import BadInput, NonFiniteLoss
from vjepa_tune.tracking.records import read_experiments
from vjepa_tune.training.extraction import BackboneCounter
from vjepa_tune.training.recipe import train

RUNS = ("head_only-n6", "lora-n6", "head_only-n3", "lora-n3")


def _args(root: Path, out: Path, store: Path, *extra: str) -> list[str]:
    return ["compare", "--strategies", "head_only,lora", "--data.root", str(root),
            "--data.videos_per_class", "3,6", "--model", "random:tiny", "--num_epochs", "1",
            "--data.frames_per_clip", "8", "--out", str(out), "--cache.dir", str(store), *extra]


def _main(argv: list[str]) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(argv)
    return code, stdout.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compare-store")


def _base_and_grid(root: Path, out: Path, store: Path, **grid: object) -> tuple[TrainConfig, CompareGrid]:
    """What `_args` asks for, through the Python API (the lists the command line fills in with the defaults)."""
    base = TrainConfig(model="random:tiny", num_epochs=1, out=out, data=DataConfig(root=root, frames_per_clip=8),
                       cache=CacheConfig(dir=store))
    axes = {"strategies": ["head_only", "lora"], "videos_per_class": [3, 6], "learning_rate": [2e-4],
            "lora_rank": [16], "lora_alpha": [32.0], "lora_dropout": [0.1], "seeds": [42], **grid}
    return base, CompareGrid(**axes)


@pytest.fixture(scope="module")
def grid(synth_root, store, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("compare-out")
    clips_before = BackboneCounter.clips
    lines: list[str] = []
    result = run_compare(*_base_and_grid(synth_root, out, store), log=lines.append)
    folders = list(out.glob("compare-*"))
    return {"result": result, "stdout": "\n".join(lines), "out": out, "folders": folders,
            "clips": BackboneCounter.clips - clips_before}


def _splits(run_dir: Path) -> dict[str, set[str]]:
    data = json.loads((run_dir / "splits.json").read_text())
    return {name: {entry["id"] for entry in data[name]} for name in ("train", "val", "test")}


def test_grid_trains_every_point_once_in_one_folder(grid) -> None:
    assert not grid["result"].failed, grid["stdout"]
    assert len(grid["folders"]) == 1
    folder = grid["folders"][0]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(RUNS)
    for name in RUNS:
        metrics = json.loads((folder / name / "metrics.json").read_text())
        assert metrics["approach"] == name.split("-")[0]
        assert metrics["videos_per_class"] == int(name.split("-n")[1])
    # Largest size first, so the n3 runs read the store the n6 runs filled: the whole grid runs the backbone
    # once per clip (16 train + 8 eval; head_only's pooler outputs are derived from the stored backbone ones).
    done = [line.split(":")[0] for line in grid["stdout"].splitlines()
            if line.startswith("[") and "test acc" in line]
    assert done == [f"[{k}/4] {name}" for k, name in enumerate(RUNS, start=1)]
    assert grid["clips"] == 16 + 8
    assert grid["result"].models_drawn == 1, "the four runs copy one random model drawn once"


def test_every_size_is_scored_on_the_same_videos_and_smaller_train_sets_nest(grid) -> None:
    folder = grid["folders"][0]
    for strategy in ("head_only", "lora"):
        big, small = _splits(folder / f"{strategy}-n6"), _splits(folder / f"{strategy}-n3")
        assert big["val"] == small["val"] and big["test"] == small["test"]
        assert small["train"] < big["train"]
        assert (len(big["train"]), len(small["train"])) == (16, 4)
    assert _splits(folder / "head_only-n6") == _splits(folder / "lora-n6")


def test_each_run_appends_one_experiments_row(grid) -> None:
    rows = read_experiments(grid["out"] / "experiments.csv")
    folder = grid["folders"][0]
    assert sorted(Path(r["run_dir"]).name for r in rows) == sorted(RUNS)
    assert all(Path(r["run_dir"]).parent == folder.resolve() for r in rows)
    assert {(r["approach"], r["videos_per_class"]) for r in rows} == {
        ("head_only", "6"), ("lora", "6"), ("head_only", "3"), ("lora", "3")}


def test_report_has_the_tables_and_plots(grid) -> None:
    folder = grid["folders"][0]
    text = (folder / "report.md").read_text()
    results = text.split("## Results", 1)[1].split("##", 1)[0]
    assert results.count("| `head_only` |") == 2 and results.count("| `lora` |") == 2
    header = "| Approach | Setting | Test Acc | Val Acc | Trainable Params | % of Total | Training Time |"
    assert header in results
    scaling = text.split("## Test accuracy by videos per class", 1)[1].split("##", 1)[0]
    assert "| Videos per class | `head_only` | `lora` |" in scaling
    assert [line.split("|")[1].strip() for line in scaling.splitlines() if line.startswith("| ") and
            line[2].isdigit()] == ["3", "6"]
    best = text.split("## Best setting per strategy", 1)[1].split("##", 1)[0]
    assert best.count("| `head_only` |") == 1 and best.count("| `lora` |") == 1
    assert "same validation and test videos" in text
    assert "16 at 6 per class, 4 at 3 per class" in text
    for png in ("training_curves.png", "scaling.png", "params_vs_accuracy.png", "confusion_best.png"):
        assert (folder / png).stat().st_size > 1000


def test_same_arguments_again_skip_every_run(grid, synth_root, store) -> None:
    folder = grid["folders"][0]
    rows_before = read_experiments(grid["out"] / "experiments.csv")
    stamps = {name: (folder / name / "metrics.json").stat().st_mtime_ns for name in RUNS}
    calls_before = BackboneCounter.calls
    code, stdout = _main(_args(synth_root, grid["out"], store, "--num_workers", "0"))
    assert code == 0
    assert stdout.count("already finished") == 4
    assert list(grid["out"].glob("compare-*")) == [folder]
    assert read_experiments(grid["out"] / "experiments.csv") == rows_before
    assert {name: (folder / name / "metrics.json").stat().st_mtime_ns for name in RUNS} == stamps
    assert BackboneCounter.calls == calls_before


def test_an_interrupted_grid_continues_only_what_is_missing(synth_root, store, tmp_path) -> None:
    base = TrainConfig(model="random:tiny", num_epochs=2, out=tmp_path,
                       data=DataConfig(root=synth_root, frames_per_clip=8), cache=CacheConfig(dir=store))
    grid = CompareGrid(strategies=["head_only"], videos_per_class=[3, 6])
    seen: list[str] = []

    def stop_in_second_run(line: str) -> None:
        seen.append(line)
        # After epoch 1 of the second run, once its checkpoint is saved: as if the process were killed.
        if line.startswith("epoch 2/2") and any(s.startswith("[2/2]") for s in seen):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_compare(base, grid, log=stop_in_second_run)
    (folder,) = tmp_path.glob("compare-*")
    assert (folder / "head_only-n6" / "metrics.json").exists()
    assert (folder / "head_only-n3" / "checkpoint" / "state.pt").exists()
    assert not (folder / "head_only-n3" / "metrics.json").exists()

    lines: list[str] = []
    result = run_compare(base, grid, log=lines.append)
    assert result.compare_dir == folder
    assert [r.status for r in result.runs] == ["skipped", "finished"]
    assert "resumed after epoch 1 (optimizer step 1)" in lines
    assert [h["epoch"] for h in result.runs[1].metrics["history"]] == [1, 2]
    rows = read_experiments(tmp_path / "experiments.csv")
    assert sorted(Path(r["run_dir"]).name for r in rows) == ["head_only-n3", "head_only-n6"]


def test_a_failed_run_is_reported_and_the_others_go_on(synth_root, store, tmp_path) -> None:
    def train_with_nan_lora(cfg, *args, **kwargs):
        if cfg.strategy == "lora":
            raise NonFiniteLoss("the training loss became nan at epoch 1, optimizer step 2")
        return train(cfg, *args, **kwargs)

    lines: list[str] = []
    result = run_compare(*_base_and_grid(synth_root, tmp_path, store), log=lines.append, train=train_with_nan_lora)
    assert [r.point.strategy for r in result.failed] == ["lora", "lora"]
    assert sum("FAILED: NonFiniteLoss" in line for line in lines) == 2
    (folder,) = tmp_path.glob("compare-*")
    text = (folder / "report.md").read_text()
    assert text.startswith("# Comparison: 2 of 4 runs finished")
    failed = text.split("## Failed runs", 1)[1]
    assert "| `lora-n6` | NonFiniteLoss: the training loss became nan" in failed
    assert "| `lora-n3` |" in failed
    assert sorted(Path(r["run_dir"]).name for r in read_experiments(tmp_path / "experiments.csv")) == [
        "head_only-n3", "head_only-n6"]


def test_bad_input_met_by_a_run_stops_the_grid(synth_root, store, tmp_path) -> None:
    def refuse(cfg, *args, **kwargs):
        raise BadInput(f"--strategy {cfg.strategy}: refused for this test.")

    with pytest.raises(BadInput, match="--strategy head_only: refused for this test."):
        run_compare(*_base_and_grid(synth_root, tmp_path, store), log=lambda _: None, train=refuse)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data.videos_per_class", "0,3"], "--data.videos_per_class must be >= 1"),
        (["--strategies", "head_only,nope"], "--strategies 'nope' is not one of head_only, pooler_and_head"),
        (["--strategies", "head_only,head_only"], "--strategies lists 'head_only' more than once"),
        (["--learning_rate", "1e-4,-1"], "--learning_rate must be a positive number"),
        (["--learning_rate", "1e-4,abc"], "learning_rate"),
        (["--lora.rank", "8,0"], "--lora.rank must be >= 1"),
        (["--seeds", ""], "--seeds needs at least one value"),
        (["--data_seeds", "1,2,1"], "--data_seeds lists 1 more than once"),
        (["--report_to", "mlflow,comet"], "unknown tracker 'comet'"),
        (["--data.root", "/nonexistent/videos"], "--data.root /nonexistent/videos does not exist"),
    ],
)
def test_bad_values_exit_with_code_2_before_any_run(synth_root, tmp_path, capsys, extra, message) -> None:
    assert cli.main(_args(synth_root, tmp_path, tmp_path / "store", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("compare-*"))


def test_the_folder_is_found_again_only_for_the_same_settings(tmp_path) -> None:
    base = TrainConfig(model="random:tiny", out=tmp_path, data=DataConfig(root=tmp_path / "videos"))
    grid = CompareGrid(strategies=["lora"], videos_per_class=[10, 20], learning_rate=[1e-4], lora_rank=[16],
                       lora_alpha=[32.0], lora_dropout=[0.1], seeds=[42])
    first = compare_folder(tmp_path, grid_identity(base, grid), log=lambda _: None)
    operational = TrainConfig(model="random:tiny", out=tmp_path, num_workers=4, report_to="mlflow",
                              cache=CacheConfig(dir=tmp_path, batch_size=2),
                              data=DataConfig(root=tmp_path / "videos"))
    assert compare_folder(tmp_path, grid_identity(operational, grid), log=lambda _: None) == first
    assert "data_seeds" not in grid_identity(base, grid)["grid"], "as grids made before data seeds existed"
    data_seeds = CompareGrid(**{**vars(grid), "data_seeds": [0, 1]})
    assert compare_folder(tmp_path, grid_identity(base, data_seeds), log=lambda _: None) != first
    other_grid = CompareGrid(**{**vars(grid), "learning_rate": [1e-4, 2e-4]})
    second = compare_folder(tmp_path, grid_identity(base, other_grid), log=lambda _: None)
    other_epochs = TrainConfig(model="random:tiny", out=tmp_path, num_epochs=3,
                               data=DataConfig(root=tmp_path / "videos"))
    third = compare_folder(tmp_path, grid_identity(other_epochs, grid), log=lambda _: None)
    assert len({first, second, third}) == 3
    assert compare_folder(tmp_path, grid_identity(base, other_grid), log=lambda _: None) == second


def test_compare_keeps_its_console_log_and_each_run_its_own_part(synth_root, store, tmp_path, monkeypatch,
                                                                  capsys) -> None:
    import warnings

    from vjepa_tune.tracking.console_log import ConsoleLog
    from vjepa_tune.tracking.report import RESULTS_ORDER

    monkeypatch.setenv("VJEPA_TUNE_CACHE", str(store))  # the store chosen by the environment, not --cache.dir

    def train_with_a_warning(cfg, *args, **kwargs):
        warnings.warn("a warning raised while comparing", UserWarning, stacklevel=1)
        return train(cfg, *args, **kwargs)

    base = TrainConfig(model="random:tiny", num_epochs=1, out=tmp_path, data=DataConfig(root=synth_root,
                                                                                        frames_per_clip=8))
    command = f"vjepa-tune compare --strategies head_only --data.root {synth_root} --out {tmp_path}"
    with ConsoleLog(command_line=command):
        run_compare(base, CompareGrid(strategies=["head_only"]), train=train_with_a_warning)
    stdout = capsys.readouterr().out
    (folder,) = tmp_path.glob("compare-*")
    lines = (folder / "compare.log").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith(f" {command}")
    text = "\n".join(lines)
    for needle in (f"compare: new comparison in {folder}", "[1/1] head_only: training", "epoch 1/1: train loss",
                   "[1/1] head_only: test acc", RESULTS_ORDER, "| `head_only` |", f"report: {folder / 'report.md'}"):
        assert needle in text, needle
    assert sum("UserWarning: a warning raised while comparing" in line for line in lines) == 1
    run_log = (folder / "head_only" / "train.log").read_text()
    assert "[1/1] head_only: training" in run_log and "epoch 1/1: train loss" in run_log
    assert "UserWarning: a warning raised while comparing" in run_log
    assert "compare: new comparison" not in run_log and RESULTS_ORDER not in run_log

    report = (folder / "report.md").read_text()
    assert f"Feature store (`{store}`, set by $VJEPA_TUNE_CACHE)" in report and "default location" not in report
    assert "Trained in fp32." in report
    assert f"{RESULTS_ORDER}\n| Approach |" in stdout  # the table printed at the end says its order too


def test_a_run_finished_by_an_earlier_version_reads_its_precision_as_fp32(tmp_path) -> None:
    """metrics.json said accelerate's "no" for fp32 before; a grid that skips such a run reports fp32."""
    from vjepa_tune.compare.grid import GridPoint
    from vjepa_tune.compare.recipe import _run_point
    from vjepa_tune.tracking.report import precision_text

    run_dir = tmp_path / "head_only"
    run_dir.mkdir()
    old = {"approach": "head_only", "precision": "no", "test_acc": 0.5, "best_val_acc": 0.5}
    (run_dir / "metrics.json").write_text(json.dumps(old))
    point = GridPoint("head_only", None, 2e-4, 16, 32.0, 0.1, 42)
    record = _run_point(point, TrainConfig(), run_dir, None, tmp_path / "experiments.csv", "[1/1]", print)
    assert record.status == "skipped" and record.metrics["precision"] == "fp32"
    assert precision_text([record.as_report_entry()]) == "Trained in fp32."


# ------------------------------------------------------------------------------------------ seeds and trackers
@pytest.fixture(scope="module")
def tracked_grid(synth_root, store, tmp_path_factory, trackers_read) -> dict:
    """Two strategies over two data seeds (each its own split and runs), reported to all three trackers; then the
    same command again, which skips every run and continues the comparison's MLflow parent run."""
    root = tmp_path_factory.mktemp("tracked-grid")
    out = root / "runs"
    argv = ["compare", "--strategies", "head_only,lora", "--data.root", str(synth_root), "--data_seeds", "0,1",
            "--model", "random:tiny", "--num_epochs", "1", "--data.frames_per_clip", "8", "--out", str(out),
            "--cache.dir", str(store), "--report_to", "tensorboard,mlflow,wandb"]
    with pytest.MonkeyPatch.context() as mp:
        trackers_read.isolate(mp, root / "home")
        first = _main(argv)
        again = _main(argv)
    (folder,) = out.glob("compare-*")
    return {"out": out, "folder": folder, "first": first, "again": again}


def test_data_seeds_draw_their_own_splits_and_runs_each_scored_on_its_own_test_videos(tracked_grid,
                                                                                     synth_root) -> None:
    from vjepa_tune.data.sources import read_dataset
    from vjepa_tune.data.splits import make_splits

    folder = tracked_grid["folder"]
    assert tracked_grid["first"][0] == 0, tracked_grid["first"][1]
    names = ["head_only-d0", "lora-d0", "head_only-d1", "lora-d1"]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(names)
    d0, d1 = _splits(folder / "head_only-d0"), _splits(folder / "head_only-d1")
    assert _splits(folder / "lora-d0") == d0 and _splits(folder / "lora-d1") == d1
    assert d0["test"] != d1["test"] and len(d0["test"]) == len(d1["test"]) == 4
    for seed, recorded in ((0, d0), (1, d1)):  # the split `train` itself makes with that seed
        data = DataConfig(root=synth_root, frames_per_clip=8)
        drawn = make_splits(read_dataset(data, seed=seed), data, seed)
        assert recorded == {name: {s.id for s in side} for name, side in drawn.items()}
    text = (folder / "report.md").read_text()
    assert "Data seeds 0, 1: each draws its own split" in text
    assert "Split: random, made once per data seed (0, 1) at all videos" in text
    assert "| Approach | data seed 0 | data seed 1 | Test Acc, mean ± SD | Val Acc, mean ± SD |" in text
    paired = text.split("## Paired comparison", 1)[1].split("\n## ", 1)[0]
    (row,) = [line for line in paired.splitlines() if line.startswith("| `") and "reference" not in line]
    assert len(row.split("|")[4].split(",")) == 2, "one McNemar p per data seed"
    assert "±" in row and "(2 data seeds)" in row


def test_a_grid_is_one_mlflow_parent_run_with_its_runs_nested_and_the_report_kept(tracked_grid, trackers_read) -> None:
    folder, out = tracked_grid["folder"], tracked_grid["out"]
    client = trackers_read.mlflow(out)
    parent_id = json.loads((folder / "trackers.json").read_text())["mlflow"]
    parent = client.get_run(parent_id)
    assert parent.info.run_name == folder.name and parent.info.status == "FINISHED"
    assert parent.data.params["grid.data_seeds"] == "[0, 1]" and parent.data.params["grid.strategies"] == \
        '["head_only", "lora"]'
    assert parent.data.metrics == {"runs": 4.0, "finished": 4.0, "failed": 0.0}
    assert {a.path for a in client.list_artifacts(parent_id)} >= {"report.md", "training_curves.png",
                                                                  "params_vs_accuracy.png", "confusion_best.png"}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == ["head_only-d0", "head_only-d1", "lora-d0", "lora-d1"]
    for child in children:
        metrics = json.loads((folder / child.info.run_name / "metrics.json").read_text())
        assert child.data.metrics["test_acc"] == metrics["test_acc"]
        assert [child.data.metrics["test_acc_ci_low"], child.data.metrics["test_acc_ci_high"]] == \
            metrics["test_acc_ci"]
        assert child.data.params["strategy"] == metrics["approach"] and child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "train/loss")]
        assert steps == sorted(steps) and len(steps) == 4, "every optimizer step's loss (16 videos, 4 per step)"
        assert {a.path for a in client.list_artifacts(child.info.run_id)} == {
            "confusion.png", "metrics.json", "test_predictions.csv"}


def test_a_grid_is_one_wandb_group_and_rerunning_it_continues_the_same_parent(tracked_grid, trackers_read) -> None:
    folder = tracked_grid["folder"]
    for name in ("head_only-d0", "lora-d1"):
        (run,) = trackers_read.wandb_runs(folder / name)
        metrics = json.loads((folder / name / "metrics.json").read_text())
        assert run.group == folder.name and run.exit_code == 0
        assert run.config["strategy"] == name.split("-")[0] and run.config["report_to"] == "tensorboard,mlflow,wandb"
        assert run.summary["test_acc"] == metrics["test_acc"]
        assert [run.summary["best_val_acc_ci_low"], run.summary["best_val_acc_ci_high"]] == metrics["best_val_acc_ci"]
    code, stdout = tracked_grid["again"]
    parent_id = json.loads((folder / "trackers.json").read_text())["mlflow"]
    assert code == 0 and stdout.count("already finished") == 4
    assert f"MLflow: continuing {parent_id}" in stdout
    runs = trackers_read.mlflow(tracked_grid["out"]).search_runs(
        [trackers_read.mlflow(tracked_grid["out"]).get_run(parent_id).info.experiment_id])
    assert len(runs) == 5, "the parent and its four runs: nothing started twice"


def test_data_seeds_that_give_the_same_test_videos_are_refused() -> None:
    from vjepa_tune.compare.grid import check_data_seeds_vary
    from vjepa_tune.data.samples import Sample, Splits

    videos = [Sample(Path(f"{i}.mp4"), i % 2, f"v{i}") for i in range(6)]
    official = Splits(train=videos[:2], val=videos[2:4], test=videos[4:], method="official")
    other_val = Splits(train=videos[:2], val=videos[3:4] + videos[2:3], test=videos[4:], method="official")
    with pytest.raises(BadInput, match="data seeds 0 and 1 give the same test videos .the split is official"):
        check_data_seeds_vary({0: official, 1: other_val})
    drawn = Splits(train=videos[:2], val=videos[4:], test=videos[2:4], method="random")
    check_data_seeds_vary({0: official, 1: drawn})


def test_data_seeds_and_seeds_multiply_the_grid_and_name_its_runs() -> None:
    from vjepa_tune.compare.grid import grid_points, resolve_grid, split_seed

    base = TrainConfig(model="random:tiny")
    grid = resolve_grid(base, CompareGrid(strategies=["head_only", "lora"], seeds=[1, 2], data_seeds=[0, 5]))
    points = grid_points(grid)
    assert [p.name(grid) for p in points] == [
        "head_only-d0-s1", "lora-d0-s1", "head_only-d0-s2", "lora-d0-s2",
        "head_only-d5-s1", "lora-d5-s1", "head_only-d5-s2", "lora-d5-s2"]
    assert [split_seed(grid, p) for p in points] == [0, 0, 0, 0, 5, 5, 5, 5]
    one_split = resolve_grid(base, CompareGrid(strategies=["lora"], seeds=[7, 8]))
    assert [(p.name(one_split), split_seed(one_split, p)) for p in grid_points(one_split)] == [
        ("lora-s7", 7), ("lora-s8", 7)], "without data seeds, the first seed makes the one split"
