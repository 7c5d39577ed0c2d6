"""Files and folders written all or nothing, with the permissions the umask gives, as any program's output.

Everything the tool writes that must never be seen half-written (records, checkpoints, stored features, exports)
goes through here: a file is written beside its destination under a hidden name and renamed into place; a folder
is filled beside its destination and renamed into place. `tempfile.mkstemp` and `mkdtemp` would make them `0600`
and `0700`, which a serving container or a colleague running as another user cannot read; and some writers
(safetensors' `save_file`) make their files `0600` themselves. So the aside file or folder is created with the
mode the umask gives (the kernel applies it, nothing is guessed), and whatever a writer left is set back to it
before the rename.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import yaml

_ATTEMPTS = 100


def _aside_name(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _create_aside_file(target: Path) -> tuple[Path, int]:
    """A new empty file beside `target`, created as `open(..., "w")` creates files; (its path, its mode)."""
    for _ in range(_ATTEMPTS):
        aside = _aside_name(target, ".tmp")
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return aside, mode
    raise FileExistsError(f"could not find a free temporary name beside {target}")


def write_atomic(path: str | Path, write: Callable[[Path], None], *, durable: bool = False) -> Path:
    """Write `path` through `write(aside_path)` and rename it into place: all or nothing, umask permissions.

    `write` may write the aside file in place or replace it (as safetensors does). With `durable` the data is on
    disk before the rename, so a power cut leaves the old file or the new one, never an empty one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside, mode = _create_aside_file(path)
    try:
        write(aside)
        if stat.S_IMODE(aside.stat().st_mode) != mode:
            os.chmod(aside, mode)
        if durable:
            with open(aside, "rb") as f:
                os.fsync(f.fileno())
        os.replace(aside, path)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = False) -> Path:
    """`data` into `path`, all or nothing (see `write_atomic`)."""
    return write_atomic(path, lambda aside: aside.write_bytes(data), durable=durable)


def write_text_atomic(path: str | Path, text: str, *, durable: bool = True) -> Path:
    """`text` (UTF-8, `\\n` line ends) into `path`, all or nothing and on disk before it replaces the old file."""
    return write_atomic(path, lambda aside: aside.write_bytes(text.encode("utf-8")), durable=durable)


def write_json_atomic(path: str | Path, obj: object) -> Path:
    """Strict JSON that any parser reads: NaN and infinities become null; paths, numpy/torch scalars plain."""
    text = json.dumps(_plain(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def write_yaml_atomic(path: str | Path, obj: object, header: str | None = None) -> Path:
    """Block-style YAML in the given key order; `header` (one or more lines) is written first as comments."""
    text = yaml.safe_dump(_plain(obj), sort_keys=False, default_flow_style=False, allow_unicode=True)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    return write_text_atomic(path, text)


def _plain(obj: object) -> object:
    """`obj` as the plain values JSON and YAML hold (dicts with string keys, lists, str, int, float, bool, None)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "ndim", 0) == 0:
        return _plain(item())  # numpy scalars and 0-d torch tensors
    raise TypeError(f"cannot write a value of type {type(obj).__name__} to JSON/YAML: {obj!r}")


def _set_tree_modes(folder: Path, folder_mode: int) -> None:
    """Give everything under `folder` the modes the umask gives: `folder_mode` for folders, the same without
    execute bits for files (files that were executable keep them)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), folder_mode)
        for name in filenames:
            file = os.path.join(dirpath, name)
            if os.path.islink(file):
                continue
            executable = os.stat(file).st_mode & 0o111
            os.chmod(file, folder_mode if executable else folder_mode & 0o666)


@contextlib.contextmanager
def staged_folder(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """A hidden folder beside `target` to fill; when the block ends without error it is moved to `target`
    (replacing an existing `target` only with `replace`), with everything in it given the umask's permissions.
    On error it is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        staging = _aside_name(target, ".tmp")
        try:
            staging.mkdir(mode=0o777)  # the umask applies, as for any mkdir
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not find a free temporary name beside {target}")
    try:
        yield staging
        _set_tree_modes(staging, stat.S_IMODE(staging.stat().st_mode))
        if target.exists():
            if not replace:
                raise FileExistsError(f"{target} appeared while it was being written")
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def replace_folder(source: str | Path, target: str | Path) -> Path:
    """Move the finished folder `source` to `target` (same file system), replacing what `target` held: the old
    folder is renamed aside first and removed last, so `target` never holds a mix of the two (for a moment it is
    absent, and a failed move puts the old one back)."""
    source, target = Path(source), Path(target)
    aside = _aside_name(target, ".old") if target.exists() else None
    if aside is not None:
        target.rename(aside)
    try:
        source.rename(target)
    except BaseException:
        if aside is not None:
            aside.rename(target)
        raise
    if aside is not None:
        shutil.rmtree(aside)
    return target
class BackgroundWrites:
    """Runs writes on background threads, so the disk works while the caller computes what comes next.

    At most `limit` writes wait (their data held in memory); a failed write is raised in the caller's thread at the
    next `submit` or at `close`, and `close` returns only once every write is done. Used as a `with` block, an error
    that stops the caller is the one reported: what still waits is dropped, and no write error is raised over it.
    """

    def __init__(self, threads: int = 4, limit: int = 64, name: str = "background-writer"):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.waiting: deque[Future] = deque()
        self.limit = limit

    def submit(self, write: Callable[[], object]) -> None:
        while len(self.waiting) >= self.limit or (self.waiting and self.waiting[0].done()):
            self.waiting.popleft().result()
        self.waiting.append(self.pool.submit(write))

    def close(self) -> None:
        try:
            while self.waiting:
                self.waiting.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *rest: object) -> None:
        if error_type is None:
            self.close()
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)
