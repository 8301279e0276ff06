"""Audio files of any length -> frame embeddings, window by window, with bounded memory.

A file is never decoded whole: each 10 s window (and 0.1 s of resampler margin on each side) is decoded,
resampled and encoded on its own (`data_handling.audio_io.load_audio_window`, `ASE.encode_audio`), a few
windows per forward pass, so memory holds one batch of windows plus what the caller keeps per frame.

Frame grid (models.windowing): frame i covers [i, i + 1) x 10 / 32 s. Without overlap the windows, the
tiling of the last partial window and the frames kept are `models.windowing.encode_audio_windows`' (the
`window` long-audio handling of the protocols): the frames equal `ASE.encode_long_audio`'s. With overlap,
windows start every 32 x (1 - overlap) frames and the embedding of a frame covered by several windows is
the mean of their (unnormalised) embeddings of it. Audio shorter than a window is tiled to 10 s, as the
SED and grounding protocols do, and only its frames that cover real audio are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data_handling.audio_io import AudioReadError, load_audio_window, resampled_length
from models.ase_model import ASE
from models.runtime import inference_context, model_device, resolve_device, unwrap
from models.windowing import FRAMES_PER_WINDOW, WINDOW_SECONDS, num_windows, tile_to_length, window_samples
from tools.eval.embedding import embed_audio_files
from tools.eval.loader_defaults import AUTO, eval_batch_size, eval_num_workers

OVERLAPS = (0.0, 0.5, 0.75)
"""Window overlaps whose stride is a whole number of frames (32, 16 and 8 frames)."""
DEFAULT_OVERLAP = 0.5
"""Overlap of detect.py and search.py: on long files made of the synthetic SED split, 50 % overlap beat none
on PSDS1, PSDS2, collar and segment F1 for 1.45x the time (docs/detection.md)."""


def audio_num_samples(path: str | Path, sample_rate: int) -> int:
    """Samples the file holds once resampled to `sample_rate`, from its header (nothing decoded).

    Raises:
        AudioReadError: the file is missing, its header unreadable, or it holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(path, "is a directory, not a file" if path.is_dir() else "no such file")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError) as error:
        raise AudioReadError(path, f"{type(error).__name__}: {error}") from error
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioReadError(path, f"the header gives {info.frames} frames at {info.samplerate} Hz; no audio")
    return resampled_length(info.frames, int(info.samplerate), sample_rate)


def file_frame_count(num_samples: int, window: int) -> int:
    """Frames of a file of `num_samples`: those covering real audio, within the windows that
    `models.windowing.num_windows` encodes (a last window with less than one frame of audio is dropped)."""
    samples_per_frame = window / FRAMES_PER_WINDOW
    covering = math.ceil(num_samples / samples_per_frame - 1e-9)
    return max(1, min(num_windows(num_samples, window) * FRAMES_PER_WINDOW, covering))


