"""Several processes (torchrun or -num_gpus): DistributedDataParallel over NCCL (CUDA) or gloo."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the group; ``owns_group`` when it joined the group itself (a
    trainer run inside another one's group, as a first stage trained on the way, leaves the
    group to its owner)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device: str) -> DistributedContext:
    """Join the process group torchrun describes in the environment (one process: no-op)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    joins = not dist.is_initialized()
    if joins:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, joins)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group, if this context joined it."""
    if context.enabled and context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def rank0_value(context: DistributedContext, value: float, device: str) -> float:
    """Rank 0's ``value`` on every process (decisions taken from one clock, e.g. a time
    budget, must not differ between processes)."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64,
                          device=device if device.startswith("cuda") else "cpu")
    dist.broadcast(tensor, src=0)
    return float(tensor.item())
