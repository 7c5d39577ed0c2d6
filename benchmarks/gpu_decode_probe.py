"""Can PyAV's bundled FFmpeg decode on the GPU here, and does it give the frames the CPU decoder gives?

    python benchmarks/gpu_decode_probe.py [--work DIR] [--size 128x128] [--frames 40] [--timing_size 568x320]
        [--timing_frames 64] [--timing_videos 4] [--repeats 3] [--out decode_probe.json] [--markdown decode_probe.md]

Sources are made here the way the test suite makes its B-frame videos (tests/data/conftest.py): frame i shows the
number i as 16 black or white blocks, encoded as H.264 with 3 B-frames in MP4, AVI and Matroska and as MPEG-4 Part 2
with 2 B-frames in AVI (UCF-101's XviD); and, for colour, the first of the timing videos below (a stick figure on a
textured background, as the grid's videos). The reference is the CPU decoder as `data.decoding` runs it: every frame
in presentation order, converted to RGB by FFmpeg. Each method decodes every frame of every source, and is trusted
only if it gives the same frames in the same order (the number each shows; for the colour video, each frame has
fewer pixels far from its own reference frame than from the reference's neighbours), at the same times (pts x time
base), with pixels within `PIXEL_TOLERANCE` of the reference (colour conversion differs between paths):

- `cpu threaded (control)`: the CPU decoder with frame threads: must be exact, or the comparison is broken;
- `cpu nv12 + torch colour (control)`: CPU frames as NV12 (what NVDEC returns), converted to RGB by this script's
  torch code (BT.601, limited range, nearest chroma): the tolerance must hold for it, or the conversion is wrong;
- `cuda hwaccel, downloaded`: `av.open(..., hwaccel=HWAccel("cuda", allow_software_fallback=False))`, frames copied
  back to host memory and converted by FFmpeg;
- `cuda hwaccel, on the GPU`: the same with `is_hw_owned=True`, frames read through DLPack as CUDA tensors and
  converted by the torch code on the GPU (what a GPU decoding path in the toolkit would do);
- `cuvid decoder`: FFmpeg's `h264_cuvid` / `mpeg4_cuvid` decoders fed the demuxed packets.

Then time per video for the grid's kind of video (stick-figure videos synthesized at `--timing_size`, every frame to
RGB): the CPU decoder single-threaded (as one of 14 DataLoader workers on 16 cores decodes) and threaded, and every
GPU method that passed. Without CUDA the GPU methods are reported as skipped ("no CUDA") and the controls still run.
Results go to `--out` after every method.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_throughput beside this file
from gpu_throughput import describe_environment, environment, write_json_atomic  # noqa: E402

PIXEL_TOLERANCE = {"mean_abs": 2.0, "p99_abs": 12.0}
"""Per frame, on the 0-255 RGB scale: a colour conversion that differs from FFmpeg's in rounding and chroma
interpolation stays well inside these; a wrong frame, a colour matrix for the wrong standard or swapped chroma does
not. The controls show where a correct path lands."""
X264 = {"crf": "10", "x264-params": "bframes=3:b-adapt=0:keyint=25:min-keyint=25:scenecut=0"}
SOURCES: dict[str, tuple[str, str, dict[str, str]]] = {
    "mp4-h264": ("mp4", "libx264", X264),
    "avi-h264": ("avi", "libx264", X264),
    "mkv-h264": ("mkv", "libx264", X264),
    "avi-mpeg4": ("avi", "mpeg4", {"qscale": "1", "bf": "2", "g": "25"}),
}
COLOUR_SOURCE = "stick-figure mp4 (colour)"
CUVID = {"h264": "h264_cuvid", "mpeg4": "mpeg4_cuvid", "hevc": "hevc_cuvid", "vp9": "vp9_cuvid",
         "av1": "av1_cuvid"}


# ------------------------------------------------------------------------------------------------ sources
def pattern_frame(number: int, height: int, width: int) -> np.ndarray:
    """An RGB frame showing `number` as 16 black/white blocks (tests/data/conftest.py)."""
    frame = np.zeros((height, width, 3), np.uint8)
    bh, bw = height // 4, width // 4
    for bit in range(16):
        if number >> bit & 1:
            row, col = divmod(bit, 4)
            frame[row * bh : (row + 1) * bh, col * bw : (col + 1) * bw] = 255
    return frame


def read_pattern(frame: np.ndarray) -> int:
    """The number a decoded `pattern_frame` shows (block centres, thresholded)."""
    bh, bw = frame.shape[0] // 4, frame.shape[1] // 4
    number = 0
    for bit in range(16):
        row, col = divmod(bit, 4)
        block = frame[row * bh + bh // 4 : (row + 1) * bh - bh // 4, col * bw + bw // 4 : (col + 1) * bw - bw // 4]
        number |= int(block.mean() > 127) << bit
    return number


def write_source(path: Path, codec: str, options: dict[str, str], frames: int, size: tuple[int, int]) -> Path:
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pattern_frame(i, height, width), format="rgb24")))
        container.mux(stream.encode())
    return path


# ------------------------------------------------------------------------------------------------ decoding
@dataclass
class Decoded:
    """Every frame of one video in output order: RGB pixels and times in seconds."""

    rgb: list[np.ndarray]
    times: list[float | None]


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 RGB from NV12 planes (Y: H x W, UV: H/2 x W/2 x 2), BT.601 limited range as FFmpeg converts
    untagged video, chroma repeated over each 2 x 2 block; on whatever device the planes are."""
    luma = (y.float() - 16.0) * (255.0 / 219.0)
    chroma = uv.float().repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)[: y.shape[0], : y.shape[1]] - 128.0
    u, v = chroma[..., 0] * (255.0 / 224.0), chroma[..., 1] * (255.0 / 224.0)
    red = luma + 1.402 * v
    green = luma - 0.344136 * u - 0.714136 * v
    blue = luma + 1.772 * u
    return torch.stack((red, green, blue), dim=-1).round().clamp(0, 255).to(torch.uint8)


