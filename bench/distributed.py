"""Scale-out with ``torch.distributed``: ranks shard the videos of an accuracy pass and reduce
their evaluator states with the evaluator's associative ``merge``; rank 0 alone writes records.

Launched with ``torchrun --nproc_per_node N .venv/bin/bench compare ...`` (gloo on CPU, NCCL on
GPU); without torchrun the same code runs as one process and every helper is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


TIMEOUT = timedelta(hours=6)  # ranks wait while rank 0 renders, trains and measures speed


def init_from_env(device: str = "cpu") -> str:
    """Join the process group torchrun describes in the environment (once) and return this
    rank's device (``cuda`` becomes ``cuda:LOCAL_RANK``); alone, ``device`` unchanged."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=TIMEOUT)
    return device


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_writer() -> bool:
    """Whether this process writes records, checkpoints and reports (rank 0)."""
    return rank() == 0


def shard(items: Sequence[T]) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th from its rank."""
    return list(items[rank() :: world_size()])


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather(value: Any) -> list[Any]:
    """Every rank's picklable ``value``, in rank order (just ``[value]`` alone)."""
    if not dist.is_initialized():
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def threads_per_rank(requested: int) -> int:
    """CPU threads for one rank so that all ranks together use ``requested`` (at least 1)."""
    return max(1, requested // world_size()) if not torch.cuda.is_available() else requested
