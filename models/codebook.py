"""The modality-shared codebook: frames or words -> one embedding through sparse code weights."""

from __future__ import annotations

import math

import torch

from models.sparsemax import sparsemax


def codebook_aggregate(features: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor | None = None,
                       temperature: float = 1000.0) -> torch.Tensor:
    """MGA-CLAP's modality-shared codebook aggregation (the reference's `msc`).

    logits = features @ codebook.T / sqrt(E), multiplied by the mask (a masked position gives logit 0,
    so the pooled logit is at least 0 when anything is masked, as in the reference), divided by the
    temperature, max-pooled over positions, sparsemax over codes; returns the weighted sum of codes.

    Args:
        features: [B, L, E] frame or word embeddings.
        codebook: [K, E] code vectors.
        mask: [B, L] with 1 for real positions, 0 for padding and special tokens; None for frames.
    Returns:
        [B, E] aggregated embeddings (not normalised). Computed in float32.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        features = features.float()
        codebook = codebook.float()
        logits = features @ codebook.t() / math.sqrt(features.shape[-1])
        if mask is not None:
            logits = logits * mask.unsqueeze(-1).to(logits.dtype)
        pooled = (logits / temperature).amax(dim=1)
        weights = sparsemax(pooled, dim=-1)
        return weights @ codebook


def mean_aggregate(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Plain-CLAP ablation: mean of [B, L, E] features over real positions -> [B, E]."""
    if mask is None:
        return features.mean(dim=1)
    weights = mask.to(features.dtype).unsqueeze(-1)
    return (features * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _mean_aggregation(features: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor | None,
                      temperature: float) -> torch.Tensor:
    return mean_aggregate(features, mask)


AGGREGATIONS = {"codebook": codebook_aggregate, "mean": _mean_aggregation}
"""model_args.aggregation -> fn(features [B, L, E], codebook [K, E], mask [B, L] or None, temperature) -> [B, E]."""
