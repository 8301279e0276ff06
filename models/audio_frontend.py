"""Audio front end: waveform -> log-mel spectrogram, and SpecAugment.

The log-mel equals the reference's (torchlibrosa conv-STFT) numerically, but is computed with
`torch.stft` and librosa's mel basis (Slaney scale and area normalisation, `slaney_mel_basis`, equal to
`librosa.filters.mel` with its defaults; tests/test_model_parts.py compares them) held as a non-persistent
buffer, always in float32 (also under autocast) on any device. The basis is computed here rather than
imported: importing `librosa.filters` pulls in scipy.signal and numba, 1.7 s of every script's start-up.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

AMIN = 1e-10  # floor of the mel power before the log, as in the reference


_SLANEY_LINEAR_HZ_PER_MEL = 200.0 / 3.0   # below 1 kHz the Slaney scale is linear, 200/3 Hz per mel
_SLANEY_LOG_START_HZ = 1000.0
_SLANEY_LOG_STEP = np.log(6.4) / 27.0      # above 1 kHz: 27 mels per factor 6.4 in frequency


def hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Frequencies (Hz) -> Slaney mels (Auditory Toolbox): linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / _SLANEY_LINEAR_HZ_PER_MEL
    log_start_mel = _SLANEY_LOG_START_HZ / _SLANEY_LINEAR_HZ_PER_MEL
    above = hz >= _SLANEY_LOG_START_HZ
    return np.where(above, log_start_mel + np.log(np.maximum(hz, _SLANEY_LOG_START_HZ) / _SLANEY_LOG_START_HZ)
                    / _SLANEY_LOG_STEP, mel)


def slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Slaney mels -> Hz, the inverse of `hz_to_slaney_mel`."""
    mel = np.asanyarray(mel, dtype=np.float64)
    log_start_mel = _SLANEY_LOG_START_HZ / _SLANEY_LINEAR_HZ_PER_MEL
    return np.where(mel >= log_start_mel, _SLANEY_LOG_START_HZ * np.exp(_SLANEY_LOG_STEP * (mel - log_start_mel)),
                    mel * _SLANEY_LINEAR_HZ_PER_MEL)


def slaney_mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft // 2 + 1] (float32): centres equally spaced on the Slaney mel
    scale between f_min and f_max, each filter's area normalised (2 / its bandwidth in Hz), as
    `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)` with htk=False, norm='slaney'."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges_hz = slaney_mel_to_hz(np.linspace(hz_to_slaney_mel(f_min), hz_to_slaney_mel(f_max), n_mels + 2))
    widths_hz = np.diff(edges_hz)                                  # [n_mels + 1]
    distance = edges_hz[:, None] - fft_hz[None, :]                 # [n_mels + 2, bins]
    rising = -distance[:-2] / widths_hz[:-1, None]                 # lower edge -> centre
    falling = distance[2:] / widths_hz[1:, None]                   # centre -> upper edge
    filters = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)   # rounded first, as librosa
    return (filters * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]).astype(np.float32)


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
        mel_basis = slaney_mel_basis(sample_rate, n_fft, n_mels, f_min, f_max)
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
