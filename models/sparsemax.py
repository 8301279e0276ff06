"""Sparsemax (Martins & Astudillo, 2016): the Euclidean projection onto the probability simplex.

Runs on any device and dtype; the backward pass is the closed-form Jacobian-vector product.
"""

from __future__ import annotations

import torch


class _Sparsemax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, dim: int) -> torch.Tensor:
        sorted_logits, _ = torch.sort(logits, dim=dim, descending=True)
        ranks = torch.arange(1, logits.shape[dim] + 1, device=logits.device, dtype=logits.dtype)
        ranks = ranks.view([-1 if axis == dim % logits.dim() else 1 for axis in range(logits.dim())])
        cumulative = sorted_logits.cumsum(dim) - 1
        in_support = ranks * sorted_logits > cumulative
        # At least 1: a row with NaN logits has an empty support and must give NaN, not an index error.
        support_size = in_support.sum(dim=dim, keepdim=True).clamp(min=1)
        threshold = cumulative.gather(dim, support_size - 1) / support_size.to(logits.dtype)
        probabilities = (logits - threshold).clamp(min=0)
        ctx.dim = dim
        ctx.save_for_backward(probabilities)
        return probabilities

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (probabilities,) = ctx.saved_tensors
        support = (probabilities > 0).to(grad_output.dtype)
        support_mean = (grad_output * support).sum(ctx.dim, keepdim=True) / support.sum(ctx.dim, keepdim=True)
        return support * (grad_output - support_mean), None


def sparsemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sparse probabilities along `dim`: non-negative, summing to one, many exactly zero."""
    return _Sparsemax.apply(logits, dim)
