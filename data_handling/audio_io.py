"""Audio decoding: soundfile reads the file (wav, flac, ogg, mp3), channels are averaged, then one of two
resamplers (RESAMPLERS):
- "soxr_hq": soxr at 'HQ' quality (librosa >= 0.10's default); evaluation, detection, and training with
  `data_args.resampler: soxr_hq`;
- "kaiser_best": resampy's 'kaiser_best' filter, then cut or zero-padded to ceil(frames * ratio) samples,
  which is what librosa.load(sr=...) does with librosa 0.9.2 and resampy, the reference's training
  environment (`data_args.resampler`'s default).

Integer PCM is scaled by soundfile to [-1, 1). Float files and the ringing of the resampler are returned
as they are (no clipping), like the reference's loader, so that embeddings of real audio match the
reference's.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

RESAMPLE_QUALITY = "HQ"
"""soxr quality, as librosa's default 'soxr_hq'."""
RESAMPLERS = ("soxr_hq", "kaiser_best")
"""The resamplers of load_audio / load_audio_window (module docstring)."""

_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError)
"""What soundfile / libsndfile raise on unreadable, truncated or unsupported files."""

RESAMPLER_MARGIN_SECONDS = 0.1
"""Audio decoded on each side of a window before resampling it (load_audio_window): the resampler's
filter then sees the same neighbourhood as when the whole file is resampled, and the window's samples
equal those of decoding the whole file and cutting, to float rounding (about 4e-7)."""

AudioSource = str | Path | bytes
"""A file path, or the bytes of an encoded file (e.g. a FLAC member of a shard)."""


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


def _source_name(source: AudioSource) -> Path:
    return Path("<bytes>") if isinstance(source, bytes) else Path(source)


def _open(source: AudioSource) -> sf.SoundFile:
    """A SoundFile on a path (checked to exist first) or on encoded bytes."""
    if isinstance(source, bytes):
        return sf.SoundFile(io.BytesIO(source))
    _require_file(Path(source))
    return sf.SoundFile(str(source))


def _frames_to_read(max_seconds: float | None, file_rate: int) -> int:
    """Frames of the file's start to decode: -1 (all) when max_seconds is None or 0."""
    if max_seconds is None or max_seconds == 0:
        return -1
    return int(max_seconds * file_rate)  # floor, as librosa.load(duration=...) counts them


def _check_samples(samples: np.ndarray, source: AudioSource) -> None:
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise AudioReadError(_source_name(source), "the file holds no samples")
    if not np.isfinite(samples).all():
        raise AudioReadError(_source_name(source), "the file holds NaN or infinite samples")


