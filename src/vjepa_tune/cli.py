"""The `vjepa-tune` command line: parse, call the Python API, map errors to exit codes.

Spelling: underscores in flags, dots for groups (`--data.root`), comma-separated lists (`--strategies
head_only,lora`) as well as YAML lists, boolean switches bare (`--json`) or with a value (`--cache.enabled false`),
and `--config FILE` for any flag (the command line overrides it). jsonargparse turns the typed dataclasses of
`config/` into flags; `_normalize_argv` adds the two spellings it does not accept natively (bare booleans and comma
lists), working from the parser's own type hints so no flag list is kept by hand.

Every command is in one table, `COMMANDS`: its name, its one-line help, and the functions that build its flags and
run it (this module's own for the commands that call one part, the recipe modules' for the others). A command's
`--help` lists only the flags it uses, and closed sets (strategies, precisions, splits) as choices.

Exit codes: 0 success, 2 bad usage or bad input (one paragraph on stderr, no traceback unless `--debug`), 1 anything
else. Every command runs inside a `ConsoleLog`, which the commands with a folder keep as a file (train.log, ...).
Nothing the table imports loads torch: commands import the heavy parts when they run, so that `cache list`,
`data check`, `synth` and every `--help` start in a fraction of the time.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shlex
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser, Namespace, set_parsing_settings

from vjepa_tune import demo, export
from vjepa_tune.compare import command as compare_command
from vjepa_tune.config import (
    DATA_CLIPS,
    DATA_READING,
    DATA_SPLITTING,
    STRATEGY_NAMES,
    DataConfig,
    LoraConfig,
    TrainConfig,
    data_fields_except,
    from_plain,
    validate,
    validate_data,
)
from vjepa_tune.errors import BadInput
from vjepa_tune.features import command as features_command
from vjepa_tune.inference import commands as inference_commands
from vjepa_tune.pretraining import command as pretrain_command
from vjepa_tune.runs.folder import training_videos
from vjepa_tune.tracking.console_log import ConsoleLog
from vjepa_tune.training.store import cache_clear, cache_list, format_bytes, format_cache_list

set_parsing_settings(docstring_parse_attribute_docstrings=True)


@dataclass(frozen=True)
class Command:
    """One command: how to build its parser and what to run with the parsed namespace."""

    name: str
    help: str
    build: Callable[[ArgumentParser], None]
    run: Callable[[Namespace], int | None]


def _parser(prog: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False, default_env=False)
    parser.add_argument("--config", action="config", help="YAML file setting any flag; the command line overrides it.")
    return parser


def _typehint(action: argparse.Action) -> Any:
    return getattr(action, "_typehint", None)


def _is_bool(hint: Any) -> bool:
    if hint is bool:
        return True
    args = typing.get_args(hint)
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return is_union and bool in args and all(a in (bool, type(None)) for a in args)


def _is_list(hint: Any) -> bool:
    if typing.get_origin(hint) is list:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(typing.get_origin(a) is list for a in typing.get_args(hint))
    return False


def _normalize_argv(parser: ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Rewrite bare booleans to `--flag true` and `a,b,c` to `[a,b,c]` for list-typed flags."""
    kinds: dict[str, str] = {}
    for action in parser._actions:
        hint = _typehint(action)
        kind = "bool" if _is_bool(hint) else "list" if _is_list(hint) else None
        if kind:
            for option in action.option_strings:
                kinds[option] = kind
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        token = items[i]
        flag, eq, inline = token.partition("=")
        kind = kinds.get(flag) if token.startswith("--") else None
        if kind == "bool" and not eq:
            nxt = items[i + 1] if i + 1 < len(items) else None
            values = {"true", "false", "null", "1", "0", "yes", "no"}
            if nxt is None or nxt.startswith("--") or nxt.lower() not in values:
                out += [flag, "true"]
                i += 1
                continue
        if kind == "list":
            if eq:
                value, step = inline, 1
            elif i + 1 < len(items):
                value, step = items[i + 1], 2
            else:
                out.append(token)
                i += 1
                continue
            if not value.lstrip().startswith("["):
                value = "[" + ",".join(v.strip() for v in value.split(",") if v.strip()) + "]"
            out += [flag, value]
            i += step
            continue
        out.append(token)
        i += 1
    return out


