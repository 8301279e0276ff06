"""Scores between L2-normalised embeddings: the last arrows of the data flow.

    clip x sentence  -> retrieval and classification scores   `clip_text_similarity`
    frame x sentence -> detection and grounding scores         `frame_text_similarity`
Both are cosine similarities because the embeddings are unit vectors (ASE.embed_audio / embed_text,
tools.eval.embedding).
"""

from __future__ import annotations

import torch


def clip_text_similarity(clip_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """[N, E] clips x [M, E] texts -> [N, M] cosine similarities."""
    return clip_embeds @ text_embeds.T


def frame_text_similarity(frame_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """[T, E] frames of one clip x [M, E] texts -> [T, M] cosine similarities, frames in time order."""
    return frame_embeds @ text_embeds.T
