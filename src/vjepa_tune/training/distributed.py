"""Several processes, one result: the few collective operations the recipe needs.

accelerate (or torchrun) starts the processes and initialises the process group; this module adds what makes a
multi-process run give the results of one process with the same effective batch:

- every optimizer step is planned globally (training/loop.py `plan_epoch`) and each process takes a contiguous
  shard of it (`shard`), so the samples of a step are exactly those a single process would see, the last uneven
  step included, with no padding duplicates;
- gradients are summed across processes once per step (`sum_gradients`) after each process back-propagated
  `its per-sample loss sum / the global sample count of the step`; the sum is then the single-process gradient.
  The model is deliberately not wrapped in DistributedDataParallel: DDP averages on every backward and needs the
  same number of backward passes on every process, which an uneven last step does not give;
- evaluation shards the samples by index and gathers (index, prediction) pairs, so each video counts exactly once.

With one process every function here is a no-op or the identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast(obj: T) -> T:
    """The main process's value of `obj`, on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: T) -> list[T]:
    """Every process's `obj`, in rank order, on every process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(items: Sequence[T], index: int | None = None, count: int | None = None) -> list[T]:
    """This process's contiguous part of `items`; parts differ in size by at most one."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    base, extra = divmod(len(items), count)
    start = index * base + min(index, extra)
    return list(items[start : start + base + (1 if index < extra else 0)])


def sum_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum gradients across processes (a process that saw no sample contributes zeros)."""
    if not is_distributed():
        return
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def sum_values(values: Sequence[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of a few numbers across processes (`device`: where the backend can reduce, e.g. cuda)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()
