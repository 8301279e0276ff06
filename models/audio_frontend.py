"""Audio front end: waveform -> log-mel spectrogram, and SpecAugment.

The log-mel equals the reference's (torchlibrosa conv-STFT) numerically, but is computed with
`torch.stft` and the librosa mel basis held as a non-persistent buffer, always in float32 (also
under autocast) on any device.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

AMIN = 1e-10  # floor of the mel power before the log, as in the reference


class LogMelFrontend(nn.Module):
    """Waveform [B, N] -> log-mel power in dB [B, 1, N // hop + 1, n_mels].

    Periodic Hann window, centred reflect-padded STFT, power spectrogram, Slaney mel basis,
    10 * log10(max(mel, 1e-10)); no top_db clipping.
    """

    def __init__(self, sample_rate: int = 32000, n_fft: int = 1024, hop_length: int = 320,
                 f_min: float = 50.0, f_max: float = 14000.0, n_mels: int = 64):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        mel_basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis.T.astype(np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrum = torch.stft(waveform.float(), n_fft=self.n_fft, hop_length=self.hop_length,
                                  window=self.window, center=True, pad_mode="reflect", return_complex=True)
            power = spectrum.real.square() + spectrum.imag.square()      # [B, F, T]
            mel = power.transpose(1, 2) @ self.mel_basis                  # [B, T, n_mels]
            log_mel = 10.0 * torch.log10(mel.clamp(min=AMIN))
        return log_mel.unsqueeze(1)

    def reference_constants(self) -> dict[str, torch.Tensor]:
        """The reference's conv-STFT kernels and mel matrix, for checkpoints that reference code reads.

        Returns `conv_real` and `conv_imag` [n_fft // 2 + 1, 1, n_fft] (DFT rows times the window) and
        `melW` [n_fft // 2 + 1, n_mels].
        """
        n = torch.arange(self.n_fft, dtype=torch.float64)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)
        phase = 2 * torch.pi * torch.outer(k, n) / self.n_fft
        window = self.window.double().cpu()
        conv_real = (torch.cos(phase) * window).float().unsqueeze(1)
        conv_imag = (-torch.sin(phase) * window).float().unsqueeze(1)
        return {"conv_real": conv_real, "conv_imag": conv_imag, "melW": self.mel_basis.detach().cpu().clone()}


class SpecAugment(nn.Module):
    """Zero random time and frequency stripes of a [B, 1, T, F] map, independently per example.

    Each stripe has a width drawn uniformly from [0, drop_width) and a start uniform over the positions
    where it fits (the reference's SpecAugmentation). Identity in eval mode.
    """

    def __init__(self, time_drop_width: int = 64, time_stripes: int = 2,
                 freq_drop_width: int = 8, freq_stripes: int = 2):
        super().__init__()
        self.time_drop_width = time_drop_width
        self.time_stripes = time_stripes
        self.freq_drop_width = freq_drop_width
        self.freq_stripes = freq_stripes

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return spec
        batch, _, time, freq = spec.shape
        keep_time = _stripes_keep_mask(batch, time, self.time_drop_width, self.time_stripes, spec.device)
        keep_freq = _stripes_keep_mask(batch, freq, self.freq_drop_width, self.freq_stripes, spec.device)
        keep = keep_time[:, None, :, None] & keep_freq[:, None, None, :]
        return spec * keep.to(spec.dtype)


def _stripes_keep_mask(batch: int, length: int, drop_width: int, stripes: int,
                       device: torch.device) -> torch.Tensor:
    """Boolean [batch, length]: False inside `stripes` random stripes per row."""
    positions = torch.arange(length, device=device)
    keep = torch.ones(batch, length, dtype=torch.bool, device=device)
    for _ in range(stripes):
        widths = torch.randint(0, drop_width, (batch, 1), device=device)
        starts = (torch.rand(batch, 1, device=device) * (length - widths + 1)).long()
        keep &= ~((positions >= starts) & (positions < starts + widths))
    return keep
