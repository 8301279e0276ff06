"""Contrastive losses as pure functions of similarity matrices, and loss modules for training.

Conventions: `sim_a2t` [B, B] holds audio i x text j similarities divided by the temperature,
`sim_t2a` [B, B] text i x audio j, and `targets` [B, B] is the row-normalised positive mask
(P_ij = [idx_i == idx_j] / count). Under torchrun the modules gather embeddings from all ranks
(`models.gather.gather_with_grad`) so each rank's loss sees the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HARD_NEGATIVE_BETA = 0.15  # sharpness of the hard-negative weights in MGA-CLAP


def positive_targets(idx: torch.Tensor) -> torch.Tensor:
    """[B] clip ids -> [B, B] float targets, positives of a row sum to one."""
    same = (idx.view(-1, 1) == idx.view(1, -1)).float()
    return same / same.sum(dim=1, keepdim=True)


def hard_negative_direction(sim: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One direction of the hard-negative guided loss, exactly as the reference computes it.

    s = sim - rowmax(sim) (detached); e = exp(0.15 s); weights w_ij = (B - 1) e_ij / (S_j - e_ij) with
    S the vector of row sums of e (the reference's broadcasting divides by the sum of row j, kept so
    that released checkpoints train on the same objective); w_ij = 1 on positives; then
    loss = mean_i(-sum_j P_ij (s_ij - log(1e-7 + sum_k w_ik exp(s_ik)))).
    """
    batch = sim.shape[0]
    shifted = sim - sim.amax(dim=1, keepdim=True).detach()
    exp_scaled = torch.exp(HARD_NEGATIVE_BETA * shifted)
    row_sums = exp_scaled.sum(dim=1)
    weights = (batch - 1) * exp_scaled / (row_sums - exp_scaled)
    weights = torch.where(targets > 0, torch.ones_like(weights), weights)
    log_prob = shifted - torch.log(1e-7 + (weights * torch.exp(shifted)).sum(dim=1, keepdim=True))
    return -(targets * log_prob).sum(dim=1).mean()


def hard_negative_loss(sim_a2t: torch.Tensor, sim_t2a: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of both directions of the hard-negative guided contrastive loss (scalar)."""
    return 0.5 * (hard_negative_direction(sim_a2t, targets) + hard_negative_direction(sim_t2a, targets))


def infonce_loss(sim_a2t: torch.Tensor, sim_t2a: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Plain symmetric InfoNCE with soft targets (the ablation without hard-negative weights)."""
    a2t = -(targets * F.log_softmax(sim_a2t, dim=1)).sum(dim=1).mean()
    t2a = -(targets * F.log_softmax(sim_t2a, dim=1)).sum(dim=1).mean()
    return 0.5 * (a2t + t2a)


def embedding_regularizer(embeds: torch.Tensor) -> torch.Tensor:
    """mean(|X|) / sqrt(sum(X^2)) over the whole [B, E] matrix (the reference's regulariser)."""
    return embeds.abs().mean() / embeds.square().sum().sqrt()


LOSS_FUNCTIONS = {"hard_negative": hard_negative_loss, "infonce": infonce_loss}


class ContrastiveLoss(nn.Module):
    """Normalised clip and sentence embeddings -> scalar loss.

    Args:
        kind: "hard_negative" (MGA-CLAP) or "infonce".
        embed_regularization: add `embedding_regularizer` of both modalities.
        gather_across_ranks: under torch.distributed, compute the loss on the global batch; gradients
            reach each rank's own embeddings (see models.gather.gather_with_grad).
    """

    def __init__(self, kind: str = "hard_negative", embed_regularization: bool = True,
                 gather_across_ranks: bool = False):
        super().__init__()
        if kind not in LOSS_FUNCTIONS:
            raise ValueError(f"unknown loss '{kind}': expected one of {sorted(LOSS_FUNCTIONS)}")
        self.kind = kind
        self.embed_regularization = embed_regularization
        self.gather_across_ranks = gather_across_ranks

    def forward(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor, idx: torch.Tensor,
                temperature: torch.Tensor) -> torch.Tensor:
        """audio_embeds, text_embeds [B, E] (L2-normalised), idx [B], temperature scalar."""
        if self.gather_across_ranks:
            from models.gather import gather_with_grad
            audio_embeds, text_embeds, idx = gather_with_grad(audio_embeds, text_embeds, idx)
        audio_embeds, text_embeds = audio_embeds.float(), text_embeds.float()
        targets = positive_targets(idx)
        sim_a2t = audio_embeds @ text_embeds.t() / temperature
        sim_t2a = text_embeds @ audio_embeds.t() / temperature
        loss = LOSS_FUNCTIONS[self.kind](sim_a2t, sim_t2a, targets)
        if self.embed_regularization:
            loss = loss + embedding_regularizer(audio_embeds) + embedding_regularizer(text_embeds)
        return loss