def stride_frames(overlap: float) -> int:
    """Frames between window starts for an overlap in OVERLAPS (0 -> 32, 0.5 -> 16, 0.75 -> 8)."""
    if not any(abs(overlap - allowed) < 1e-9 for allowed in OVERLAPS):
        raise ValueError(f"window overlap must be one of {OVERLAPS} (a whole number of frames), got {overlap}")
    return round(FRAMES_PER_WINDOW * (1.0 - overlap))


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive final frames of a file: frames [t, E] (unnormalised) starting at frame `start`."""

    start: int
    frames: torch.Tensor


class FrameStream:
    """The frame embeddings of one audio file, in time order, a batch of windows at a time.

    Iterating yields FrameChunk's (unnormalised frame embeddings [t, E], float32 on the CPU) whose frames
    together are the file's `num_frames` frames. `peak_batch_samples` records the most waveform samples
    held at once (at most windows_per_batch x window samples): the bound on audio in memory.

    Args:
        model: an ASE (or a wrapper); path: an audio file soundfile reads, any length and sample rate.
        overlap: window overlap (OVERLAPS); windows_per_batch: windows per forward pass.
        precision: float32 or bf16 (CUDA only), as `models.runtime.inference_context`.
    Raises (when iterated, or at construction for the header):
        AudioReadError: the file cannot be read.
    """

    def __init__(self, model: torch.nn.Module, path: str | Path, device: str | torch.device | None = None,
                 overlap: float = 0.0, windows_per_batch: int = 8, window_seconds: float = WINDOW_SECONDS,
                 precision: str = "float32"):
        self.model: ASE = unwrap(model)
        self.path = Path(path)
        self.device = model_device(self.model) if device is None else resolve_device(device)
        self.window = window_samples(self.model, window_seconds)
        if self.window % FRAMES_PER_WINDOW:
            raise ValueError(f"a window of {self.window} samples is not a whole number of frames "
                             f"({FRAMES_PER_WINDOW} per window); use a window_seconds that divides evenly")
        self.samples_per_frame = self.window // FRAMES_PER_WINDOW
        self.stride = stride_frames(overlap)
        self.windows_per_batch = max(1, int(windows_per_batch))
        self.precision = precision
        self.num_samples = audio_num_samples(self.path, self.model.sample_rate)
        self.num_frames = file_frame_count(self.num_samples, self.window)
        self.peak_batch_samples = 0

    @property
    def duration(self) -> float:
        """Seconds of audio (from the header)."""
        return self.num_samples / self.model.sample_rate

    def window_starts(self) -> list[int]:
        """First frame of every window: every `stride` frames, until a window reaches the last frame."""
        starts = [0]
        while starts[-1] + FRAMES_PER_WINDOW < self.num_frames:
            starts.append(starts[-1] + self.stride)
        return starts

    def read_window(self, start_frame: int) -> torch.Tensor:
        """The window starting at frame `start_frame`: [window] samples, a partial one tiled to full length."""
        offset = start_frame * self.samples_per_frame
        length = min(self.window, self.num_samples - offset)
        samples = load_audio_window(self.path, self.model.sample_rate, length, lambda excess: min(offset, excess))
        waveform = torch.from_numpy(samples)
        return waveform if waveform.shape[0] == self.window else tile_to_length(waveform, self.window)

    def __iter__(self) -> Iterator[FrameChunk]:
        starts = self.window_starts()
        sums: torch.Tensor | None = None          # [32, E] frames base .. base + 31 of the current window
        counts = torch.zeros(FRAMES_PER_WINDOW)
        base = 0
        with inference_context(self.model, self.device, self.precision):
            for first in range(0, len(starts), self.windows_per_batch):
                batch_starts = starts[first:first + self.windows_per_batch]
                batch = torch.stack([self.read_window(start) for start in batch_starts])     # [B, window]
                self.peak_batch_samples = max(self.peak_batch_samples, batch.numel())
                window_frames = self.model.encode_audio(batch.to(self.device), need_clip_features=False)[1]
                window_frames = window_frames.float().cpu()                               # [B, 32, E]
                del batch
                chunk_start, finished = base, []
                for position, start in enumerate(batch_starts):
                    if sums is None:
                        sums = torch.zeros_like(window_frames[position])
                    sums += window_frames[position]
                    counts += 1
                    is_last = first + position == len(starts) - 1
                    done = (self.num_frames - base) if is_last else starts[first + position + 1] - start
                    finished.append(sums[:done] / counts[:done, None])
                    sums = torch.cat([sums[done:], torch.zeros_like(sums[:done])])
                    counts = torch.cat([counts[done:], torch.zeros(done)])
                    base += done
                yield FrameChunk(chunk_start, torch.cat(finished))


# ----------------------------------------------------------------------------------------------------
# Many files: short ones batched (the protocols' embed_audio_files), long ones streamed
# ----------------------------------------------------------------------------------------------------
@dataclass
class EmbeddedFile:
    """What `embed_files` keeps of one readable file.

    index: position in the input list; duration: seconds (header); num_frames: T;
    frame_outputs: reduce_frames applied to its L2-normalised frames [T, E], concatenated along time;
    clip: L2-normalised clip embedding [E] (the codebook pooling every frame), or None when not asked for.
    """

    index: int
    path: Path
    duration: float
    num_frames: int
    frame_outputs: Any
    clip: torch.Tensor | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be read, and why."""

    index: int
    path: Path
    reason: str


def _concat(outputs: list) -> Any:
    if isinstance(outputs[0], torch.Tensor):
        return torch.cat(outputs)
    return np.concatenate(outputs)


def _stream_file(model: torch.nn.Module, index: int, path: Path, reduce_frames: Callable, device: torch.device,
                 overlap: float, windows_per_batch: int, precision: str, need_clip: bool) -> EmbeddedFile:
    """One file through FrameStream: reduce_frames per chunk; raw frames kept only to pool the clip."""
    stream = FrameStream(model, path, device, overlap, windows_per_batch, precision=precision)
    outputs, raw = [], []
    for chunk in stream:
        outputs.append(reduce_frames(F.normalize(chunk.frames, dim=-1)))
        if need_clip:
            raw.append(chunk.frames)
    clip = None
    if need_clip:
        ase = unwrap(model)
        with inference_context(ase, stream.device, precision):
            clip = F.normalize(ase.pool_frames(torch.cat(raw)[None].to(stream.device))[0].float().cpu(), dim=-1)
    return EmbeddedFile(index, path, stream.duration, stream.num_frames, _concat(outputs), clip)


