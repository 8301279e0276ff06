"""A differentiable all_gather for the contrastive loss under torchrun: every rank's embeddings in one batch."""

from __future__ import annotations

import torch
import torch.distributed as dist


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
