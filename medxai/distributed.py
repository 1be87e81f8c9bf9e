"""torchrun support: one process per GPU (or CPU slot), work sharded by rank.

Outside torchrun every helper here degrades to the single-process answer, so the same
code runs both ways.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> torch.device:
    """Join the torchrun process group when launched by torchrun; returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


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
