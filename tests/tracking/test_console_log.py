"""ConsoleLog: what a command shows on the console, warnings and library log records included, kept in a file."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from pathlib import Path

import pytest

from vjepa_tune.tracking.console_log import ConsoleLog, keep_console_log


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_the_file_starts_with_the_command_line_and_holds_what_came_before_and_after_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run" / "train.log"
    with ConsoleLog(command_line="vjepa-tune train --strategy lora"):
        print("data: 24 videos in 4 classes")
        print("a message on stderr", file=sys.stderr)
        keep_console_log(log_file)
        print("epoch 1/1: train loss 1.3863, val acc 0.2500 (best)")
        sys.stdout.write("no newline at the end")
    header, *rest = _lines(log_file)
    assert header.startswith("# 20") and header.endswith("  vjepa-tune train --strategy lora")
    assert rest == ["data: 24 videos in 4 classes", "a message on stderr",
                    "epoch 1/1: train loss 1.3863, val acc 0.2500 (best)", "no newline at the end"]
    captured = capsys.readouterr()  # the console saw everything, unchanged
    assert captured.out == ("data: 24 videos in 4 classes\nepoch 1/1: train loss 1.3863, val acc 0.2500 (best)\n"
                            "no newline at the end")
    assert captured.err == "a message on stderr\n"


def test_a_log_no_one_keeps_writes_nothing_and_the_console_is_given_back(tmp_path: Path) -> None:
    stdout, stderr, show = sys.stdout, sys.stderr, warnings.showwarning
    with ConsoleLog(command_line="vjepa-tune train"):
        print("failed before the run folder existed")
    assert list(tmp_path.iterdir()) == []
    assert (sys.stdout, sys.stderr, warnings.showwarning) == (stdout, stderr, show)
    keep_console_log(tmp_path / "outside.log")  # the Python API: no log is open, nothing is written
    assert not (tmp_path / "outside.log").exists()


def test_a_python_warning_is_kept_once(tmp_path: Path) -> None:
    log_file = tmp_path / "evaluate.log"
    with ConsoleLog(command_line="vjepa-tune evaluate run"), warnings.catch_warnings():
        warnings.simplefilter("always")
        keep_console_log(log_file)
        warnings.warn("the run was trained without flips", UserWarning, stacklevel=1)
    lines = _lines(log_file)
    assert sum("UserWarning: the run was trained without flips" in line for line in lines) == 1


def test_log_records_of_libraries_reach_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers logs through its own handler on the console (made before the log opened, or on its first
    import while it is open); accelerate's records, with no handler anywhere, fall to logging's last resort."""
    before = logging.getLogger("vjepa_tune.test.transformers_like")
    before.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    before.addHandler(handler)
    monkeypatch.setattr(logging.root, "handlers", [])  # pytest's own capture handler, out of the way
    log_file = tmp_path / "train.log"
    try:
        with ConsoleLog(command_line="vjepa-tune train"):
            keep_console_log(log_file)
            before.warning("Some weights were not initialized")
            during = logging.getLogger("vjepa_tune.test.made_during")
            during.propagate = False
            during.addHandler(logging.StreamHandler())  # binds sys.stderr as it is now
            during.warning("made while the log was open")
            logging.getLogger("vjepa_tune.test.accelerate_like").warning("no handler anywhere")
        assert handler.stream is sys.stderr and during.handlers[0].stream is sys.stderr  # given back
    finally:
        before.removeHandler(handler)
        logging.getLogger("vjepa_tune.test.made_during").handlers.clear()
    lines = _lines(log_file)
    for text in ("Some weights were not initialized", "made while the log was open", "no handler anywhere"):
        assert text in lines


def test_progress_bar_redraws_keep_only_what_the_terminal_finally_shows(tmp_path: Path) -> None:
    log_file = tmp_path / "train.log"
    with ConsoleLog(command_line="vjepa-tune train"):
        keep_console_log(log_file)
        sys.stderr.write("\rprobing videos:   0%|          | 0/8")
        sys.stderr.write("\rprobing videos: 100%|██████████| 8/8\n")
        sys.stderr.write("\repoch 1/2:  50%|█████     | 8/16")
        sys.stderr.write("\r\x1b[2K\r")  # a bar with leave=False clears its line
        sys.stderr.write("a warning after the bar\n")
    assert _lines(log_file)[1:] == ["probing videos: 100%|██████████| 8/8", "a warning after the bar"]


def test_nested_logs_keep_their_own_part_and_the_outer_one_everything(tmp_path: Path) -> None:
    """compare keeps compare.log, each of its runs its own train.log."""
    with ConsoleLog(command_line="vjepa-tune compare"):
        keep_console_log(tmp_path / "compare.log")
        print("compare: new comparison")
        with ConsoleLog():
            print("[1/1] lora: training")
            keep_console_log(tmp_path / "lora" / "train.log")
            print("epoch 1/1")
        print("report: report.md")
    assert _lines(tmp_path / "compare.log")[1:] == [
        "compare: new comparison", "[1/1] lora: training", "epoch 1/1", "report: report.md"]
    run_log = _lines(tmp_path / "lora" / "train.log")
    assert run_log[0].endswith("  vjepa-tune compare") and run_log[1:] == ["[1/1] lora: training", "epoch 1/1"]


def test_a_second_command_appends_to_the_same_file(tmp_path: Path) -> None:
    log_file = tmp_path / "train.log"
    for command, line in (("vjepa-tune train", "epoch 1/2"), ("vjepa-tune train --resume auto", "epoch 2/2")):
        with ConsoleLog(command_line=command):
            keep_console_log(log_file)
            print(line)
    lines = _lines(log_file)
    assert [line for line in lines if line.startswith("# ")][1].endswith("vjepa-tune train --resume auto")
    assert lines[1] == "epoch 1/2" and lines[2] == "" and lines[4] == "epoch 2/2"


def test_the_tee_answers_isatty_as_the_console_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """tqdm draws bars only on a terminal: it must still see one through the tee."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with ConsoleLog(command_line="x"):
        assert sys.stderr is not terminal and sys.stderr.isatty()
        sys.stderr.write("shown\n")
    assert sys.stderr is terminal and terminal.getvalue() == "shown\n"
