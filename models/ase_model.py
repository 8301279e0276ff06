"""ASE: the MGA-CLAP model (audio tower, text tower, projections, shared codebook, loss).

Built from a `models.config.ModelConfig` (or a YAML-shaped dict, or a training Config). One method
per arrow of the data flow:
    waveform [B, samples] (32 kHz, <= 10.23 s) -> frames [B, 32, E]    encode_audio
    frames -> clip embedding [B, E]                                     pool_frames
    both at once, for clips of one window                               encode_clips
    waveform of any length -> frames [T, E] + clip [E]                  encode_long_audio
    captions -> words [B, L, E] + mask [B, L]                           encode_text
    words -> sentence embedding [B, E]                                  pool_words
    waveform / captions -> L2-normalised embeddings                     embed_audio / embed_text
    loss = model(waveforms, captions, idx)                              the training objective
The reference's calls work unchanged: `_, frames = model.encode_audio(x)`,
`_, words, mask = model.encode_text(texts)`, `model.msc(features, model.codebook, mask)`.
Embeddings are not normalised except by embed_audio / embed_text.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.audio_encoders import AUDIO_ENCODERS
from models.codebook import AGGREGATIONS
from models.config import ModelConfig
from models.freezing import apply_freezing
from models.losses import ContrastiveLoss
from models.text_encoder import TextEncoder
from models.windowing import WINDOW_SECONDS, encode_audio_windows


def projection_head(width: int, embed_size: int) -> nn.Sequential:
    """LayerNorm -> Linear -> GELU -> LayerNorm -> Linear (state_dict indices 0, 1, 3, 4)."""
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed_size), nn.GELU(),
                         nn.LayerNorm(embed_size), nn.Linear(embed_size, embed_size))


class AudioEncoder(nn.Module):
    """Holds the audio encoder as `audio_enc` (the reference's key prefix); optionally frozen."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.audio_enc = AUDIO_ENCODERS[config.audio_encoder_args.model](config)
        if config.audio_encoder_args.freeze:
            self.audio_enc.requires_grad_(False)

    def forward(self, waveform: torch.Tensor,
                need_clip_features: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        return self.audio_enc(waveform, need_clip_features=need_clip_features)


class ASE(nn.Module):
    """Audio-sentence embedding model of MGA-CLAP.

    Args:
        config: a ModelConfig, a YAML-shaped dict (its model keys are read) or an object with a
            `model_config()` method (the training / evaluation Config of tools/config.py).
    """

    def __init__(self, config: ModelConfig | dict[str, Any] | Any):
        super().__init__()
        self.config = as_model_config(config)
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
        self.aggregate = AGGREGATIONS[cfg.model_args.aggregation]
        self.criterion = ContrastiveLoss(cfg.model_args.loss, embed_regularization=cfg.embed_regularization)
        apply_freezing(self)

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
        attn_mask = 1 - special_tokens_mask[:, 1:]
        return hidden, self.project_words(hidden), attn_mask

    def project_words(self, hidden: torch.Tensor) -> torch.Tensor:
        """The text tower's hidden states [B, L, H] -> word embeddings [B, L-1, E] ([CLS] dropped)."""
        return self.word_proj(hidden[:, 1:])

    def msc(self, features: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Aggregate [B, L, E] frames or words into [B, E] (model_args.aggregation: codebook, or mean)."""
        return self.aggregate(features, codebook, mask, self.codebook_temperature)

    def pool_frames(self, frame_embeds: torch.Tensor) -> torch.Tensor:
        """Frames [B, T, E] -> clip embeddings [B, E] (not normalised)."""
        return self.msc(frame_embeds, self.codebook)

    def pool_words(self, word_embeds: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Words [B, L, E] with mask [B, L] -> sentence embeddings [B, E] (not normalised)."""
        return self.msc(word_embeds, self.codebook, attn_mask.to(word_embeds.device))

    def encode_clips(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, samples] (<= 10.23 s) -> (frames [B, 32, E], clip embeddings [B, E]), not normalised."""
        _, frame_embeds = self.encode_audio(audio, need_clip_features=False)
        return frame_embeds, self.pool_frames(frame_embeds)

    def encode_long_audio(self, waveform: torch.Tensor, window_seconds: float = WINDOW_SECONDS,
                          batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """One waveform [samples] of any length -> (frames [T, E], clip [E]), not normalised.

        Audio longer than a window is encoded window by window (models.windowing.encode_audio_windows);
        the clip embedding pools every frame.
        """
        return encode_audio_windows(self, waveform, window_seconds, batch_size)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> L2-normalised clip embeddings [B, E]."""
        return F.normalize(self.encode_clips(audio)[1], dim=-1)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """B captions -> L2-normalised sentence embeddings [B, E]."""
        _, word_embeds, attn_mask = self.encode_text(texts)
        return F.normalize(self.pool_words(word_embeds, attn_mask), dim=-1)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> the encoder's log-mel [B, 1, frames, n_mels] (before its batch norm)."""
        return self.audio_encoder.audio_enc.log_mel(waveform)

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


def as_model_config(config: ModelConfig | dict[str, Any] | Any) -> ModelConfig:
    """A ModelConfig from a ModelConfig, a YAML-shaped dict or an object with `model_config()`."""
    if isinstance(config, ModelConfig):
        return config
    if config is None or isinstance(config, dict):
        return ModelConfig.from_dict(config)
    if callable(getattr(config, "model_config", None)):
        return config.model_config()
    raise TypeError(f"expected a ModelConfig, a config dict or a Config, got {type(config).__name__}")
