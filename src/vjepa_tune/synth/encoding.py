"""Encoding frames as real video files that decode like the data sets' own: H.264 in MP4/MOV/MKV, MPEG-4 part 2
tagged XVID with B-frames in AVI (UCF-101's files), the bytes depending on the frames alone.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vjepa_tune.errors import BadInput

_CONTAINERS = {
    ".mp4": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".avi": ("avi", "mpeg4"),
}


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 planes stacked as PyAV expects, shape (H * 3 / 2, W).

    Done here rather than by FFmpeg's swscale so that the bytes written depend on the frames alone, not on the
    machine's SIMD paths or the buffers' alignment.
    """
    rgb = frame.astype(np.float32)
    height, width = frame.shape[:2]
    y = 16.0 + rgb @ np.array([0.256788, 0.504129, 0.097906], dtype=np.float32)
    quad = (rgb[0::2, 0::2] + rgb[1::2, 0::2] + rgb[0::2, 1::2] + rgb[1::2, 1::2]) * 0.25
    u = 128.0 + quad @ np.array([-0.148223, -0.290993, 0.439216], dtype=np.float32)
    v = 128.0 + quad @ np.array([0.439216, -0.367788, -0.071427], dtype=np.float32)
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(height * 3 // 2, width)


def write_video(path: Path | str, frames: np.ndarray, fps: int, codec: str | None = None) -> None:
    """Encode (T, H, W, 3) uint8 frames; the file appears whole or not at all (written aside, then renamed).

    The codec follows the extension: .mp4/.mov/.mkv -> H.264 (libx264), .avi -> MPEG-4 part 2 tagged XVID with
    B-frames, as UCF-101's files are. Encoding runs on one thread, so the bytes do not depend on the machine.
    """
    path = Path(path)
    if path.suffix.lower() not in _CONTAINERS:
        raise BadInput(f"cannot write video {path}: extension must be one of {', '.join(_CONTAINERS)}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    container_format, default_codec = _CONTAINERS[path.suffix.lower()]
    codec = codec or default_codec
    height, width = frames.shape[1:3]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with av.open(str(tmp), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.time_base = Fraction(1, fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            context = stream.codec_context
            context.thread_count = 1
            if codec == "libx264":
                # x264's macroblock-tree rate control reads uninitialised memory at some small widths (96 px
                # among them): with it on, the same frames encode to different bytes from run to run.
                stream.options = {"crf": "18", "preset": "veryfast", "x264-params": "mbtree=0"}
            elif codec == "mpeg4":
                context.qscale = True
                context.global_quality = 3 * 118  # qscale 3 in FFmpeg's lambda units (FF_QP2LAMBDA = 118)
                context.max_b_frames = 2
                context.codec_tag = "XVID"
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
                picture.pts = index
                picture.time_base = Fraction(1, fps)
                for packet in stream.encode(picture):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