def _seconds(frame: av.VideoFrame, time_base: Fraction | None) -> float | None:
    if frame.pts is None:
        return None
    base = frame.time_base or time_base
    return float(frame.pts * base) if base is not None else None


def _planes(frame: av.VideoFrame) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_dlpack(frame.planes[0]), torch.from_dlpack(frame.planes[1])


def _stream_frames(path: Path, *, hwaccel: Any = None, threads: bool = False) -> Iterator[tuple[av.VideoFrame, Any]]:
    """Frames of the video stream in presentation order, with the stream's time base."""
    with av.open(str(path), hwaccel=hwaccel) if hwaccel is not None else av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"
        else:
            stream.thread_type, stream.thread_count = "SLICE", 1
        if hwaccel is not None and not stream.codec_context.is_hwaccel:
            raise RuntimeError("the decoder did not take the hardware acceleration")
        for packet in container.demux(stream):
            if not packet.is_corrupt:
                for frame in packet.decode():
                    yield frame, stream.time_base


def decode_cpu(path: Path, threads: bool = False) -> Decoded:
    rgb, times = [], []
    for frame, base in _stream_frames(path, threads=threads):
        rgb.append(frame.to_ndarray(format="rgb24"))
        times.append(_seconds(frame, base))
    return Decoded(rgb, times)


def decode_cpu_nv12_torch(path: Path) -> Decoded:
    rgb, times = [], []
    for frame, base in _stream_frames(path):
        rgb.append(nv12_to_rgb(*_planes(frame.reformat(format="nv12"))).numpy())
        times.append(_seconds(frame, base))
    return Decoded(rgb, times)


def _hwaccel(on_gpu: bool) -> Any:
    from av.codec.hwaccel import HWAccel

    return HWAccel("cuda", allow_software_fallback=False, is_hw_owned=on_gpu)


def decode_hwaccel_downloaded(path: Path) -> Decoded:
    rgb, times = [], []
    for frame, base in _stream_frames(path, hwaccel=_hwaccel(False)):
        rgb.append(frame.to_ndarray(format="rgb24"))
        times.append(_seconds(frame, base))
    return Decoded(rgb, times)


def decode_hwaccel_on_gpu(path: Path) -> Decoded:
    rgb, times = [], []
    for frame, base in _stream_frames(path, hwaccel=_hwaccel(True)):
        y, uv = _planes(frame)
        if y.device.type != "cuda":
            raise RuntimeError(f"frames came back on {y.device}, not on the GPU")
        rgb.append(nv12_to_rgb(y, uv).cpu().numpy())  # the frame's surface goes back to the decoder at once
        times.append(_seconds(frame, base))
    return Decoded(rgb, times)


