"""ASE: the MGA-CLAP model (audio tower, text tower, projections, shared codebook, loss).

Public API, as in the reference:
    _, word_embeds, attn_mask = model.encode_text(captions)
    text_embeds = model.msc(word_embeds, model.codebook, attn_mask)
    _, frame_embeds = model.encode_audio(waveforms)          # [B, samples] at 32 kHz
    audio_embeds = model.msc(frame_embeds, model.codebook)
    loss = model(waveforms, captions, idx)                    # training objective
Embeddings returned by these calls are not normalised.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.codebook import codebook_aggregate, mean_aggregate
from models.htsat import HTSAT
from models.losses import ContrastiveLoss
from models.text_encoder import TextEncoder
from tools.config import Config, parse_config


def projection_head(width: int, embed_size: int) -> nn.Sequential:
    """LayerNorm -> Linear -> GELU -> LayerNorm -> Linear (state_dict indices 0, 1, 3, 4)."""
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed_size), nn.GELU(),
                         nn.LayerNorm(embed_size), nn.Linear(embed_size, embed_size))


class AudioEncoder(nn.Module):
    """Wraps HTS-AT as `audio_enc` (the reference's key prefix); optionally AudioSet-initialised, frozen."""

    def __init__(self, config: Config):
        super().__init__()
        args = config.audio_encoder_args
        htsat = args.htsat
        self.audio_enc = HTSAT(
            audio_args=dataclasses.asdict(config.audio_args), spec_size=htsat.spec_size, patch_size=htsat.patch_size,
            embed_dim=htsat.embed_dim, depths=htsat.depths, num_heads=htsat.num_heads,
            window_size=htsat.window_size, mlp_ratio=htsat.mlp_ratio, num_classes=htsat.num_classes,
            drop_path_rate=htsat.drop_path_rate, spec_augmentation=config.training.spec_augmentation,
            locality_aware_block=config.model_args.locality_aware_block, fused_attention=args.fused_attention,
            onednn_linear=args.onednn_linear, lab_drop_path=htsat.lab_drop_path)
        if args.pretrained:
            from models.checkpoint import load_htsat_pretrained
            load_htsat_pretrained(self.audio_enc, args.pretrained_path)
        if args.freeze:
            self.audio_enc.requires_grad_(False)

    def forward(self, waveform: torch.Tensor,
                need_clip_features: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        return self.audio_enc(waveform, need_clip_features=need_clip_features)


class ASE(nn.Module):
    """Audio-sentence embedding model of MGA-CLAP, built from a config dict (reference YAML keys)."""

    def __init__(self, config: dict[str, Any] | Config):
        super().__init__()
        self.config = parse_config(config)
        cfg = self.config
        embed_size = cfg.embed_size
        self.audio_encoder = AudioEncoder(cfg)
        self.text_encoder = TextEncoder(cfg.text_encoder_args.type, pretrained=cfg.text_encoder_args.pretrained,
                                        freeze=cfg.text_encoder_args.freeze,
                                        max_length=cfg.text_encoder_args.max_length)
        self.frame_proj = projection_head(self.audio_encoder.audio_enc.num_features, embed_size)
        self.word_proj = projection_head(self.text_encoder.width, embed_size)
        self.codebook = nn.Parameter(torch.randn(cfg.codebook.size, embed_size))
        self.temp = nn.Parameter(torch.tensor(float(cfg.temp)))
        self.codebook_temperature = cfg.codebook.temperature
        self.aggregation = cfg.model_args.aggregation
        self.criterion = ContrastiveLoss(cfg.model_args.loss, embed_regularization=cfg.embed_regularization)
        # Precision of models.inference's embedding helpers on CUDA (eval.precision): float32 | bf16.
        self.inference_precision = cfg.eval.precision

    @property
    def sample_rate(self) -> int:
        return self.config.audio_args.sr

    def encode_audio(self, audio: torch.Tensor,
                     need_clip_features: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """[B, samples] float waveform at 32 kHz (<= 10.23 s) -> (clip features [B, C], frames [B, 32, E]).

        Clip features are HTS-AT's pooled feature (unused by MGA-CLAP's embeddings); with
        `need_clip_features=False` they are not computed and None is returned in their place.
        """
        check_waveform(audio)
        clip_features, frame_features = self.audio_encoder(audio, need_clip_features=need_clip_features)
        return clip_features, self.frame_proj(frame_features)

    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """B captions -> (hidden states [B, L, H], word embeddings [B, L-1, E], mask [B, L-1]).

        [CLS] is dropped; the mask is 1 for real tokens and 0 for [SEP] and padding.
        """
        hidden, special_tokens_mask = self.text_encoder(texts)
        word_embeds = self.word_proj(hidden[:, 1:])
        attn_mask = 1 - special_tokens_mask[:, 1:]
        return hidden, word_embeds, attn_mask

    def msc(self, features: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Aggregate [B, L, E] frames or words into [B, E] (codebook, or mean for the ablation)."""
        if self.aggregation == "mean":
            return mean_aggregate(features, mask)
        return codebook_aggregate(features, codebook, mask, self.codebook_temperature)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> L2-normalised clip embeddings [B, E]."""
        _, frame_embeds = self.encode_audio(audio, need_clip_features=False)
        return F.normalize(self.msc(frame_embeds, self.codebook), dim=-1)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """B captions -> L2-normalised sentence embeddings [B, E]."""
        _, word_embeds, attn_mask = self.encode_text(texts)
        return F.normalize(self.msc(word_embeds, self.codebook, attn_mask), dim=-1)

    def forward(self, audio: torch.Tensor, text: list[str], idx: torch.Tensor) -> torch.Tensor:
        """Training objective on a batch: audio [B, samples], B captions, idx [B] clip ids -> scalar."""
        if len(text) != audio.shape[0] or idx.shape[0] != audio.shape[0]:
            raise ValueError(f"expected one caption and one idx per clip: {audio.shape[0]} clips, "
                             f"{len(text)} captions, {idx.shape[0]} ids")
        audio_embeds = self.embed_audio(audio)
        text_embeds = self.embed_text(text)
        return self.criterion(audio_embeds, text_embeds, idx.to(audio_embeds.device), self.temp)


def check_waveform(audio: torch.Tensor) -> None:
    """Raise a clear error unless `audio` is a floating [B, samples] tensor."""
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor [batch, samples], got {type(audio).__name__}")
    if audio.dim() != 2:
        raise ValueError(f"audio must have shape [batch, samples] (mono, 32 kHz), got {list(audio.shape)}; "
                         f"use audio.unsqueeze(0) for one clip or mix channels down first")
    if not audio.is_floating_point():
        raise TypeError(f"audio must be a floating-point waveform in [-1, 1], got dtype {audio.dtype}; "
                        f"convert integer PCM with audio.float() / 32768")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"audio is empty: shape {list(audio.shape)}")