def _batch_short_files(model: torch.nn.Module, batch: list[tuple[int, Path, int]], reduce_frames: Callable,
                       device: torch.device, batch_size: int, num_workers: int, precision: str
                       ) -> Iterator[EmbeddedFile | SkippedFile]:
    """Files of one window at most, through the protocols' `embed_audio_files` (tiled to 10 s)."""
    ase = unwrap(model)
    window = window_samples(ase)
    audio = embed_audio_files(model, [path for _, path, _ in batch], device, batch_size, num_workers,
                              pad_mode="tile", long_audio="window", precision=precision)
    row_of = {position: row for row, position in enumerate(audio.indices)}
    reasons = dict(audio.skipped)
    for position, (index, path, num_samples) in enumerate(batch):
        if position not in row_of:
            yield SkippedFile(index, path, reasons.get(str(path), "unreadable"))
            continue
        row = row_of[position]
        num_frames = file_frame_count(num_samples, window)
        yield EmbeddedFile(index, path, num_samples / ase.sample_rate, num_frames,
                           reduce_frames(audio.frames[row][:num_frames]), audio.clip[row])


def embed_files(model: torch.nn.Module, paths: Sequence[str | Path], reduce_frames: Callable[[torch.Tensor], Any],
                device: str | torch.device | None = None, overlap: float = 0.0, batch_size: int | str = AUTO,
                num_workers: int | str = AUTO, precision: str = "float32", need_clip: bool = False,
                files_per_batch: int = 256, progress: bool = True) -> Iterator[EmbeddedFile | SkippedFile]:
    """Embed audio files of any length and sample rate, in input order, with bounded memory.

    Files of at most one window (10 s plus less than a frame) are read whole and encoded in batches by
    `tools.eval.embedding.embed_audio_files` (tiled to 10 s: the SED and grounding protocols' input),
    `files_per_batch` files at a time; longer files are streamed (`FrameStream`, `batch_size` windows per
    forward pass). Only frames covering real audio are kept. Unreadable files are yielded as SkippedFile.

    Args:
        reduce_frames: L2-normalised frames [t, E] -> what to keep of them (e.g. scores [t, Q] or float16
            frames), called on consecutive chunks of a file; the results are concatenated along axis 0.
        batch_size, num_workers: windows (or short files) per forward pass and loader processes of short
            files; 'auto': the machine's measured best (tools.eval.loader_defaults).
        need_clip: also pool each file's clip embedding (a streamed file's raw frames are then held until
            its end: T x E floats).
    Yields:
        EmbeddedFile or SkippedFile, one per input path, in input order.
    """
    ase = unwrap(model)
    device = model_device(ase) if device is None else resolve_device(device)
    batch_size, num_workers = eval_batch_size(batch_size, device), eval_num_workers(num_workers, device)
    stride_frames(overlap)
    window = window_samples(ase)
    pending: list[tuple[int, Path, int]] = []
    bar = tqdm(total=len(paths), unit="file", desc="embedding", disable=not progress or None, dynamic_ncols=True)
    with bar:
        for index, path in enumerate(Path(path) for path in paths):
            try:
                num_samples = audio_num_samples(path, ase.sample_rate)
            except AudioReadError as error:
                yield from _flush(pending, bar, model, reduce_frames, device, batch_size, num_workers, precision)
                bar.update(1)
                yield SkippedFile(index, path, error.reason)
                continue
            if num_windows(num_samples, window) == 1:
                pending.append((index, path, num_samples))
                if len(pending) >= files_per_batch:
                    yield from _flush(pending, bar, model, reduce_frames, device, batch_size, num_workers, precision)
                continue
            yield from _flush(pending, bar, model, reduce_frames, device, batch_size, num_workers, precision)
            try:
                embedded: EmbeddedFile | SkippedFile = _stream_file(model, index, path, reduce_frames, device,
                                                                    overlap, batch_size, precision, need_clip)
            except AudioReadError as error:
                embedded = SkippedFile(index, path, error.reason)
            bar.update(1)
            yield embedded
        yield from _flush(pending, bar, model, reduce_frames, device, batch_size, num_workers, precision)


def _flush(pending: list[tuple[int, Path, int]], bar: tqdm, model: torch.nn.Module, reduce_frames: Callable,
           device: torch.device, batch_size: int, num_workers: int, precision: str
           ) -> Iterator[EmbeddedFile | SkippedFile]:
    """Embed and yield the pending short files, then empty the list."""
    if not pending:
        return
    batch = list(pending)
    pending.clear()
    for embedded in _batch_short_files(model, batch, reduce_frames, device, batch_size, num_workers, precision):
        bar.update(1)
        yield embedded
