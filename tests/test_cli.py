"""The command-line contract of CLI.md: every command answers --help, the spellings it promises parse, and the
parameter counts `info` prints for ViT-L equal the guide's table."""

from __future__ import annotations

import json

import pytest

from vjepa_tune.cli import COMMANDS, _normalize_argv, _parser, main
from vjepa_tune.models.info import format_pct

CONTRACT_COMMANDS = ["synth", "data check", "data prepare", "info", "train", "compare", "evaluate", "predict",
                     "export", "features", "cache", "demo", "pretrain"]


@pytest.mark.parametrize("command", CONTRACT_COMMANDS)
def test_every_contract_command_has_a_complete_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert command in COMMANDS
    assert main([*command.split(), "--help"]) == 0
    assert "usage: vjepa-tune " + command in capsys.readouterr().out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_bare_switches_and_comma_lists_are_rewritten_for_the_parser() -> None:
    parser = _parser("vjepa-tune train", "")
    COMMANDS["train"].build(parser)
    argv = ["--gradient_checkpointing", "--data.split_ratios", "0.8,0.1,0.1", "--cache.enabled", "false",
            "--data.hflip=false", "--data.crop_scale=0.5,1"]
    assert _normalize_argv(parser, argv) == [
        "--gradient_checkpointing", "true", "--data.split_ratios", "[0.8,0.1,0.1]", "--cache.enabled", "false",
        "--data.hflip=false", "--data.crop_scale", "[0.5,1]",
    ]


def test_info_prints_the_guides_parameter_counts_for_vitl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "random:vitl", "--num_labels", "4", "--json"]) == 0
    rows = {r["strategy"]: r for r in json.loads(capsys.readouterr().out)}
    expected = {
        "head_only": (4_100, 375_311_748, "0.001"),
        "pooler_and_head": (49_340_420, 375_311_748, "13.15"),
        "lora": (495_620, 375_803_268, "0.13"),
        "pooler_head_and_lora": (49_831_940, 375_803_268, "13.26"),
    }
    for name, (trainable, total, pct) in expected.items():
        assert (rows[name]["trainable_params"], rows[name]["total_params"]) == (trainable, total)
        assert format_pct(rows[name]["trainable_pct"]) == pct
    assert main(["info", "--model", "random:vitl", "--strategy", "lora"]) == 0
    assert "495,620" in capsys.readouterr().out


def test_info_refuses_an_unknown_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "random:tiny", "--strategy", "everything"]) == 2
    assert "everything" in capsys.readouterr().err


def _group_names() -> list[str]:
    return sorted({name.split()[0] for name in COMMANDS if " " in name})


