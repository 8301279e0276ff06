"""Batched embedding of audio files and texts for evaluation, the scripts and example.py.

    audio files (any length, any format) -> L2-normalised clip and frame embeddings   `embed_audio_files`
    one waveform of any length           -> L2-normalised frames and clip              `embed_waveform`
    texts                                -> L2-normalised sentence embeddings           `embed_texts`

Reading, resampling and the protocol's padding happen in DataLoader workers; each arrow of the model
itself is one ASE method (`encode_clips`, `encode_long_audio`, `embed_text`), and the long-audio
handling is models.windowing's. Files that cannot be read are skipped and listed, never raised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from data_handling.audio_io import AudioReadError, load_audio
from models.ase_model import ASE
from models.runtime import inference_context, model_device, resolve_device, unwrap
from models.windowing import (
    FRAME_HOP_SECONDS,
    LONG_AUDIO_MODES,
    PAD_MODES,
    WINDOW_SECONDS,
    LongAudio,
    PadMode,
    num_windows,
    prepare_waveform,
    shorten_waveform,
    window_samples,
)
from tools.eval.loader_defaults import AUTO, eval_batch_size, eval_num_workers

log = logging.getLogger(__name__)


@dataclass
class AudioEmbeddings:
    """Embeddings of the readable files of a list, in the list's order.

    clip: [N, E] L2-normalised clip embeddings (float32, CPU).
    frames: N tensors [T_i, E], L2-normalised frame embeddings (float32, CPU), hop 10 / 32 s.
    durations: N durations in seconds of the audio as read (before padding, tiling, cutting or cropping).
    indices: N positions in the input list of the embedded files.
    skipped: (path, reason) of the files that could not be read (missing, undecodable or empty).
    """

    clip: torch.Tensor
    frames: list[torch.Tensor]
    durations: list[float]
    indices: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


class AudioFileDataset(Dataset):
    """Reads, resamples and mixes down audio files, shortens long ones (`shorten_waveform`, with the file's
    position in `paths` as the crop position) and pads short ones (`prepare_waveform`); never raises on a
    bad file. Silent (all-zero) files are read like any other.

    Item: dict(index, waveform [samples] float32 tensor or None, duration seconds as read, error str or None).
    """

    def __init__(self, paths: Sequence[str | Path], sample_rate: int, pad_mode: PadMode = "tile",
                 target_seconds: float = WINDOW_SECONDS, long_audio: LongAudio = "window", crop_seed: int = 0,
                 window_seconds: float = WINDOW_SECONDS):
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        if long_audio not in LONG_AUDIO_MODES:
            raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES}, got {long_audio!r}")
        self.paths = [Path(path) for path in paths]
        self.sample_rate = sample_rate
        self.pad_mode = pad_mode
        self.target_seconds = target_seconds
        self.long_audio = long_audio
        self.crop_seed = crop_seed
        self.window = round(window_seconds * sample_rate)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "waveform": None, "duration": 0.0, "error": None}
        try:
            samples = load_audio(self.paths[index], sample_rate=self.sample_rate, mono=True)
        except AudioReadError as error:
            item["error"] = error.reason
            return item
        item["duration"] = samples.shape[0] / self.sample_rate
        waveform = shorten_waveform(torch.from_numpy(samples), self.window, self.long_audio, self.crop_seed, index)
        item["waveform"] = prepare_waveform(waveform, self.sample_rate, self.pad_mode, self.target_seconds)
        return item


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """collate_fn: keep the items as a list (clips of different lengths are grouped later)."""
    return batch


def _encode_items(model: ASE, items: list[dict[str, Any]], device: torch.device,
                  window_seconds: float) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Index -> (frames [T, E], clip [E]) of readable items (not normalised); one forward per clip length."""
    window = window_samples(model, window_seconds)
    results: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    by_length: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        length = item["waveform"].shape[0]
        if num_windows(length, window) > 1:
            waveform = item["waveform"].to(device)
            results[item["index"]] = model.encode_long_audio(waveform, window_seconds)
        else:
            by_length.setdefault(min(length, window), []).append(item)
    for length, group in by_length.items():
        frames, clips = model.encode_clips(torch.stack([item["waveform"][:length] for item in group]).to(device))
        for row, item in enumerate(group):
            results[item["index"]] = (frames[row], clips[row])
    return results