def _decode(source: AudioSource, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file (only its first max_seconds when given) into float32 [frames, channels] and its rate."""
    try:
        with _open(source) as sound_file:
            file_rate = int(sound_file.samplerate)
            frames = _frames_to_read(max_seconds, file_rate)
            samples = sound_file.read(frames=frames, dtype="float32", always_2d=True)
    except _DECODE_ERRORS as error:
        raise AudioReadError(_source_name(source), f"{type(error).__name__}: {error}") from error
    _check_samples(samples, source)
    return samples, file_rate


def _check_resampler(resampler: str) -> None:
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {list(RESAMPLERS)}, got {resampler!r}")


def _kaiser_best(samples: np.ndarray, file_rate: int, sample_rate: int) -> np.ndarray:
    """resampy's kaiser_best along axis 0, cut or zero-padded to resampled_length (librosa's fix_length)."""
    import resampy

    resampled = resampy.resample(samples, file_rate, sample_rate, filter="kaiser_best", axis=0)
    length = resampled_length(samples.shape[0], file_rate, sample_rate, "kaiser_best")
    if resampled.shape[0] >= length:
        return resampled[:length]
    padding = [(0, length - resampled.shape[0])] + [(0, 0)] * (resampled.ndim - 1)
    return np.pad(resampled, padding)


def _mono_resampled(samples: np.ndarray, file_rate: int, sample_rate: int | None, mono: bool,
                    resampler: str, source: AudioSource) -> np.ndarray:
    """[frames, channels] at file_rate -> float32 [samples] (mono) or [samples, channels] at sample_rate."""
    if mono:
        samples = samples.mean(axis=1, dtype=np.float32)  # [frames]
    if sample_rate is not None and sample_rate != file_rate:
        if resampler == "kaiser_best":
            try:
                samples = _kaiser_best(samples, file_rate, sample_rate)
            except ValueError as error:  # resampy: fewer frames than one output sample needs
                raise AudioReadError(_source_name(source), f"cannot resample it: {error}") from error
        else:
            samples = soxr.resample(samples, file_rate, sample_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(samples, dtype=np.float32)


def resampled_length(frames: int, file_rate: int, sample_rate: int, resampler: str = "soxr_hq") -> int:
    """Samples the resampler returns for `frames` input frames: frames * sample_rate / file_rate, rounded
    (soxr_hq) or rounded up (kaiser_best: librosa's ceil(frames * (sample_rate / file_rate)), in floats)."""
    if resampler == "kaiser_best":
        return math.ceil(frames * (float(sample_rate) / file_rate))
    return math.floor(frames * sample_rate / file_rate + 0.5)


def _check_max_seconds(max_seconds: float | None) -> None:
    if max_seconds is not None and not 0 <= max_seconds < math.inf:
        raise ValueError(f"max_seconds must be a finite number of seconds >= 0 (0 or None: whole file), "
                         f"got {max_seconds!r}")


def load_audio(path: AudioSource, sample_rate: int | None = 32000, mono: bool = True,
               max_seconds: float | None = None, resampler: str = "soxr_hq") -> np.ndarray:
    """Read an audio file, mix it to mono (mean of the channels) and resample it.

    Args:
        path: a file soundfile can decode (wav, flac, ogg, mp3, ...), any channel count, or its bytes.
        sample_rate: the rate of the returned samples; None keeps the file's rate.
        mono: average the channels (True) or keep them.
        max_seconds: decode only the file's first int(max_seconds * file rate) frames, before
            resampling (the rest of the file is not decoded), as the reference's training loader
            (librosa.load(duration=300)); None or 0 decodes the whole file.
        resampler: one of RESAMPLERS (module docstring).

    Returns:
        float32 [samples] when mono, else float32 [channels, samples]; integer PCM lies in [-1, 1).

    Raises:
        AudioReadError: the file is missing, cannot be decoded, is empty or holds non-finite samples.
    """
    _check_max_seconds(max_seconds)
    _check_resampler(resampler)
    samples, file_rate = _decode(path, max_seconds)  # [frames, channels]
    samples = _mono_resampled(samples, file_rate, sample_rate, mono, resampler, path)
    if samples.shape[0] == 0:
        raise AudioReadError(_source_name(path), f"no samples left after resampling {file_rate} Hz -> "
                                                 f"{sample_rate} Hz")
    return samples if mono else np.ascontiguousarray(samples.T)


def _window_frames(offset: int, window_samples: int, file_frames: int, file_rate: int,
                   sample_rate: int) -> tuple[int, int, int]:
    """(first file frame, end file frame, output index of the first frame) to decode for the output window
    [offset, offset + window_samples), with RESAMPLER_MARGIN_SECONDS on each side. The first frame is chosen
    so that its output index is a whole number (a multiple of out_step), i.e. the resampler's phase there
    is the whole file's."""
    common = math.gcd(file_rate, sample_rate)
    out_step, in_step = sample_rate // common, file_rate // common
    margin = math.ceil(RESAMPLER_MARGIN_SECONDS * sample_rate)
    first_out = max(0, offset - margin) // out_step * out_step
    first_frame = first_out // out_step * in_step
    last_frame = min(file_frames, math.ceil((offset + window_samples + margin) * file_rate / sample_rate))
    return first_frame, last_frame, first_out


def load_audio_window(source: AudioSource, sample_rate: int, window_samples: int,
                      choose_offset: Callable[[int], int], max_seconds: float | None = None,
                      resampler: str = "soxr_hq") -> np.ndarray:
    """One window of `load_audio(source, sample_rate, mono=True, max_seconds, resampler)`, decoding only
    around it.

    The decoded length is known from the header, so the window's offset is drawn first, by
    `choose_offset(excess)` with excess = decoded samples - window_samples (an int in [0, excess]), and
    only the file frames under the window (and RESAMPLER_MARGIN_SECONDS on each side, aligned so that
    the resampler's phase is the whole file's) are decoded and resampled. The result equals
    `load_audio(...)[offset:offset + window_samples]` to float rounding (bit for bit when the file's
    rate is sample_rate). Audio no longer than the window is returned whole (choose_offset not called).
    A file whose header overstates its length (some compressed formats) is decoded whole instead.

    Returns:
        float32 [min(window_samples, decoded samples)].

    Raises:
        AudioReadError: as load_audio.
    """
    _check_max_seconds(max_seconds)
    _check_resampler(resampler)
    if window_samples < 1:
        raise ValueError(f"window_samples must be >= 1, got {window_samples}")
    try:
        sound_file = _open(source)
    except _DECODE_ERRORS as error:
        raise AudioReadError(_source_name(source), f"{type(error).__name__}: {error}") from error
    with sound_file:
        file_rate = int(sound_file.samplerate)
        limit = _frames_to_read(max_seconds, file_rate)
        file_frames = sound_file.frames if limit < 0 else min(sound_file.frames, limit)
        total = resampled_length(file_frames, file_rate, sample_rate, resampler)
        if total <= window_samples:  # the whole (decoded part of the) file is the window
            first_frame, last_frame, first_out, offset = 0, file_frames, 0, 0
        else:
            offset = int(choose_offset(total - window_samples))
            if not 0 <= offset <= total - window_samples:
                raise ValueError(f"choose_offset returned {offset}, expected 0..{total - window_samples}")
            first_frame, last_frame, first_out = _window_frames(offset, window_samples, file_frames, file_rate,
                                                                sample_rate)
        try:
            sound_file.seek(first_frame)
            samples = sound_file.read(frames=last_frame - first_frame, dtype="float32", always_2d=True)
        except _DECODE_ERRORS as error:
            raise AudioReadError(_source_name(source), f"{type(error).__name__}: {error}") from error
    if samples.shape[0] < last_frame - first_frame:  # the header promised more frames than the file has
        logger.debug("%s: %d frames read where the header promises %d; decoding the whole file",
                     _source_name(source), samples.shape[0], last_frame - first_frame)
        whole = load_audio(source, sample_rate, mono=True, max_seconds=max_seconds, resampler=resampler)
        offset = max(0, min(offset, whole.shape[0] - window_samples))
        return np.ascontiguousarray(whole[offset:offset + window_samples])
    _check_samples(samples, source)
    window = _mono_resampled(samples, file_rate, sample_rate, True, resampler, source)
    start = offset - first_out
    return np.ascontiguousarray(window[start:start + window_samples])


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