@pytest.mark.parametrize("group", _group_names())
@pytest.mark.parametrize("extra", [[], ["--help"], ["-h"]])
def test_a_command_group_alone_or_with_help_lists_its_commands(
    group: str, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([group, *extra]) == 0
    captured = capsys.readouterr()
    assert "unknown command" not in captured.out + captured.err
    members = [name for name in COMMANDS if name.startswith(f"{group} ")]
    assert members and all(name in captured.out for name in members)
    assert f"usage: vjepa-tune {group} COMMAND" in captured.out


def test_data_lists_check_and_prepare_and_refuses_an_unknown_member(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "data check" in out and "data prepare" in out
    assert main(["data", "frob"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'data frob'" in err and "data check" in err


def test_cache_help_lists_its_actions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "--help"]) == 0
    out = capsys.readouterr().out
    assert "{list,clear}" in out and "list:" in out and "clear:" in out
    assert main(["cache", "prune"]) == 2
    assert "action 'prune' is not one of list, clear." in capsys.readouterr().err


_START_WITHOUT_TORCH = """
import json, sys
from vjepa_tune.cli import main
out, store = sys.argv[1], sys.argv[2]
codes = [
    main(["synth", out, "--videos_per_class", "3", "--size", "32", "--frames", "8", "--workers", "1"]),
    main(["data", "check", "--data.root", out, "--data.frames_per_clip", "8"]),
    main(["cache", "list", "--cache.dir", store]),
    main(["cache", "clear", "--cache.dir", store]),
]
heavy = ("torch", "torchvision", "transformers", "peft", "accelerate")
print(json.dumps({"codes": codes, "heavy": sorted(m for m in heavy if m in sys.modules)}))
"""


def test_commands_that_need_no_model_import_neither_torch_nor_transformers(tmp_path) -> None:
    """`synth`, `data check` and `cache list|clear` start in about a second because they import no deep-learning
    library (the start-up figures are in BENCHMARKS.md; benchmarks/startup.py measures them)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    (tmp_path / "store" / "somekey").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _START_WITHOUT_TORCH, str(tmp_path / "videos"), str(tmp_path / "store")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["codes"] == [0, 0, 0, 0]
    assert found["heavy"] == [], f"imported {found['heavy']}"


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*command.split(), "--help"]) == 0
    return capsys.readouterr().out


def _flags(command: str, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """The flags a command's --help lists (the first word of each option line)."""
    import re

    return set(re.findall(r"^\s{2}(--[\w.]+)", _help(command, capsys), re.MULTILINE))


TRAINING_ONLY = ("--data.crop_scale", "--data.hflip", "--data.color_jitter", "--data.random_erasing",
                 "--data.crop_size")


def test_each_commands_help_lists_only_the_flags_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    check = _flags("data check", capsys)
    assert {"--data.frames_per_clip", "--data.split_ratios", "--against"} <= check
    assert not check & set(TRAINING_ONLY), "data check cuts no training crops"
    prepare = _flags("data prepare", capsys)
    assert {"--data.root", "--data.group_pattern"} <= prepare
    assert not prepare & {*TRAINING_ONLY, "--data.split_ratios", "--data.frames_per_clip"}
    evaluate = _flags("evaluate", capsys)
    assert {"--data.root", "--data.fold", "--split", "--flip"} <= evaluate
    assert not evaluate & {*TRAINING_ONLY, "--data.frames_per_clip", "--data.split_ratios", "--data.group_pattern"}, (
        "clips are cut as the run cut them, its videos grouped as the run grouped them")
    assert set(TRAINING_ONLY) <= _flags("train", capsys)
    pretrain = _flags("pretrain", capsys)
    assert {*TRAINING_ONLY, "--data.frames_per_clip", "--max_steps", "--masks.short_range.num_blocks",
            "--predictor.reinit", "--ema.start", "--probe.data.root", "--probe.data.split_ratios", "--probe.every",
            "--probe.strategy", "--log_every", "--stop_on_collapse", "--report_to", "--resume"} <= pretrain
    assert not pretrain & {"--strategy", "--data.split", "--data.videos_per_class", "--data.split_ratios",
                           "--cache.enabled", "--cache.dir", "--lora.rank"}, "unlabelled videos are not split"


def test_pretrain_crops_as_v_jepa_does_and_its_probe_as_train_does(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    text = " ".join(_help("pretrain", capsys).split())
    defaults = dict(re.findall(r"(--[\w.]+crop_scale)\+ \[ITEM,\.\.\.\] Area range.*?default: (\[[^\]]*\])\)", text))
    assert defaults == {"--data.crop_scale": "[0.3, 1.0]", "--probe.data.crop_scale": "[0.08, 1.0]"}


STRATEGY_CHOICES = "{head_only,pooler_and_head,lora,pooler_head_and_lora,backbone_lora}"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("train", f"--strategy {STRATEGY_CHOICES}"),
        ("train", "--precision {auto,fp32,bf16,fp16}"),
        ("info", "--strategy {all,head_only,pooler_and_head,lora,pooler_head_and_lora,backbone_lora}"),
        ("predict", "--precision {auto,fp32,bf16,fp16}"),
        ("predict", "--num_crops {1,3}"),
        ("evaluate", "--precision {auto,fp32,bf16,fp16}"),
        ("evaluate", "--split {test,val,train}"),
        ("synth", "--layout {folder,ntu,ucf101,list}"),
        ("cache", "{list,clear}"),
        ("pretrain", "--probe.strategy {head_only,pooler_and_head}"),
    ],
)
def test_closed_sets_are_shown_as_choices(command: str, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert shown in _help(command, capsys)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--strategy", "full"], "--strategy 'full' is not one of head_only, pooler_and_head, lora, "
                                          "pooler_head_and_lora, backbone_lora."),
        (["compare", "--strategies", "lora,nope"], "--strategies 'nope' is not one of head_only,"),
        (["info", "--strategy", "nope"], "--strategy 'nope' is not one of all, head_only,"),
        (["evaluate", "run", "--split", "holdout"], "--split 'holdout' is not one of test, val, train."),
        (["predict", "run", "v.mp4", "--precision", "fp8"], "--precision 'fp8' is not one of auto, fp32, bf16, fp16."),
    ],
)
def test_a_value_outside_a_closed_set_is_refused_naming_the_flag_and_the_choices(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_the_module_and_the_console_script_list_the_same_commands(tmp_path) -> None:
    """`python -m vjepa_tune.cli` runs cli.py as __main__, a second copy of the module: every command must still be
    there (they were missing when commands registered themselves into `vjepa_tune.cli` on import)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    listings = []
    for launcher in (["-m", "vjepa_tune.cli"], ["-m", "vjepa_tune"],
                     ["-c", "import sys; from vjepa_tune.cli import main; sys.exit(main())"]):
        done = subprocess.run([sys.executable, *launcher, "--help"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        listings.append(done.stdout)
    assert listings[0] == listings[1] == listings[2]
    assert all(f"  {name}" in listings[0] for name in COMMANDS)
