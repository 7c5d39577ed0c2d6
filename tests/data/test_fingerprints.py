"""File identities (size + content fingerprint): the whole of a small file, three chunks of a large one, never a
stale remembered identity."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vjepa_tune.data.fingerprints import CHUNK_BYTES, WHOLE_FILE_BYTES, FileIdentity, file_identities, file_identity


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _random_bytes(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------------------------------------ identities
def test_a_small_file_is_fingerprinted_whole_a_large_one_by_its_start_middle_and_end(tmp_path: Path) -> None:
    small = _write(tmp_path / "small.mp4", _random_bytes(WHOLE_FILE_BYTES, 1))
    assert file_identity(small) == FileIdentity(WHOLE_FILE_BYTES, hashlib.sha256(small.read_bytes()).hexdigest())

    size = 10 * CHUNK_BYTES + 123
    data = _random_bytes(size, 2)
    large = _write(tmp_path / "large.mp4", data)
    middle = (size - CHUNK_BYTES) // 2
    chunks = data[:CHUNK_BYTES] + data[middle : middle + CHUNK_BYTES] + data[-CHUNK_BYTES:]
    assert file_identity(large) == FileIdentity(size, hashlib.sha256(chunks).hexdigest())

    for offset in (0, middle + 5, size - 1):  # a byte changed in any chunk changes the identity
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        assert file_identity(_write(tmp_path / f"changed-{offset}.mp4", bytes(changed))) != file_identity(large)
    between = bytearray(data)  # as documented: bytes between the chunks are not read
    between[CHUNK_BYTES + 10] ^= 0xFF
    assert file_identity(_write(tmp_path / "between.mp4", bytes(between))) == file_identity(large)
    longer = _write(tmp_path / "longer.mp4", data + b"\x00")
    assert file_identity(longer).size == size + 1 and file_identity(longer) != file_identity(large)


def test_a_rewritten_file_gets_its_new_identity_not_a_remembered_one(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.mp4", _random_bytes(1000, 3))
    before = file_identity(path)
    os.utime(path, ns=(1, 1))
    path.write_bytes(_random_bytes(1000, 4))
    assert file_identity(path) != before
    assert file_identity(path).fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_identities_keep_the_order_and_give_none_for_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"{n}.mp4", _random_bytes(100 + n, n)) for n in range(20)]
    paths.insert(5, tmp_path / "missing.mp4")
    found = file_identities(paths, workers=4, progress=False)
    assert found[5] is None
    assert [f.size for f in found if f is not None] == [100 + n for n in range(20)]