# --------------------------------------------------------------------------------------------- synth
def _build_synth(p: ArgumentParser) -> None:
    from vjepa_tune.synth import LAYOUTS  # here: the other commands start without PyAV and numpy

    p.add_argument("out_dir", type=Path, help="Folder to write the data set into.")
    p.add_argument("--layout", type=Literal[LAYOUTS], default="folder", help="How the files are laid out and named.")
    p.add_argument("--videos_per_class", type=int, default=50, help="Video files per class.")
    p.add_argument("--size", type=str, default="96", help="Frame size: PX (square) or WxH, e.g. 320x240.")
    p.add_argument("--frames", type=int, default=32, help="Frames per video.")
    p.add_argument("--fps", type=int, default=25, help="Frames per second.")
    p.add_argument("--seed", type=int, default=0, help="Seed of every random draw; same seed, same videos.")
    p.add_argument("--variety", type=float, default=1.0,
                   help="Visual variety from 0 (large, centred, thick figures on flat backgrounds, still camera) "
                        "to 1 (small, off-centre, thin figures, textures, camera shake). For the bundled "
                        "`--model tiny` use the demo's data: --variety 0 --videos_per_class 40 --size 64 (then "
                        "train 5 epochs with --data.crop_scale 1,1); at 1, tiny trains to chance accuracy.")
    p.add_argument("--workers", type=int | None, default=None, help="Encoding processes (default: CPU count).")
    p.add_argument("--long", type=int | None, default=None,
                   help="Write this many long videos instead, each one performer doing --actions actions with idle "
                        "stretches between them, as OUT_DIR/videos/long_NNNN.mp4, and their ground truth as "
                        "OUT_DIR/annotations.json (ActivityNet/THUMOS layout) for `evaluate --detection`; --frames "
                        "is then the length of the clip each action is drawn in.")
    p.add_argument("--actions", type=int, default=12, help="With --long: actions per video.")
    p.add_argument("--idle", type=list[float], default=[0.5, 3.0],
                   help="With --long: shortest and longest idle stretch before each action (seconds).")


def _run_synth(a: Namespace) -> int:
    from vjepa_tune.synth import parse_size, synthesize, synthesize_long  # here: the others start without PyAV

    if a.long is not None:
        if a.layout != "folder" or a.videos_per_class != 50:
            raise BadInput("--long writes videos of its own layout (videos/long_NNNN.mp4): leave --layout and "
                           "--videos_per_class out.")
        print(synthesize_long(Path(a.out_dir), videos=a.long, actions=a.actions, idle_s=a.idle,
                              size=parse_size(a.size), frames=a.frames, fps=a.fps, seed=a.seed, variety=a.variety,
                              workers=a.workers).describe())
        return 0
    if a.actions != 12 or a.idle != [0.5, 3.0]:
        raise BadInput("--actions and --idle describe long videos: give --long N too.")
    summary = synthesize(Path(a.out_dir), layout=a.layout, videos_per_class=a.videos_per_class,
                         size=parse_size(a.size), frames=a.frames, fps=a.fps, seed=a.seed, variety=a.variety,
                         workers=a.workers)
    print(summary.describe())
    return 0


# --------------------------------------------------------------------------------------------- data
def _build_data_check(p: ArgumentParser) -> None:
    p.add_class_arguments(DataConfig, "data", sub_configs=True,
                          skip=data_fields_except(DATA_READING, DATA_SPLITTING, DATA_CLIPS))
    p.add_argument("--seed", type=int, default=42, help="Seed of the split (as in train).")
    p.add_argument("--workers", type=int, default=2, help="Threads probing videos.")
    p.add_argument("--json", type=bool, default=False, help="Print the report as JSON.")
    p.add_argument(
        "--against",
        type=Path | None,
        default=None,
        help="A trained run folder: also say how many of these videos it saw in training (by path, or a copy of "
        "one: same size and content fingerprint).",
    )


def _run_data_check(a: Namespace) -> int:
    from vjepa_tune.data.check import check_dataset, format_report  # here: the other commands start without PyAV

    data = validate_data(_data(a))
    against = training_videos(a.against) if a.against is not None else None
    report = check_dataset(data, seed=a.seed, workers=a.workers, against=against)
    print(json.dumps(report, indent=2) if a.json else format_report(report))
    return 0


def _build_data_prepare(p: ArgumentParser) -> None:
    p.add_class_arguments(DataConfig, "data", sub_configs=True, skip=data_fields_except(DATA_READING))
    p.add_argument("--out", type=Path, required=True, help="Folder for the transcoded copy (a drop-in --data.root).")
    p.add_argument("--short_side", type=int, default=320, help="Short side of the transcoded videos in pixels.")
    p.add_argument("--workers", type=int | None, default=None, help="Parallel transcodes (default: CPU count).")


def _run_data_prepare(a: Namespace) -> int:
    from vjepa_tune.data.prepare import prepare_dataset  # here: the other commands start without PyAV

    summary = prepare_dataset(_data(a), Path(a.out), short_side=a.short_side, workers=a.workers)
    print(summary.describe())
    return 0