def decode_cuvid(path: Path) -> Decoded:
    rgb, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        name = CUVID.get(stream.codec_context.name)
        if name is None:
            raise RuntimeError(f"no cuvid decoder for {stream.codec_context.name}")
        decoder = av.CodecContext.create(name, "r")
        if stream.codec_context.extradata:
            decoder.extradata = stream.codec_context.extradata
        decoder.width, decoder.height = stream.codec_context.width, stream.codec_context.height
        packets = [p for p in container.demux(stream) if not p.is_corrupt]
        for packet in [*packets, None]:
            for frame in decoder.decode(packet):
                rgb.append(frame.to_ndarray(format="rgb24"))
                times.append(_seconds(frame, stream.time_base))
    return Decoded(rgb, times)


@dataclass(frozen=True)
class Method:
    name: str
    decode: Callable[[Path], Decoded]
    needs_cuda: bool
    exact: bool = False
    """A control that must equal the reference bit for bit."""


METHODS = (
    Method("cpu threaded (control)", lambda p: decode_cpu(p, threads=True), needs_cuda=False, exact=True),
    Method("cpu nv12 + torch colour (control)", decode_cpu_nv12_torch, needs_cuda=False),
    Method("cuda hwaccel, downloaded", decode_hwaccel_downloaded, needs_cuda=True),
    Method("cuda hwaccel, on the GPU", decode_hwaccel_on_gpu, needs_cuda=True),
    Method("cuvid decoder", decode_cuvid, needs_cuda=True),
)


# ------------------------------------------------------------------------------------------------ comparing
@dataclass
class Comparison:
    """One method on one source against the CPU reference."""

    source: str
    status: str = "ok"
    note: str = ""
    frames: int = 0
    reference_frames: int = 0
    same_frames: bool = False
    """Every frame shows the number of the reference's frame at that position."""
    same_times: bool = False
    mean_abs: float | None = None
    """Worst frame's mean |difference|."""
    p99_abs: float | None = None
    """Worst frame's 99th percentile |difference|."""
    max_abs: int | None = None
    within_tolerance: bool = False


BIG_DIFFERENCE = 24
"""On the 0-255 scale: far above what colour conversion changes (a few levels), what motion changes."""


def _changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a.astype(np.int16) - b.astype(np.int16)) > BIG_DIFFERENCE).sum())


def nearest_own_frame(reference: list[np.ndarray], got: list[np.ndarray], reach: int = 2) -> bool:
    """Each frame differs (beyond colour conversion) from its own reference frame less than from every reference
    frame up to `reach` positions away that differs from its own."""
    for i, frame in enumerate(got):
        own = _changed_pixels(reference[i], frame)
        for j in range(max(0, i - reach), min(len(reference), i + reach + 1)):
            if j != i and _changed_pixels(reference[j], reference[i]) and _changed_pixels(reference[j], frame) <= own:
                return False
    return True


def compare(source: str, reference: Decoded, got: Decoded, exact: bool, numbered: bool = True) -> Comparison:
    c = Comparison(source, frames=len(got.rgb), reference_frames=len(reference.rgb))
    if len(got.rgb) != len(reference.rgb):
        c.note = "a different number of frames"
        return c
    if any(a.shape != b.shape for a, b in zip(reference.rgb, got.rgb, strict=True)):
        c.note = f"frames of shape {got.rgb[0].shape}, not {reference.rgb[0].shape}"
        return c
    c.same_frames = (all(read_pattern(a) == read_pattern(b) for a, b in zip(reference.rgb, got.rgb, strict=True))
                     if numbered else nearest_own_frame(reference.rgb, got.rgb))
    c.same_times = all(a is not None and b is not None and abs(a - b) < 1e-6
                       for a, b in zip(reference.times, got.times, strict=True))
    means, p99s, maxes = [], [], []
    for a, b in zip(reference.rgb, got.rgb, strict=True):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        means.append(float(diff.mean()))
        p99s.append(float(np.percentile(diff, 99)))
        maxes.append(int(diff.max()))
    c.mean_abs, c.p99_abs, c.max_abs = round(max(means), 3), round(max(p99s), 2), max(maxes)
    c.within_tolerance = (c.max_abs == 0 if exact else
                          c.mean_abs <= PIXEL_TOLERANCE["mean_abs"] and c.p99_abs <= PIXEL_TOLERANCE["p99_abs"])
    return c