def check_padding_spans(spans: Sequence[tuple[int, int]], num_files: int) -> list[tuple[int, int]]:
    """Validate `embed_audio_files`' padding_spans: one (first, last) per file, 0 <= first <= position <= last
    < num_files."""
    spans = [(int(first), int(last)) for first, last in spans]
    if len(spans) != num_files:
        raise ValueError(f"padding_spans must hold one (first, last) pair per file: {num_files} files, "
                         f"{len(spans)} spans")
    for position, (first, last) in enumerate(spans):
        if not 0 <= first <= position <= last < num_files:
            raise ValueError(f"padding span {position} is {(first, last)}; each span must contain its own file's "
                             f"position and lie within [0, {num_files})")
    return spans


def _pad_to_span(item: dict[str, Any], span: tuple[int, int], lengths: Mapping[int, int], window: int
                 ) -> dict[str, Any]:
    """Zero-pad an item's waveform to the longest length (at most one window) among the span's files."""
    target = min(window, max(lengths[position] for position in range(span[0], span[1] + 1)))
    waveform = item["waveform"]
    if waveform.shape[0] < target:
        item = {**item, "waveform": F.pad(waveform, (0, target - waveform.shape[0]))}
    return item


def embed_audio_files(model: nn.Module, paths: Sequence[str | Path], device: str | torch.device | None = None,
                      batch_size: int | str = AUTO, num_workers: int | str = AUTO, pad_mode: PadMode = "tile",
                      target_seconds: float = WINDOW_SECONDS, long_audio: LongAudio = "window",
                      crop_seed: int = 0, padding_spans: Sequence[tuple[int, int]] | None = None,
                      window_seconds: float = WINDOW_SECONDS, precision: str = "float32") -> AudioEmbeddings:
    """Embed audio files in batches: L2-normalised clip and frame embeddings.

    Files are read at the model's sample rate, mono. Files longer than a window are cut, cropped or
    windowed (`long_audio`, `shorten_waveform`; the crop of the file at position i depends only on
    (crop_seed, i)). Shorter files are tiled, zero-padded or left as they are to `target_seconds`
    (`pad_mode`), or, with `padding_spans`, zero-padded to the longest file of their span (the reference's
    retrieval batches); what stays shorter than a window is stretched by the encoder. Files of equal
    length are encoded together. Files that cannot be read (missing, undecodable, empty) are skipped,
    logged and listed in `skipped`; silent files are embedded like any other.

    Args:
        model: an ASE (or a DDP wrapper of one) on `device`; its training flag is restored afterwards.
        paths: N audio files.
        device: where the audio goes (default: the model's device).
        precision: float32 (exact) or bf16 (autocast), on CUDA only (`models.runtime.inference_context`).
        batch_size: files per DataLoader batch; 'auto': the device's measured best (tools.eval.loader_defaults).
        num_workers: DataLoader processes that read and resample audio; 'auto': the machine's best
            (tools.eval.loader_defaults). Neither changes a number, only the wall time.
        padding_spans: None, or N pairs (first, last): file i is zero-padded to the longest of files
            first..last (after cutting or cropping, at most one window; skipped files count as 0 samples).
            Needs pad_mode 'zero'. Files are streamed: a file waits only until its span's last file has
            been read, so memory grows with the spans' widths, not with N.
    Returns:
        AudioEmbeddings with clip [N', E], frames N' x [T_i, E], N' = N minus the skipped files.
    """
    ase = unwrap(model)
    device = model_device(ase) if device is None else resolve_device(device)
    if padding_spans is not None:
        if pad_mode != "zero":
            raise ValueError(f"padding_spans zero-pad files to their span's longest file; pad_mode must be 'zero', "
                             f"got {pad_mode!r}")
        padding_spans = check_padding_spans(padding_spans, len(paths))
    dataset = AudioFileDataset(paths, ase.sample_rate, "none" if padding_spans else pad_mode, target_seconds,
                               long_audio, crop_seed, window_seconds)
    batch_size = eval_batch_size(batch_size, device)
    num_workers = min(eval_num_workers(num_workers, device), math.ceil(len(paths) / batch_size))  # none idle
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_as_list,
                        pin_memory=device.type == "cuda")
    window = window_samples(ase, window_seconds)
    encoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    durations: dict[int, float] = {}
    lengths: dict[int, int] = {}
    skipped: list[tuple[str, str]] = []
    waiting: list[dict[str, Any]] = []
    with inference_context(ase, device, precision):
        for items in loader:
            for item in items:
                if item["error"] is not None:
                    skipped.append((str(dataset.paths[item["index"]]), item["error"]))
                    log.warning("skipped %s: %s", dataset.paths[item["index"]], item["error"])
                durations[item["index"]] = item["duration"]
                lengths[item["index"]] = 0 if item["waveform"] is None else item["waveform"].shape[0]
            waiting += [item for item in items if item["error"] is None]
            if padding_spans is None:
                ready, waiting = waiting, []
            else:
                last_read = items[-1]["index"]
                ready = [_pad_to_span(item, padding_spans[item["index"]], lengths, window) for item in waiting
                         if padding_spans[item["index"]][1] <= last_read]
                waiting = [item for item in waiting if padding_spans[item["index"]][1] > last_read]
            for index, (frames, clip) in _encode_items(ase, ready, device, window_seconds).items():
                encoded[index] = (F.normalize(frames.float(), dim=-1).cpu(), F.normalize(clip.float(), dim=-1).cpu())
    return _collect(encoded, durations, skipped, ase.config.embed_size, len(paths))