def _data(a: Namespace) -> DataConfig:
    """The `--data.*` flags as a `DataConfig` (those a command leaves off keep their defaults)."""
    return from_plain(DataConfig, a.as_dict().get("data") or {})


# --------------------------------------------------------------------------------------------- info
def _build_info(p: ArgumentParser) -> None:
    p.add_argument("--model", type=str, default="random:vitl", help="Model spec (see `train --help`).")
    p.add_argument("--strategy", type=Literal[("all", *STRATEGY_NAMES)], default="all",
                   help="Strategy whose trainable set to count; all: a table of every strategy.")
    p.add_argument("--num_labels", type=int, default=4, help="Number of classes of the classifier.")
    p.add_class_arguments(LoraConfig, "lora", sub_configs=True)
    p.add_argument("--json", type=bool, default=False, help="Print JSON.")


def _run_info(a: Namespace) -> int:
    # here, not at the top: the command line starts without torch
    from vjepa_tune.models.info import all_strategies_info, format_info, format_strategies, model_info

    if a.num_labels < 1:
        raise BadInput(f"--num_labels must be >= 1, got {a.num_labels}.")
    lora = from_plain(LoraConfig, a.as_dict().get("lora") or {})
    if a.strategy == "all":
        infos = all_strategies_info(a.model, a.num_labels, lora)
        print(json.dumps(infos, indent=2) if a.json else format_strategies(infos))
    else:
        info = model_info(a.model, a.strategy, a.num_labels, lora)
        print(json.dumps(info, indent=2) if a.json else format_info(info))
    return 0


# --------------------------------------------------------------------------------------------- train
def _build_train(p: ArgumentParser) -> None:
    p.add_class_arguments(TrainConfig, sub_configs=True)
    p.add_argument(
        "--resume",
        type=str | None,
        default=None,
        help="auto: continue the newest unfinished run in --out; or the path of a run folder to continue.",
    )


def _run_train(a: Namespace) -> int:
    from vjepa_tune.training.recipe import train  # here: `train --help` and the other commands start without torch

    values = {k: v for k, v in a.as_dict().items() if k not in {"config", "resume", "__path__"}}
    result = train(validate(from_plain(TrainConfig, values)), resume=a.resume)
    print(result.summary())
    return 0


# --------------------------------------------------------------------------------------------- cache
def _build_cache(p: ArgumentParser) -> None:
    p.add_argument("action", type=Literal["list", "clear"],
                   help="list: each model's stored features, their count and size; clear: delete them all.")
    p.add_argument("--cache.dir", type=Path | None, default=None, help="Store folder (default: the usual place).")
    p.add_argument("--json", type=bool, default=False, help="Print JSON (list).")


def _run_cache(a: Namespace) -> int:
    directory = (a.as_dict().get("cache") or {}).get("dir")
    directory = Path(directory) if directory else None
    if a.action == "list":
        entries = cache_list(directory)
        print(json.dumps(entries, indent=2) if a.json else format_cache_list(entries))
    else:  # "clear": the parser accepts no other action
        freed = cache_clear(directory)
        print(f"cleared the feature store: {format_bytes(freed)} freed")
    return 0


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("synth", "Write a synthetic action data set of real encoded videos.", _build_synth, _run_synth),
        Command("data check", "Count, probe and check a data set and its splits for leaks.", _build_data_check,
                _run_data_check),
        Command("data prepare", "Transcode a data set once to H.264 MP4 at a smaller size.", _build_data_prepare,
                _run_data_prepare),
        Command("info", "Trainable and total parameters of a model under a strategy.", _build_info, _run_info),
        Command("train", "Fine-tune a model with one strategy.", _build_train, _run_train),
        Command("compare", "Train a grid of strategies, sizes and hyperparameters; write a report.",
                compare_command.build, compare_command.run),
        Command("pretrain", "Continue a model's V-JEPA self-supervised pretraining on unlabelled videos.",
                pretrain_command.build, pretrain_command.run),
        Command("evaluate", "Score a trained run on its validation or test split, another data set, or as a detector.",
                inference_commands.build_evaluate, inference_commands.run_evaluate),
        Command("predict", "Label videos with a trained run, whole or window by window.",
                inference_commands.build_predict, inference_commands.run_predict),
        Command("export", "Write a run's model as a Hugging Face directory or a peft adapter.", export.build,
                export.run),
        Command("features", "Write window features of videos (one array per video) for detection tools such as "
                "ActionFormer.", features_command.build, features_command.run),
        Command("cache", "List or clear the backbone feature store.", _build_cache, _run_cache),
        Command("demo", "Run the guide's four strategies on the bundled tiny model and synthetic videos.", demo.build,
                demo.run),
    )
}
"""Every command, in one table: each names the functions that build its flags and run it."""