@dataclass
class MethodResult:
    name: str
    status: str = "pending"
    """ok (ran on every source), failed (with the first error), or skipped."""
    note: str = ""
    trusted: bool = False
    """Same frames, same times and pixels within tolerance on every source."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    ms_per_video: float | None = None
    """Median over the timing videos and repeats: open, decode every frame, RGB (on the host)."""


def error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:300]


def time_method(decode: Callable[[Path], Decoded], videos: list[Path], repeats: int) -> float:
    decode(videos[0])  # the first call pays for the CUDA context and the decoder's libraries
    times = []
    for _ in range(repeats):
        for video in videos:
            started = time.perf_counter()
            decode(video)
            times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e3, 2)


# ------------------------------------------------------------------------------------------------ the machine
def gpu_decoding_environment() -> dict[str, Any]:
    """What decides whether NVDEC can work: FFmpeg's build, the driver's video library, the container's settings."""
    from av.codec.hwaccel import hwdevices_available

    try:
        ctypes.CDLL("libnvcuvid.so.1")
        nvcuvid = "loads"
    except OSError as exc:
        nvcuvid = f"does not load ({exc})"
    return {
        "av": av.__version__,
        "ffmpeg": {name: ".".join(map(str, v)) for name, v in av.library_versions.items()},
        "hwdevices_available": list(hwdevices_available()),
        "cuvid_decoders": sorted(c for c in av.codecs_available if c.endswith("_cuvid")),
        "libnvcuvid": nvcuvid,
        "NVIDIA_DRIVER_CAPABILITIES": os.environ.get("NVIDIA_DRIVER_CAPABILITIES"),
        "cuda": torch.cuda.is_available(),
    }


