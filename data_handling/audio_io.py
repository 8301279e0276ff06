"""Audio decoding: soundfile reads the file (wav, flac, ogg, mp3), soxr resamples, channels are averaged.

Integer PCM is scaled by soundfile to [-1, 1). Float files and the ringing of the resampler are returned
as they are (no clipping), like the reference's loader (librosa.load with soxr 'HQ'), so that embeddings
of real audio match the reference's.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

RESAMPLE_QUALITY = "HQ"
"""soxr quality, as librosa's default 'soxr_hq'."""

_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError)
"""What soundfile / libsndfile raise on unreadable, truncated or unsupported files."""


class AudioReadError(RuntimeError):
    """An audio file is missing, unreadable, empty or holds non-finite samples; the message names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read audio file {self.path}: {reason}")

    def __reduce__(self):  # keeps the exception picklable across DataLoader workers
        return (type(self), (self.path, self.reason))


def _require_file(path: Path) -> None:
    if not path.is_file():
        reason = "is a directory, not a file" if path.is_dir() else "no such file"
        raise AudioReadError(path, reason)


def _frames_to_read(max_seconds: float | None, file_rate: int) -> int:
    """Frames of the file's start to decode: -1 (all) when max_seconds is None or 0."""
    if max_seconds is None or max_seconds == 0:
        return -1
    return int(max_seconds * file_rate)  # floor, as librosa.load(duration=...) counts them


def _decode(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file (only its first max_seconds when given) into float32 [frames, channels] and its rate."""
    _require_file(path)
    try:
        with sf.SoundFile(str(path)) as sound_file:
            file_rate = int(sound_file.samplerate)
            frames = _frames_to_read(max_seconds, file_rate)
            samples = sound_file.read(frames=frames, dtype="float32", always_2d=True)
    except _DECODE_ERRORS as error:
        raise AudioReadError(path, f"{type(error).__name__}: {error}") from error
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise AudioReadError(path, "the file holds no samples")
    if not np.isfinite(samples).all():
        raise AudioReadError(path, "the file holds NaN or infinite samples")
    return samples, file_rate


def load_audio(path: str | Path, sample_rate: int | None = 32000, mono: bool = True,
               max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file, mix it to mono (mean of the channels) and resample it.

    Args:
        path: a file soundfile can decode (wav, flac, ogg, mp3, ...), any channel count.
        sample_rate: the rate of the returned samples; None keeps the file's rate.
        mono: average the channels (True) or keep them.
        max_seconds: decode only the file's first int(max_seconds * file rate) frames, before
            resampling (the rest of the file is not decoded), as the reference's training loader
            (librosa.load(duration=300)); None or 0 decodes the whole file.

    Returns:
        float32 [samples] when mono, else float32 [channels, samples]; integer PCM lies in [-1, 1).

    Raises:
        AudioReadError: the file is missing, cannot be decoded, is empty or holds non-finite samples.
    """
    if max_seconds is not None and not 0 <= max_seconds < math.inf:
        raise ValueError(f"max_seconds must be a finite number of seconds >= 0 (0 or None: whole file), "
                         f"got {max_seconds!r}")
    path = Path(path)
    samples, file_rate = _decode(path, max_seconds)  # [frames, channels]
    if mono:
        samples = samples.mean(axis=1, dtype=np.float32)  # [frames]
    if sample_rate is not None and sample_rate != file_rate:
        samples = soxr.resample(samples, file_rate, sample_rate, quality=RESAMPLE_QUALITY)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.shape[0] == 0:
        raise AudioReadError(path, f"no samples left after resampling {file_rate} Hz -> {sample_rate} Hz")
    return samples if mono else np.ascontiguousarray(samples.T)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (soundfile.info), without decoding the samples.

    Raises:
        AudioReadError: the file is missing or its header cannot be read.
    """
    path = Path(path)
    _require_file(path)
    try:
        info = sf.info(str(path))
    except _DECODE_ERRORS as error:
        raise AudioReadError(path, f"{type(error).__name__}: {error}") from error
    if info.samplerate <= 0:
        raise AudioReadError(path, f"invalid sample rate {info.samplerate} in the header")
    return info.frames / info.samplerate