_NOT_A_CHOICE = (
    re.compile(r'Parser key "(?P<key>[^"]+)":\s*Expected a typing\.Literal\[(?P<choices>[^\]]*)\]\. '
               r"Got value: (?P<value>.*)$", re.DOTALL),
    re.compile(r'Parser key "(?P<key>[^"]+)":.*Subtypes: \[typing\.Literal\[(?P<choices>[^\]]*)\].*'
               r"Given value: (?P<value>.*)$", re.DOTALL),
)
"""How jsonargparse refuses a value outside a `Literal` (alone, or in a union with None)."""


def _error_text(exc: BaseException, parser: ArgumentParser) -> str:
    """The one-paragraph message of a refused command line; a value outside a closed set is said as
    `--strategy 'full' is not one of head_only, pooler_and_head, ...`, not in the parser's words."""
    message = str(exc).strip()
    for pattern in _NOT_A_CHOICE:
        if (found := pattern.search(message)) is not None:
            choices = ast.literal_eval(f"[{found['choices']}]")
            value = found["value"].strip()
            shown = repr(value) if any(isinstance(choice, str) for choice in choices) else value
            positional = any(a.dest == found["key"] and not a.option_strings for a in parser._actions)
            name = found["key"] if positional else f"--{found['key']}"
            return f"{name} {shown} is not one of {', '.join(map(str, choices))}."
    return message.replace("\n", " ")


def _command_lines(names: Sequence[str]) -> str:
    width = max(len(n) for n in names)
    return "\n".join(f"  {name:<{width}}  {COMMANDS[name].help}" for name in sorted(names))


def _usage() -> str:
    return (
        "usage: vjepa-tune COMMAND [flags]   (vjepa-tune COMMAND --help for its flags)\n\n"
        "Fine-tune V-JEPA 2 video models for action recognition.\n\ncommands:\n" + _command_lines(list(COMMANDS))
        + "\n\nglobal flags: --debug (show tracebacks)"
    )


def _group(name: str) -> list[str]:
    """The commands of group `name` (`data` -> data check, data prepare); [] when it is not a group."""
    return [command for command in COMMANDS if command.startswith(f"{name} ")]


def _group_usage(group: str) -> str:
    return (
        f"usage: vjepa-tune {group} COMMAND [flags]   (vjepa-tune {group} COMMAND --help for its flags)\n\n"
        f"commands:\n{_command_lines(_group(group))}"
    )


def _find_command(argv: list[str]) -> tuple[Command | None, list[str]]:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return COMMANDS[f"{argv[0]} {argv[1]}"], argv[2:]
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]], argv[1:]
    return None, argv


def _answer_without_command(args: list[str]) -> int:
    """No command matched: the overview for nothing or --help, a group's commands for `data` or `data --help`,
    else "unknown command" with exit code 2."""
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if _group(args[0]):
        if len(args) == 1 or args[1] in {"-h", "--help"}:
            print(_group_usage(args[0]))
            return 0
        print(f"vjepa-tune: unknown command {' '.join(args[:2])!r}\n\n{_group_usage(args[0])}", file=sys.stderr)
        return 2
    print(f"vjepa-tune: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `vjepa-tune`; returns the exit code (the console script exits with it)."""
    given = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in given
    args = [a for a in given if a != "--debug"]
    command, rest = _find_command(args)
    if command is None:
        return _answer_without_command(args)
    parser = _parser(f"vjepa-tune {command.name}", command.help)
    command.build(parser)
    # The console from here on, errors included, goes to the command's log file once it names one (train.log, ...).
    with ConsoleLog(command_line=shlex.join(["vjepa-tune", *given])):
        try:
            namespace = parser.parse_args(_normalize_argv(parser, rest))
            return int(command.run(namespace) or 0)
        except SystemExit as exc:  # --help and --print_config exit 0 through argparse
            return int(exc.code or 0)
        except (BadInput, argparse.ArgumentError) as exc:
            if debug:
                raise
            print(f"vjepa-tune {command.name}: error: {_error_text(exc, parser)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"vjepa-tune {command.name}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - the last resort maps to exit code 1
            if debug:
                raise
            print(f"vjepa-tune {command.name}: failed: {type(exc).__name__}: {exc} (rerun with --debug for the "
                  "traceback)", file=sys.stderr)
            return 1
        finally:
            _end_process_group()


def _end_process_group() -> None:
    """Tear down the process group torchrun or accelerate started, once the command is done. Left to the
    interpreter's exit, gloo's threads can abort a finished process ("terminate called without an active
    exception", exit code -6), which failed a two-process test now and then."""
    dist = sys.modules.get("torch.distributed")  # never imported for --help and the like: nothing to end
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
