"""Writing frames as video files: the codec follows the extension, colours survive, the file appears whole."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.synth import render_clip, write_video


def decode(path: Path) -> tuple[np.ndarray, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.codec_context.name


def test_write_video_picks_the_codec_from_the_extension(tmp_path: Path) -> None:
    frames = render_clip("wave", 1, 4, (32, 32))
    write_video(tmp_path / "a.avi", frames, 25)
    write_video(tmp_path / "a.mp4", frames, 25)
    assert decode(tmp_path / "a.avi")[1] == "mpeg4"
    decoded, codec = decode(tmp_path / "a.mp4")
    assert codec == "h264" and decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 6, "colours survive the YUV conversion"
    with pytest.raises(BadInput, match=r"\.webm"):
        write_video(tmp_path / "a.webm", frames, 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.avi", "a.mp4"], "no temporary file is left"


def test_full_hd_frames_render_and_encode(tmp_path: Path) -> None:
    frames = render_clip("sit_down", 0, 2, (1920, 1080))
    write_video(tmp_path / "hd.mp4", frames, 30)
    decoded, _ = decode(tmp_path / "hd.mp4")
    assert decoded.shape == (2, 1080, 1920, 3)
