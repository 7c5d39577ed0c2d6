"""Is extraction inside the grid limited by the main process's kernel launches? (issue 20)

On 2026-12-04 (BENCHMARKS.md, "Issue 20's call") the store's backbone forward spanned 10.5-11.5 ms per clip on the
H200 inside the grid, about as long as the host spent queueing it, against 6.1 ms per clip for the same eager forward
alone. The suspicion: the main process launches FastEncoder's few hundred kernels per batch more slowly while 8-14
decoding processes and the store's writer threads share the machine, and the GPU waits for it.

This measures FastEncoder's eager forward as the store runs it (`random:vitl` by default, inference mode, bf16
autocast on a GPU, one batch after another without synchronising), under growing load:

- quiet: nothing else running;
- busy: `--busy` processes each keeping a core busy (the decoding workers);
- busy + writer: those, and a thread in this process saving feature-sized arrays with `np.save` (the store's writers);

then the same forward captured once in a CUDA graph and replayed under the heaviest load, its features compared with
the eager ones. Per condition: the host's ms per batch (launching), the GPU's ms per batch (CUDA events around the
whole sequence) and clips/s. If the graph's GPU time under load is well below eager's, launches are the limit.

    python benchmarks/gpu_launch_probe.py --out DIR/launch.json --markdown DIR/launch.md
    python benchmarks/gpu_launch_probe.py --model random:tiny --device cpu --busy 1 --iters 3   # a CPU smoke run
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_throughput beside this file
from gpu_throughput import (  # noqa: E402 - after the path it is found on
    describe_environment,
    environment,
    fast_forward,
    new_model,
    random_clips,
    resolve_device,
    synchronize,
    write_json_atomic,
)


@dataclass
class Row:
    condition: str
    forward: str
    batches: int
    host_ms_per_batch: float
    device_ms_per_batch: float | None
    clips_per_s: float
    note: str = ""


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    """A decoding worker's share of the machine: one core kept busy until told to stop."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # let them start spinning
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)


@contextmanager
def writer_thread(entry_shape: tuple[int, ...]) -> Iterator[None]:
    """Saves one feature-sized float16 array after another, as the store's writer threads do."""
    stop = threading.Event()
    entry = np.random.default_rng(0).standard_normal(entry_shape, dtype=np.float32).astype(np.float16)

    def write() -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "entry.npy"
            while not stop.is_set():
                with open(path, "wb") as f:
                    np.save(f, entry.copy())

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def run_sequence(forward: Callable[[], torch.Tensor], batches: int, device: torch.device
                 ) -> tuple[float, float | None]:
    """Seconds the host took to issue `batches` forwards back to back, and the device's span over them (CUDA
    events; None on a CPU, where the host's time is the forward)."""
    synchronize(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    began = time.perf_counter()
    for _ in range(batches):
        forward()
    host = time.perf_counter() - began
    if device.type != "cuda":
        return host, None
    end.record()
    torch.cuda.synchronize(device)
    return host, start.elapsed_time(end) / 1e3


def measure(condition: str, name: str, forward: Callable[[], torch.Tensor], batch: int, iters: int,
            device: torch.device, note: str = "") -> Row:
    forward()  # warm-up: tables, allocator, cuDNN/cuBLAS choices
    host, span = run_sequence(forward, iters, device)
    seconds = max(host, span or 0.0)
    return Row(condition, name, iters, round(host / iters * 1e3, 2),
               None if span is None else round(span / iters * 1e3, 2), round(batch * iters / seconds, 1), note)


def graph_forward(eager: Callable[[], torch.Tensor], device: torch.device
                  ) -> tuple[Callable[[], torch.Tensor] | None, str]:
    """The eager forward captured in a CUDA graph (static input and output), or None and why it could not be."""
    if device.type != "cuda":
        return None, "CUDA only"
    try:
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                eager()
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = eager()
    except RuntimeError as error:
        return None, f"capture failed: {error}"

    def replay() -> torch.Tensor:
        graph.replay()
        return output

    return replay, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:vitl")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=8, help="clips per forward (the grid's --cache.batch_size)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--iters", type=int, default=30, help="forwards per condition")
    parser.add_argument("--busy", type=int, default=14, help="busy processes (the grid's --num_workers)")
    parser.add_argument("--out", type=Path, default=Path("launch.json"))
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    env = environment(device)
    print(describe_environment(env), flush=True)
    model = new_model(args.model, device)
    fast = fast_forward(model)
    clips = random_clips(model.config, args.batch, args.frames, device)
    dtype = torch.bfloat16 if device.type == "cuda" else None

    def eager() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None,
                                                    cache_enabled=False):
            return fast(clips)

    report = {"environment": env, "settings": vars(args) | {"out": str(args.out), "markdown": str(args.markdown)},
              "rows": []}

    def record(row: Row) -> None:
        print(row, flush=True)
        report["rows"].append(asdict(row))
        write_json_atomic(args.out, report)

    reference = eager().float().clone()
    entry_shape = (5, *reference.shape[1:])  # one video's entry: five clips' features
    record(measure("quiet", "eager", eager, args.batch, args.iters, device))
    replay, reason = graph_forward(eager, device)  # captured once, replayed under load and quiet
    with busy_processes(args.busy):
        record(measure(f"{args.busy} busy processes", "eager", eager, args.batch, args.iters, device))
        with writer_thread(entry_shape):
            record(measure(f"{args.busy} busy processes + writer thread", "eager", eager, args.batch, args.iters,
                           device))
            if replay is None:
                record(Row(f"{args.busy} busy processes + writer thread", "CUDA graph", 0, 0.0, None, 0.0,
                           f"skipped: {reason}"))
            else:
                same = (replay().float() - reference).abs().max().item()
                record(measure(f"{args.busy} busy processes + writer thread", "CUDA graph", replay, args.batch,
                               args.iters, device, note=f"max |graph - eager| {same:.3g}"))
    if replay is not None:
        record(measure("quiet", "CUDA graph", replay, args.batch, args.iters, device))

    lines = [f"# Kernel launches under load: FastEncoder eager, `{args.model}`, batch {args.batch}, "
             f"{args.frames} frames", "", describe_environment(env), "",
             "| condition | forward | batches | host ms per batch | GPU ms per batch | clips/s | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in report["rows"]:
        device_ms = "" if row["device_ms_per_batch"] is None else row["device_ms_per_batch"]
        lines.append(f"| {row['condition']} | {row['forward']} | {row['batches']} | {row['host_ms_per_batch']} | "
                     f"{device_ms} | {row['clips_per_s']} | {row['note']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