def _collect(encoded: dict[int, tuple[torch.Tensor, torch.Tensor]], durations: dict[int, float],
             skipped: list[tuple[str, str]], embed_size: int, num_paths: int) -> AudioEmbeddings:
    """Order the normalised CPU embeddings by input position."""
    indices = sorted(encoded)
    frames = [encoded[index][0] for index in indices]
    clip = torch.stack([encoded[index][1] for index in indices]) if indices else torch.zeros(0, embed_size)
    if skipped:
        log.warning("%d of %d audio file(s) skipped (missing, unreadable or empty)", len(skipped), num_paths)
    return AudioEmbeddings(clip=clip, frames=frames, durations=[durations[index] for index in indices],
                           indices=indices, skipped=skipped)


def embed_waveform(model: nn.Module, waveform: torch.Tensor, device: str | torch.device | None = None,
                   pad_mode: PadMode = "tile", target_seconds: float = WINDOW_SECONDS, precision: str = "float32"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One waveform of any length -> L2-normalised (frames [T, E], clip [E]), float32 on the CPU.

    Short audio is tiled / zero-padded (`pad_mode`) to `target_seconds` for encoding; only the frames
    that cover the real audio are returned (T = ceil(duration / (10 / 32)), at most the frames computed),
    while the clip embedding aggregates every encoded frame (as the protocols do).
    Args:
        waveform: [samples] float at the model's sample rate.
    """
    ase = unwrap(model)
    device = model_device(ase) if device is None else resolve_device(device)
    if waveform.dim() != 1 or waveform.numel() == 0:
        raise ValueError(f"waveform must be a non-empty mono signal [samples], got shape {list(waveform.shape)}")
    prepared = prepare_waveform(waveform.float(), ase.sample_rate, pad_mode, target_seconds)
    with inference_context(ase, device, precision):
        frames, clip = ase.encode_long_audio(prepared.to(device))
    frames_per_second = 1.0 / FRAME_HOP_SECONDS
    num_real = min(frames.shape[0], math.ceil(waveform.numel() / ase.sample_rate * frames_per_second - 1e-6))
    return F.normalize(frames[:num_real].float(), dim=-1).cpu(), F.normalize(clip.float(), dim=-1).cpu()


def log_mel_spectrogram(model: nn.Module, waveform: torch.Tensor) -> torch.Tensor:
    """The model's log-mel (before bn0) of a [samples] waveform of any length -> [frames, n_mels] CPU."""
    ase = unwrap(model)
    device = model_device(ase)
    with torch.no_grad():
        log_mel = ase.log_mel(waveform.float()[None].to(device))
    return log_mel[0, 0].float().cpu()


def _check_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got one string {texts!r}; wrap it in a list")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{position}] must be a str, got {type(text).__name__}: {text!r}")
        if not text.strip():
            raise ValueError(f"{what}[{position}] is empty; every {what[:-1]} needs at least one word")
    return texts


def embed_texts(model: nn.Module, texts: Sequence[str], device: str | torch.device | None = None,
                batch_size: int = 256, precision: str = "float32") -> torch.Tensor:
    """Sentence embeddings (`ASE.embed_text`: the pooled words, L2-normalised), in batches.

    Identical texts are encoded once. No text preprocessing here (the caller decides the protocol).

    Args:
        texts: N non-empty strings.
    Returns:
        [N, E] float32 on the CPU.
    """
    texts = _check_texts(texts, "texts")
    ase = unwrap(model)
    device = model_device(ase) if device is None else resolve_device(device)
    unique = list(dict.fromkeys(texts))
    if not unique:
        return torch.zeros(0, ase.config.embed_size)
    chunks = []
    with inference_context(ase, device, precision):
        for start in range(0, len(unique), max(1, batch_size)):
            chunks.append(ase.embed_text(unique[start:start + batch_size]).float().cpu())
    embeds = torch.cat(chunks)
    row = {text: position for position, text in enumerate(unique)}
    return embeds[[row[text] for text in texts]]
