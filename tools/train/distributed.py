"""The one place for torchrun / SLURM process-group logic.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; under `srun` without torchrun, SLURM_PROCID,
SLURM_NTASKS and SLURM_LOCALID are read instead (MASTER_ADDR / MASTER_PORT must then be exported).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def read_launcher_env() -> DistributedInfo:
    """Rank, world size and local rank from torchrun's or SLURM's environment (1 process if neither)."""
    if "WORLD_SIZE" in os.environ:
        return DistributedInfo(int(os.environ.get("RANK", 0)), int(os.environ["WORLD_SIZE"]),
                               int(os.environ.get("LOCAL_RANK", 0)))
    if "SLURM_NTASKS" in os.environ and "MASTER_ADDR" in os.environ:
        return DistributedInfo(int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"]),
                               int(os.environ.get("SLURM_LOCALID", 0)))
    return DistributedInfo()


def init_distributed(device: str) -> tuple[DistributedInfo, torch.device]:
    """Join the process group when launched with several processes; pick this process's device.

    NCCL on CUDA, gloo on CPU. Returns the process info and the torch.device to use.
    """
    info = read_launcher_env()
    use_cuda = device.startswith("cuda") and torch.cuda.is_available()
    torch_device = torch.device(f"cuda:{info.local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(torch_device)
    if info.enabled and not dist.is_initialized():
        if info.world_size > 1 and "RANK" not in os.environ:
            os.environ.update(RANK=str(info.rank), WORLD_SIZE=str(info.world_size),
                              LOCAL_RANK=str(info.local_rank))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info, torch_device


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on every rank (a MIN all-reduce); the flag itself without a process group.

    Used before a collective that a rank may be unable to join (e.g. a batch whose files were all
    unreadable), so that either every rank takes the step or none does.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    agreed = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
    return bool(agreed.item())


class _GatherKeepLocalGrad(torch.autograd.Function):
    """all_gather along dim 0; backward returns this rank's slice of the incoming gradient.

    Every rank computes the same loss from the same gathered tensor, so the local slice of the local
    gradient is exactly d(loss)/d(this rank's input): no communication in the backward pass.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        sizes = _gather_sizes(tensor.shape[0], tensor.device)
        padded = tensor.new_zeros((max(sizes),) + tuple(tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        gathered = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(gathered, padded.contiguous())
        ctx.start = sum(sizes[:rank])
        ctx.size = tensor.shape[0]
        return torch.cat([part[:size] for part, size in zip(gathered, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad[ctx.start: ctx.start + ctx.size]


def _gather_sizes(local_size: int, device: torch.device) -> list[int]:
    size = torch.tensor([local_size], device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(value.item()) for value in sizes]


def gather_with_grad(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate each tensor [B_rank, ...] over ranks in rank order -> [sum B, ...].

    Gradients flow to this rank's own part only. Because DistributedDataParallel averages parameter
    gradients over ranks, the trainer multiplies a gathered loss by the world size before backward,
    so that N processes of batch B take the same step as one process of batch N * B.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    return tuple(_GatherKeepLocalGrad.apply(tensor) for tensor in tensors)