# ------------------------------------------------------------------------------------------------ report
def markdown(report: dict[str, Any]) -> str:
    env, gpu = report["environment"], report["gpu_decoding"]
    lines = [
        "# Decoding on the GPU with PyAV's bundled FFmpeg",
        "",
        f"Machine: {describe_environment(env)}; PyAV {gpu['av']}, libavcodec {gpu['ffmpeg'].get('libavcodec')}.",
        f"Hardware device types FFmpeg knows: {', '.join(gpu['hwdevices_available']) or 'none'}; cuvid decoders: "
        f"{', '.join(gpu['cuvid_decoders']) or 'none'}; libnvcuvid {gpu['libnvcuvid']}; "
        f"NVIDIA_DRIVER_CAPABILITIES {gpu['NVIDIA_DRIVER_CAPABILITIES']}; CUDA {'yes' if gpu['cuda'] else 'no'}.",
        "",
        f"Sources: {', '.join(report['sources'])} (numbered: {report['settings']['size']}, "
        f"{report['settings']['frames']} frames, B-frames). Tolerance per frame: mean |difference| <= "
        f"{PIXEL_TOLERANCE['mean_abs']}, 99th percentile <= {PIXEL_TOLERANCE['p99_abs']} (controls marked exact: 0).",
        "",
        "| method | status | trusted | same frames | same times | worst mean abs | worst p99 abs | max abs | "
        "ms per video | note |",
        "|---|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    reference_ms = report.get("reference_ms_per_video")
    if reference_ms is not None:
        lines.append(f"| cpu, one thread (reference) | ok | yes | yes | yes | 0 | 0 | 0 | {reference_ms} | |")
    for m in report["methods"]:
        per = m["sources"]
        ok = [s for s in per if s["status"] == "ok"]

        def every(key: str, rows: list[dict[str, Any]] = ok) -> str:
            return ("yes" if all(s[key] for s in rows) else "no") if rows else ""

        def worst(key: str, rows: list[dict[str, Any]] = ok) -> str:
            values = [s[key] for s in rows if s[key] is not None]
            return str(max(values)) if values else ""

        ms = "" if m["ms_per_video"] is None else str(m["ms_per_video"])
        lines.append(f"| {m['name']} | {m['status']} | {'yes' if m['trusted'] else 'no'} | {every('same_frames')} | "
                     f"{every('same_times')} | {worst('mean_abs')} | {worst('p99_abs')} | {worst('max_abs')} | {ms} | "
                     f"{m['note']} |")
    timing = report.get("timing")
    if timing:
        lines += ["", f"Timing videos: {timing['videos']} stick-figure videos at {timing['size']}, {timing['frames']} "
                      f"frames, every frame decoded to RGB, median of {timing['repeats']} passes."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main
def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one).")
    parser.add_argument("--size", default="128x128", help="Size of the numbered sources, WxH.")
    parser.add_argument("--frames", type=int, default=40, help="Frames per numbered source.")
    parser.add_argument("--timing_size", default="568x320", help="Size of the timing videos (the grid's).")
    parser.add_argument("--timing_frames", type=int, default=64, help="Frames per timing video.")
    parser.add_argument("--timing_videos", type=int, default=4, help="Timing videos (one per class, then more).")
    parser.add_argument("--repeats", type=int, default=3, help="Passes over the timing videos per method.")
    parser.add_argument("--out", type=Path, default=Path("decode_probe.json"), help="JSON results.")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the table here.")
    args = parser.parse_args(argv)
    args.size, args.timing_size = parse_size(args.size), parse_size(args.timing_size)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vjepa_tune.synth import synthesize

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    work = args.work or Path(tempfile.mkdtemp(prefix="vjepa-decode-"))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report: dict[str, Any] = {"environment": environment(device), "gpu_decoding": gpu_decoding_environment(),
                              "settings": settings, "tolerance": PIXEL_TOLERANCE, "sources": list(SOURCES),
                              "methods": []}

    def save() -> None:
        write_json_atomic(args.out, report)
        if args.markdown is not None:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown(report), encoding="utf-8")

    save()
    print(f"GPU decoding here: {report['gpu_decoding']}", flush=True)
    try:
        work.mkdir(parents=True, exist_ok=True)
        sources = {name: write_source(work / f"{name}.{ext}", codec, options, args.frames, args.size)
                   for name, (ext, codec, options) in SOURCES.items()}
        for name, path in sources.items():
            if [read_pattern(f) for f in decode_cpu(path).rgb] != list(range(args.frames)):
                raise SystemExit(f"the CPU reference of {name} does not show frames 0..{args.frames - 1} in order")
        per_class = -(-args.timing_videos // 4)
        summary = synthesize(work / "timing", videos_per_class=per_class, size=args.timing_size,
                             frames=args.timing_frames, fps=30, seed=0, workers=0, progress=False)
        timing_videos = sorted(summary.root.rglob("*.mp4"))[: args.timing_videos]
        sources[COLOUR_SOURCE] = timing_videos[0]
        report["sources"] = list(sources)
        references = {name: decode_cpu(path) for name, path in sources.items()}
        report["timing"] = {"videos": len(timing_videos), "size": "x".join(map(str, args.timing_size)),
                            "frames": args.timing_frames, "repeats": args.repeats}
        report["reference_ms_per_video"] = time_method(decode_cpu, timing_videos, args.repeats)
        save()
        for method in METHODS:
            result = MethodResult(method.name)
            report["methods"].append(asdict(result))
            if method.needs_cuda and not cuda:
                result.status, result.note = "skipped", "no CUDA"
            else:
                result.status = "ok"
                for name, path in sources.items():
                    try:
                        comparison = compare(name, references[name], method.decode(path), method.exact,
                                             numbered=name != COLOUR_SOURCE)
                    except Exception as exc:  # noqa: BLE001 - what fails, and why, is the finding
                        comparison = Comparison(name, status="failed", note=error_line(exc))
                        result.status, result.note = "failed", result.note or f"{name}: {comparison.note}"
                    result.sources.append(asdict(comparison))
                result.trusted = result.status == "ok" and all(
                    s["same_frames"] and s["same_times"] and s["within_tolerance"] for s in result.sources)
                if result.status == "ok":
                    try:
                        result.ms_per_video = time_method(method.decode, timing_videos, args.repeats)
                    except Exception as exc:  # noqa: BLE001 - decoded the sources, failed on the timing videos
                        result.note = f"timing: {error_line(exc)}"
            report["methods"][-1] = asdict(result)
            save()
            print(f"{method.name}: {result.status}, trusted {result.trusted}, {result.ms_per_video} ms per video"
                  + (f" ({result.note})" if result.note else ""), flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    save()
    print("\n" + markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
