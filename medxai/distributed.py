"""torchrun support: one process per GPU (or CPU slot), work sharded by rank.

Outside torchrun every helper here degrades to the single-process answer, so the same
code runs both ways.

Two ways to use the ranks. SPMD, as `medxai train` and `evaluate` do: every rank runs the
same command and deals the items (`deal`, `deal_batches`, `gather_objects`). Driven, as the
audit does: rank 0 runs the orchestration alone and hands each sharded step to every rank
with `run_everywhere(fn, ...)`; the other ranks wait in `serve()` and run what they are sent,
until `stop_serving()`. A driven step is an SPMD function (module-level, so it pickles by
name) that deals its items itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


_DEVICE: list[torch.device] = []  # this rank's device, once joined


def init_from_env(device: torch.device) -> torch.device:
    """Join the torchrun process group when launched by torchrun; returns this rank's device.

    On a CPU, each of the machine's ranks gets an equal share of its cores as torch threads,
    so the ranks do not oversubscribe them."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    _DEVICE[:] = [device]
    return device


def local_device(default: torch.device) -> torch.device:
    """This rank's device under torchrun, else `default` (the one-process run's)."""
    return _DEVICE[0] if _DEVICE and dist.is_initialized() else default


def on_rank(module: torch.nn.Module, default: torch.device) -> tuple[torch.nn.Module, torch.device]:
    """`module` on this rank's device (`local_device`), moved only when it is elsewhere (a
    driven step runs once per payload), and that device."""
    device = local_device(default)
    first = next(module.parameters(), None)
    if first is not None and first.device != device:
        module = module.to(device)
    return module, device


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_flag(value: bool) -> bool:
    """Rank 0's decision, seen by every rank (e.g. 'stop training now')."""
    if not dist.is_initialized():
        return value
    flag = torch.tensor([int(value)])
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def gather_objects(items: list) -> list:
    """Concatenate every rank's list on every rank, in rank order."""
    if not dist.is_initialized():
        return items
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def deal_batches(items: list, batch_size: int) -> list[list]:
    """This rank's batches: the global order cut into batches, dealt round-robin to ranks.

    Every item lands in the same batch on any world size, so batch-dependent work (seeded
    noise, line searches) gives exactly the one-process result.
    """
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    return batches[rank() :: world_size()]


T = TypeVar("T")


def deal(items: Sequence[T]) -> list[T]:
    """This rank's items: every world_size-th of the global order, starting at its rank."""
    return list(items)[rank() :: world_size()]


def scatter_from_main(items: list | None) -> Any:
    """Rank 0's `items[k]`, on rank k (pickled; rank 0 gives one item per rank, the others
    None); outside torchrun `items[0]`."""
    if not dist.is_initialized():
        return items[0] if items else None
    box: list = [None]
    dist.scatter_object_list(box, items if is_main() else None, src=0)
    return box[0]


P = TypeVar("P")
R = TypeVar("R")


def dealt_rounds(
    step: Callable[[Any, P], R], shared: Any, count: int,
    payloads: Iterator[P] | None = None, progress: Callable[[list[R]], None] | None = None,
) -> list[R]:  # fmt: skip
    """Every rank, driven (`run_everywhere(dealt_rounds, ...)`): `count` payloads made one at
    a time on rank 0 (`payloads`, there only), sent out a round at a time, one per rank, and
    computed there as `step(shared, payload)`; the results, in payload order (`progress` is
    told each round's). Only a round's payloads are ever in memory, and outside torchrun
    this is the plain loop."""
    world, results = world_size(), []
    for first in range(0, count, world):
        n = min(world, count - first)
        sent = None
        if is_main():
            sent = [next(payloads) for _ in range(n)] + [None] * (world - n)  # type: ignore[arg-type]
        mine = scatter_from_main(sent)
        done = step(shared, mine) if rank() < n else None
        round_results = gather_objects([done])[:n]
        results += round_results
        if progress:
            progress(round_results)
    return results


_STOP = "stop"


def _from_main(value: Any) -> Any:
    """Rank 0's `value`, on every rank (pickled)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_everywhere(fn: Callable[..., T], *args: Any, local: dict | None = None, **kwargs: Any) -> T:
    """On rank 0 (the driver): every rank runs fn(*args, **kwargs); rank 0's value is returned.

    `fn` must be importable by name and its arguments picklable; `local` keywords (progress
    callbacks, say) go to rank 0's call only. Outside torchrun this is fn(...)."""
    if world_size() > 1:
        _from_main((fn, args, kwargs))
    return fn(*args, **kwargs, **(local or {}))


def serve() -> None:
    """On ranks other than 0: run the steps rank 0 sends (`run_everywhere`) until it stops."""
    while True:
        task = _from_main(None)
        if task == _STOP:
            return
        fn, args, kwargs = task
        fn(*args, **kwargs)


def stop_serving() -> None:
    """On rank 0, when the driven run ends (normally or not): release the serving ranks."""
    if world_size() > 1 and is_main():
        _from_main(_STOP)
