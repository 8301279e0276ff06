"""Audio of any length for an encoder that sees one 10 s window: the model's long-audio API.

The encoder sees at most about 10.23 s at once and gives 32 frames per 10 s (hop 10 / 32 s). A protocol
chooses how audio longer than a window is handled (`shorten_waveform`): its first 10 s ('cut'), one
random 10 s crop drawn from a seed and the file's position ('crop', the same on every run), or every
10 s window ('window', `encode_audio_windows`): consecutive windows whose frames are concatenated in
time, the last, partial window tiled (repeated) to 10 s and only its frames that cover real audio
kept; a last window holding less than one frame of real audio is not encoded. It also chooses how
shorter audio is brought to 10 s (`prepare_waveform`: tiled, zero-padded, or left to the encoder,
which stretches it).
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

WINDOW_SECONDS = 10.0
"""Length of one encoder window in seconds (32 frames)."""
FRAME_HOP_SECONDS = 10.0 / 32
"""Seconds per frame embedding."""
FRAMES_PER_WINDOW = 32
"""Frame embeddings per encoder window."""


class WindowEncoder(Protocol):
    """What the window functions need of a model (`models.ase_model.ASE` is one)."""

    sample_rate: int

    def encode_clips(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def encode_audio(self, audio: torch.Tensor, need_clip_features: bool = True): ...

    def pool_frames(self, frame_embeds: torch.Tensor) -> torch.Tensor: ...
PAD_MODES = ("tile", "zero", "none")
PadMode = Literal["tile", "zero", "none"]
LONG_AUDIO_MODES = ("window", "cut", "crop")
LongAudio = Literal["window", "cut", "crop"]


def tile_to_length(waveform: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat a [samples] waveform end to end and cut it to `length` samples."""
    repeats = math.ceil(length / waveform.shape[-1])
    return waveform.repeat(repeats)[:length]


def prepare_waveform(waveform: torch.Tensor, sample_rate: int, pad_mode: PadMode = "tile",
                     target_seconds: float = WINDOW_SECONDS, max_seconds: float | None = None) -> torch.Tensor:
    """Bring a [samples] waveform to a protocol's length.

    Audio longer than `max_seconds` (when given) is cut to its first `max_seconds`; audio shorter than
    `target_seconds` is tiled ('tile'), zero-padded at the end ('zero') or left as it is ('none').
    Longer audio is left for `encode_audio_windows`.
    """
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if max_seconds is not None:
        waveform = waveform[: round(max_seconds * sample_rate)]
    target = round(target_seconds * sample_rate)
    if waveform.shape[-1] >= target or pad_mode == "none":
        return waveform
    if pad_mode == "tile":
        return tile_to_length(waveform, target)
    return F.pad(waveform, (0, target - waveform.shape[-1]))


def crop_start(max_start: int, seed: int, position: int) -> int:
    """Start of a seeded random crop: uniform in [0, max_start], drawn by numpy's default_rng([seed, position]).

    The draw depends only on (seed, position), so a file's crop is the same on every run whatever the
    batch size, the number of loader processes or the other files evaluated with it.
    """
    if seed < 0 or position < 0:
        raise ValueError(f"crop seed and position must be integers >= 0, got seed {seed} and position {position}")
    return int(np.random.default_rng([seed, position]).integers(0, max_start + 1))


def shorten_waveform(waveform: torch.Tensor, max_samples: int, long_audio: LongAudio = "window",
                     crop_seed: int = 0, position: int = 0) -> torch.Tensor:
    """A [samples] waveform longer than `max_samples` as a protocol handles it.

    'cut': its first max_samples; 'crop': max_samples from a random start (`crop_start(excess, crop_seed,
    position)`, the reference's uniformly random crop made reproducible); 'window': unchanged (encoded
    window by window). A waveform of at most max_samples is returned as it is.
    """
    if long_audio not in LONG_AUDIO_MODES:
        raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES}, got {long_audio!r}")
    excess = waveform.shape[-1] - max_samples
    if excess <= 0 or long_audio == "window":
        return waveform
    start = crop_start(excess, crop_seed, position) if long_audio == "crop" else 0
    return waveform[start:start + max_samples]


def window_samples(model: WindowEncoder, window_seconds: float = WINDOW_SECONDS) -> int:
    """Samples per encoder window at the model's sample rate."""
    return round(window_seconds * model.sample_rate)


def num_windows(num_samples: int, window: int) -> int:
    """Windows that encode `num_samples` of audio: every full window, plus the last, partial one only when it
    holds at least one frame (window / 32 samples) of real audio; at least one."""
    num_full, remainder = divmod(num_samples, window)
    return max(1, num_full + int(remainder * FRAMES_PER_WINDOW >= window))


def _split_windows(waveform: torch.Tensor, window: int, count: int) -> torch.Tensor:
    """[samples] -> [count, window]: the full windows, then (when count asks for it) the partial window
    tiled to `window` samples; audio after the last counted window is dropped."""
    num_full = min(count, waveform.shape[0] // window)
    windows = list(waveform[: num_full * window].reshape(num_full, window))
    if count > num_full:
        windows.append(tile_to_length(waveform[num_full * window:], window))
    return torch.stack(windows)


@torch.no_grad()
def encode_audio_windows(model: WindowEncoder, waveform: torch.Tensor, window_seconds: float = WINDOW_SECONDS,
                         batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame and clip embeddings of one waveform of any length (not normalised).

    Args:
        model: an ASE in eval mode, on the waveform's device (`ASE.encode_long_audio` calls this).
        waveform: [samples] float at the model's sample rate (32 kHz). Audio that fits one window (its
            first `window_seconds` plus less than one frame, which is dropped) is encoded as one clip, as
            it is (shorter audio is stretched by the encoder: pad or tile it first where the protocol says
            so). Longer audio is cut into consecutive windows of `window_seconds` (`num_windows`), the last
            partial one tiled to full length.
        batch_size: windows encoded per forward pass.
    Returns:
        frame_embeds [T, E]: T = 32 for one window, else min(32 * windows, ceil(samples * 32 / window))
            (the frames of the tiled part of the last window are dropped), in time order, hop 10 / 32 s;
        clip_embed [E]: model.pool_frames over all T frames.
    """
    if waveform.dim() != 1:
        raise ValueError(f"waveform must be one mono signal [samples], got shape {list(waveform.shape)}")
    window = window_samples(model, window_seconds)
    count = num_windows(waveform.shape[0], window)
    if count == 1:
        frames, clip = model.encode_clips(waveform[:window][None])
        return frames[0], clip[0]
    else:
        windows = _split_windows(waveform, window, count)
        frames = torch.cat([model.encode_audio(chunk, need_clip_features=False)[1]
                            for chunk in windows.split(batch_size)])
        frames_per_window = frames.shape[1]
        num_frames = min(count * frames_per_window, -(-waveform.shape[0] * frames_per_window // window))  # ceil
        frame_embeds = frames.reshape(-1, frames.shape[-1])[:num_frames]
    return frame_embeds, model.pool_frames(frame_embeds[None])[0]
