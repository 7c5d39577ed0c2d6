"""A command's console output kept in a text file: `train.log` in the run folder, `compare.log`, `evaluate.log`,
`predictions.log` beside predict's `--out`.

One helper instead of a file threaded through every function: while a `ConsoleLog` is open, `sys.stdout` and
`sys.stderr` are wrapped by tees that pass everything to the terminal unchanged and copy each finished line to every
open log. Python warnings and the log records of libraries (transformers, accelerate) reach the file too: warnings
through a `warnings.showwarning` hook, log records because stream handlers writing to the console are pointed at the
tees while a log is open. Progress bars are not copied redraw by redraw: a line is kept as the terminal finally
shows it (the text after its last carriage return), and a redraw that ends blank is dropped.

Captures nest: `compare` keeps the whole comparison in `compare.log` while each of its runs keeps its own part in
the run's `train.log`. A log that no one keeps (a command that failed before it had a folder) is dropped when it
closes. `keep_console_log(path)` is how a command says where its log goes once it knows; outside an open log (the
Python API) it does nothing.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
import threading
import warnings
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

_lock = threading.RLock()
_open_logs: list[ConsoleLog] = []
_state = threading.local()  # .muted: a warning being shown, already copied to the logs


class ConsoleLog:
    """Capture the console from `__enter__` to `__exit__`; `keep(path)` writes what was captured so far and
    everything after it to `path` (appending: a resumed run continues its train.log)."""

    def __init__(self, command_line: str | None = None) -> None:
        self.command_line = command_line
        self.path: Path | None = None
        self._lines: list[str] = []
        self._file: TextIO | None = None
        self._started = datetime.now().astimezone()

    def __enter__(self) -> ConsoleLog:
        with _lock:
            if self.command_line is None:
                self.command_line = _open_logs[0].command_line if _open_logs else _process_command_line()
            if not _open_logs:
                _install()
            _open_logs.append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
                 ) -> None:
        with _lock:
            if len(_open_logs) == 1:
                _uninstall()  # finishes any line still open, into this log too
            _open_logs.remove(self)
            if self._file is not None:
                self._file.close()
                self._file = None

    def keep(self, path: Path) -> None:
        """Write this log to `path` from its start on (appending to what the file holds). A second call for the same
        file changes nothing; one for another file continues there from this point on."""
        path = Path(path)
        with _lock:
            if self.path is not None and self.path == path:
                return
            if self._file is not None:
                self._file.close()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open until the log closes
            if self._file.tell():
                self._file.write("\n")
            stamp = self._started.isoformat(sep=" ", timespec="seconds")
            self._file.write(f"# {stamp}  {self.command_line}\n")
            for line in self._lines:
                self._file.write(line + "\n")
            self._file.flush()
            self._lines = []
            self.path = path

    def _add(self, line: str) -> None:
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        else:
            self._lines.append(line)


def keep_console_log(path: Path) -> None:
    """Keep the innermost open console log in `path` (the command's folder is known now); no-op when none is open."""
    with _lock:
        if _open_logs:
            _open_logs[-1].keep(path)


def _process_command_line() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def _record(line: str) -> None:
    with _lock:
        for log in _open_logs:
            log._add(line)


def _clean(line: str) -> str | None:
    """What the terminal finally shows of a line: the text after its last carriage return, without colour or cursor
    codes; None for a progress bar's redraws that end blank."""
    redrawn = "\r" in line
    if redrawn:
        line = line.rsplit("\r", 1)[1]
    line = _ANSI.sub("", line).rstrip()
    return None if redrawn and not line else line


class _Tee:
    """A console stream that also copies each finished line to the open logs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        if text and not getattr(_state, "muted", False):
            with _lock:
                self._pending += text
                *lines, self._pending = self._pending.split("\n")
                for line in lines:
                    cleaned = _clean(line)
                    if cleaned is not None:
                        _record(cleaned)
        return len(text) if written is None else written

    def finish_line(self) -> None:
        with _lock:
            if self._pending:
                cleaned = _clean(self._pending)
                self._pending = ""
                if cleaned:
                    _record(cleaned)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:  # tqdm draws its bars only on a terminal: ask the real stream
        return self.stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _Installation:
    def __init__(self) -> None:
        self.stdout, self.stderr = _Tee(sys.stdout), _Tee(sys.stderr)
        self.show_warning = warnings.showwarning
        self.tees = [self.stdout, self.stderr]

    def tee_for(self, stream: object) -> _Tee | None:
        """The tee for a console stream a logging handler writes to (the current one, or the process's original
        when something redirected sys.stdout/stderr since); None for any other stream (a file, pytest's)."""
        for tee in self.tees:
            if stream is tee.stream:
                return tee
        if stream is not None and stream in (sys.__stdout__, sys.__stderr__):
            tee = _Tee(stream)  # type: ignore[arg-type]
            self.tees.append(tee)
            return tee
        return None


_installed: _Installation | None = None


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Copy the warning to the logs, then show it as before (pytest's recorder, or stderr), not copying it twice."""
    assert _installed is not None
    for text in warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n").split("\n"):
        _record(text)
    _state.muted = True
    try:
        _installed.show_warning(message, category, filename, lineno, file, line)
    finally:
        _state.muted = False


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def _install() -> None:
    global _installed
    installed = _Installation()
    for handler in _stream_handlers():
        tee = installed.tee_for(handler.stream)
        if tee is not None:
            handler.setStream(tee)  # type: ignore[arg-type]
    sys.stdout, sys.stderr = installed.stdout, installed.stderr  # type: ignore[assignment]
    warnings.showwarning = _show_warning
    _installed = installed


def _uninstall() -> None:
    """Put the console back; handlers made while the log was open (transformers' own, on first import) are pointed
    at the real streams too."""
    global _installed
    installed = _installed
    if installed is None:
        return
    for tee in installed.tees:
        tee.finish_line()
    for handler in _stream_handlers():
        if isinstance(handler.stream, _Tee):
            handler.setStream(handler.stream.stream)
    if sys.stdout is installed.stdout:
        sys.stdout = installed.stdout.stream
    if sys.stderr is installed.stderr:
        sys.stderr = installed.stderr.stream
    if warnings.showwarning is _show_warning:
        warnings.showwarning = installed.show_warning
    _installed = None
