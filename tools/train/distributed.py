"""The one place for torchrun / SLURM process-group logic.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; under `srun` without torchrun, SLURM_PROCID,
SLURM_NTASKS and SLURM_LOCALID are read instead (MASTER_ADDR / MASTER_PORT must then be exported).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
        backend = "nccl" if use_cuda else "gloo"
        store = restart_attempt_store(info)
        if store is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, store=store, rank=info.rank, world_size=info.world_size)
    return info, torch_device


def restart_attempt_store(info: DistributedInfo) -> dist.Store | None:
    """The torchrun agent's store seen through a prefix of this restart attempt; None when not under torchrun.

    torchrun (torch 2.14) keeps one store for all attempts of a `--max-restarts` run and env:// adds no
    attempt prefix, so a restarted process may read the address a killed process of the previous attempt
    left there: gloo then fails with "connectFullMesh failed ... Connection refused" or waits forever.
    A prefix per TORCHELASTIC_RESTART_COUNT gives every attempt keys of its own.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return None
    agent_store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), info.world_size,
                                is_master=False, timeout=timedelta(minutes=30))
    return dist.PrefixStore(f"mga_clap/attempt_{os.environ['TORCHELASTIC_RESTART_COUNT']}", agent_store)


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


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (a picklable object); the value itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
