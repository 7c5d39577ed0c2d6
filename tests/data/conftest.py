"""Small real video files whose frames show their own number, written with PyAV into tmp_path.

Frame i shows i as a 4x4 grid of black/white blocks (16 bits), which survives lossy coding, so a test can read
back exactly which frame it was given. Encoder settings mirror the data sets' formats: H.264 with B-frames
(NTU: in AVI), MPEG-4 Part 2 with B-frames in AVI (UCF-101's XviD).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vjepa_tune.data import decoding

_X264 = {"crf": "10", "x264-params": "bframes=3:b-adapt=0:keyint=25:min-keyint=25:scenecut=0"}
VIDEO_KINDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mp4-h264": ("mp4", "libx264", _X264),
    "avi-h264": ("avi", "libx264", _X264),
    "avi-mpeg4": ("avi", "mpeg4", {"qscale": "1", "bf": "2", "g": "25"}),
    "mkv-h264": ("mkv", "libx264", _X264),
}


def pattern_frame(number: int, height: int = 64, width: int = 64) -> np.ndarray:
    """An RGB frame showing `number` as 16 black/white blocks."""
    frame = np.zeros((height, width, 3), np.uint8)
    bh, bw = height // 4, width // 4
    for bit in range(16):
        if number >> bit & 1:
            row, col = divmod(bit, 4)
            frame[row * bh : (row + 1) * bh, col * bw : (col + 1) * bw] = 255
    return frame


def read_pattern(frame: np.ndarray) -> int:
    """The number a decoded `pattern_frame` shows (block centres, thresholded)."""
    frame = np.asarray(frame)
    bh, bw = frame.shape[0] // 4, frame.shape[1] // 4
    number = 0
    for bit in range(16):
        row, col = divmod(bit, 4)
        block = frame[
            row * bh + bh // 4 : (row + 1) * bh - bh // 4, col * bw + bw // 4 : (col + 1) * bw - bw // 4
        ]
        number |= int(block.mean() > 127) << bit
    return number


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    fps: int = 25,
    pix_fmt: str = "yuv420p",
    times_ms: Sequence[int] | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
) -> Path:
    """Encode frames (H, W, 3 RGB or H, W gray); `times_ms` gives each frame its own timestamp (VFR), or `pts` in
    `time_base` (default 1 / fps): AVI stores a time base of 1/15 as a nominal 15 fps, and a gap as skipped frames,
    as cameras write variable-rate AVI."""
    height, width = frames[0].shape[:2]
    if times_ms is not None:
        pts, time_base = times_ms, Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts is not None:
            time_base = time_base or Fraction(1, fps)
            stream.time_base = stream.codec_context.time_base = time_base
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="gray" if array.ndim == 2 else "rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """make_video(name, num_frames, kind="mp4-h264", size=(64, 64), times_ms=None, fps=25, pts=None,
    time_base=None) -> numbered video path (`name` may hold folders: they are made)."""

    def make(
        name: str,
        num_frames: int,
        kind: str = "mp4-h264",
        size: tuple[int, int] = (64, 64),
        times_ms: Sequence[int] | None = None,
        fps: int = 25,
        pts: Sequence[int] | None = None,
        time_base: Fraction | None = None,
    ) -> Path:
        ext, codec, options = VIDEO_KINDS[kind]
        frames = [pattern_frame(i, *size) for i in range(num_frames)]
        path = tmp_path / f"{name}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_video(
            path, frames, codec=codec, options=options, fps=fps, times_ms=times_ms, pts=pts, time_base=time_base
        )

    return make


@pytest.fixture
def pattern_number() -> Callable[[np.ndarray], int]:
    return read_pattern


@pytest.fixture
def encode_video() -> Callable[..., Path]:
    """`write_video` for tests that need their own frames or encoder."""
    return write_video


@pytest.fixture
def count_decoded(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts frames pulled out of the decoder by `data.decoding` (probing must pull none)."""
    counter = {"frames": 0}
    original = decoding.decode_packets

    def counting(packets):
        for frame in original(packets):
            counter["frames"] += 1
            yield frame

    monkeypatch.setattr(decoding, "decode_packets", counting)
    return counter
