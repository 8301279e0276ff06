"""Opt-in speed switches for a built model: fused window attention, channels-last, torch.compile.

None of these changes a parameter, a buffer name or (beyond float rounding) a number; each is off
unless a caller asks for it. The benchmarks (`benchmarks/benchmark.py`) measure their effect.

- `set_fused_attention(model, enabled)`: every Swin window attention through
  `scaled_dot_product_attention` (on by default in the model; in CPU float32 inference HTS-AT's
  `BatchedWindowAttention` runs it as two batched matmuls) or the explicit softmax path.
  The oneDNN linear layers have their own switch, `models.onednn_linear.set_onednn_linear`.
- `apply_channels_last(model)`: 4-D weights in channels-last layout. HTS-AT is almost all Linear
  layers over [B, H, W, C] tokens, so only the patch embedding (and the unused tscam conv) are
  affected; expect little change, mainly on GPUs with cuDNN.
- `compile_model(model)`: `nn.Module.compile` (in place, so state_dict keys are unchanged) on the
  audio encoder and on the transformers text model; tokenisation and the codebook stay eager.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def window_attentions(model: nn.Module) -> list[nn.Module]:
    """Every module of `model` that has a `fused_attn` switch (timm's WindowAttention and subclasses)."""
    return [module for module in model.modules() if hasattr(module, "fused_attn") and hasattr(module, "qkv")]


def set_fused_attention(model: nn.Module, enabled: bool) -> int:
    """Switch fused SDPA window attention on or off in every block; returns the number switched."""
    attentions = window_attentions(model)
    for attention in attentions:
        attention.fused_attn = enabled
    return len(attentions)


def apply_channels_last(model: nn.Module) -> nn.Module:
    """Store 4-D parameters and buffers in channels-last layout (in place); returns the model."""
    return model.to(memory_format=torch.channels_last)


def compile_model(model: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """torch.compile the heavy towers of an `ASE` model in place; returns the model.

    Compiles `model.audio_encoder` and `model.text_encoder.text_encoder` when present (else the
    whole module). `compile_kwargs` go to `torch.compile` (e.g. mode="max-autotune"). The first
    calls are slow (compilation); time only after a warm-up.
    """
    targets = _compile_targets(model)
    for target in targets:
        target.compile(**compile_kwargs)
    return model


def _compile_targets(model: nn.Module) -> list[nn.Module]:
    targets = []
    audio_encoder = getattr(model, "audio_encoder", None)
    if isinstance(audio_encoder, nn.Module):
        targets.append(audio_encoder)
    text_tower = getattr(getattr(model, "text_encoder", None), "text_encoder", None)
    if isinstance(text_tower, nn.Module):
        targets.append(text_tower)
    return targets or [model]
