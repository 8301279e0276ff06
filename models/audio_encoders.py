"""Audio encoders by name (audio_encoder_args.model): a builder from the `ModelConfig` for each.

An encoder maps a waveform [B, samples] at audio_args.sr to (clip features [B, C] or None, frame
features [B, T, C]) and has `num_features` (C) and `log_mel(waveform)`; `forward(waveform,
need_clip_features)` may skip the clip features. Adding an encoder is one builder, one entry here
and its name in `models.config.AudioEncoderName`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from models.checkpoint import load_htsat_pretrained
from models.htsat import HTSAT

if TYPE_CHECKING:
    from models.config import ModelConfig


def build_htsat(config: ModelConfig) -> nn.Module:
    """HTS-AT with the LAB of MGA-CLAP, sized by audio_encoder_args.htsat; initialised from the AudioSet
    checkpoint at audio_encoder_args.pretrained_path when audio_encoder_args.pretrained."""
    args = config.audio_encoder_args
    htsat = args.htsat
    encoder = HTSAT(
        audio_args=dataclasses.asdict(config.audio_args), spec_size=htsat.spec_size, patch_size=htsat.patch_size,
        embed_dim=htsat.embed_dim, depths=htsat.depths, num_heads=htsat.num_heads, window_size=htsat.window_size,
        mlp_ratio=htsat.mlp_ratio, num_classes=htsat.num_classes, drop_path_rate=htsat.drop_path_rate,
        spec_augmentation=config.spec_augmentation, locality_aware_block=config.model_args.locality_aware_block,
        fused_attention=args.fused_attention, onednn_linear=args.onednn_linear, lab_drop_path=htsat.lab_drop_path)
    if args.pretrained:
        load_htsat_pretrained(encoder, args.pretrained_path)
    return encoder


AUDIO_ENCODERS: dict[str, Callable[[ModelConfig], nn.Module]] = {"htsat": build_htsat}
"""audio_encoder_args.model -> builder."""
