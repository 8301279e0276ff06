"""Batched inference shared by the zero-shot scripts, the trainer's evaluation and example.py.

One function per arrow of the data flow:
    waveform of any length -> frame embeddings + clip embedding      `encode_audio_windows`
    audio files            -> L2-normalised clip and frame embeddings `embed_audio_files`
    texts / phrases        -> L2-normalised sentence embeddings       `embed_texts`, `embed_phrases`
    YAML + checkpoint      -> model ready for inference               `load_model_for_inference`

Audio of any length. The encoder sees at most about 10.23 s at once and gives 32 frames per 10 s
(hop 10 / 32 s). How audio longer than 10 s is handled is the protocol's choice (`long_audio`): its first
10 s ('cut'), one random 10 s crop drawn from a seed and the file's position ('crop', the same on every
run), or every 10 s window ('window'): consecutive windows whose frames are concatenated in time, the
last, partial window tiled (repeated) to 10 s and only its frames that cover real audio kept; a last
window holding less than one frame (10 / 32 s) of real audio is not encoded. The clip embedding is the
codebook aggregation (`model.msc`) of all frames. How shorter audio is brought to 10 s is the protocol's
choice too (`pad_mode`: tiled, zero-padded, or left to the encoder, which stretches it; or zero-padded to
the longest file of a span of neighbours, as the reference's retrieval batches are: `padding_spans`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from data_handling.audio_io import AudioReadError, load_audio
from models.ase_model import ASE
from models.checkpoint import check_state_dict, extract_state_dict, read_checkpoint
from tools.config import Config, ConfigError, apply_override, load_config, parse_config

log = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0
"""Length of one encoder window in seconds (32 frames)."""
FRAME_HOP_SECONDS = 10.0 / 32
"""Seconds per frame embedding."""
FRAMES_PER_WINDOW = 32
"""Frame embeddings per encoder window."""
PAD_MODES = ("tile", "zero", "none")
PadMode = Literal["tile", "zero", "none"]
LONG_AUDIO_MODES = ("window", "cut", "crop")
LongAudio = Literal["window", "cut", "crop"]


# ----------------------------------------------------------------------------------------------------
# Devices and modes
# ----------------------------------------------------------------------------------------------------
def resolve_device(name: str | torch.device | None) -> torch.device:
    """'auto' / None -> cuda if available else cpu; 'cuda' without a GPU falls back to cpu with a warning."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device '{name}' was asked for but CUDA is not available; running on the CPU "
                      f"(set device: cpu or --device cpu to silence this)", UserWarning, stacklevel=2)
        return torch.device("cpu")
    return device


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


@contextlib.contextmanager
def inference_context(model: nn.Module, device: torch.device) -> Iterator[None]:
    """model.eval(), no_grad and the model's `inference_precision`; restores the training flag after.

    On CUDA, "float32" is exact float32 (TF32 off, so the numbers are the CPU's) and "bf16" runs under
    bf16 autocast (about twice as fast, numbers differ by about 1 %). The CPU always runs float32.
    """
    was_training = model.training
    model.eval()
    precision = getattr(unwrap(model), "inference_precision", "float32")
    if device.type != "cuda":
        numerics: contextlib.AbstractContextManager = contextlib.nullcontext()
    elif precision == "bf16":
        numerics = torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    else:
        numerics = exact_float32()
    try:
        with torch.no_grad(), numerics:
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and convolutions inside the block (the flags are restored after)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def unwrap(model: nn.Module) -> ASE:
    """The ASE inside a DistributedDataParallel / compiled wrapper (or the model itself)."""
    while not isinstance(model, ASE):
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected an ASE model (or a DDP wrapper of one), got {type(model).__name__}")
        model = inner
    return model


# ----------------------------------------------------------------------------------------------------
# Waveform preparation
# ----------------------------------------------------------------------------------------------------
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


def window_samples(model: ASE, window_seconds: float = WINDOW_SECONDS) -> int:
    """Samples per encoder window at the model's sample rate."""
    return round(window_seconds * model.sample_rate)


def num_windows(num_samples: int, window: int) -> int:
    """Windows that encode `num_samples` of audio: every full window, plus the last, partial one only when it
    holds at least one frame (window / 32 samples) of real audio; at least one."""
    num_full, remainder = divmod(num_samples, window)
    return max(1, num_full + int(remainder * FRAMES_PER_WINDOW >= window))


# ----------------------------------------------------------------------------------------------------
# Audio of any length
# ----------------------------------------------------------------------------------------------------
def _split_windows(waveform: torch.Tensor, window: int, count: int) -> torch.Tensor:
    """[samples] -> [count, window]: the full windows, then (when count asks for it) the partial window
    tiled to `window` samples; audio after the last counted window is dropped."""
    num_full = min(count, waveform.shape[0] // window)
    windows = list(waveform[: num_full * window].reshape(num_full, window))
    if count > num_full:
        windows.append(tile_to_length(waveform[num_full * window:], window))
    return torch.stack(windows)


@torch.no_grad()
def encode_audio_windows(model: nn.Module, waveform: torch.Tensor, window_seconds: float = WINDOW_SECONDS,
                         batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame and clip embeddings of one waveform of any length (not normalised).

    Args:
        model: an ASE in eval mode, on the waveform's device.
        waveform: [samples] float at the model's sample rate (32 kHz). Audio that fits one window (its
            first `window_seconds` plus less than one frame, which is dropped) is encoded as one clip, as
            it is (shorter audio is stretched by the encoder: pad or tile it first where the protocol says
            so). Longer audio is cut into consecutive windows of `window_seconds` (`num_windows`), the last
            partial one tiled to full length.
        batch_size: windows encoded per forward pass.
    Returns:
        frame_embeds [T, E]: T = 32 for one window, else min(32 * windows, ceil(samples * 32 / window))
            (the frames of the tiled part of the last window are dropped), in time order, hop 10 / 32 s;
        clip_embed [E]: model.msc over all T frames.
    """
    model = unwrap(model)
    if waveform.dim() != 1:
        raise ValueError(f"waveform must be one mono signal [samples], got shape {list(waveform.shape)}")
    window = window_samples(model, window_seconds)
    count = num_windows(waveform.shape[0], window)
    if count == 1:
        _, frames = model.encode_audio(waveform[:window][None], need_clip_features=False)
        frame_embeds = frames[0]
    else:
        windows = _split_windows(waveform, window, count)
        frames = torch.cat([model.encode_audio(chunk, need_clip_features=False)[1]
                            for chunk in windows.split(batch_size)])
        frames_per_window = frames.shape[1]
        num_frames = min(count * frames_per_window, -(-waveform.shape[0] * frames_per_window // window))  # ceil
        frame_embeds = frames.reshape(-1, frames.shape[-1])[:num_frames]
    clip_embed = model.msc(frame_embeds[None], model.codebook)[0]
    return frame_embeds, clip_embed


# ----------------------------------------------------------------------------------------------------
# Audio files -> embeddings
# ----------------------------------------------------------------------------------------------------
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


def _encode_equal_length(model: ASE, waveforms: list[torch.Tensor], device: torch.device
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of one length <= a window, as one batch -> (frames [B, 32, E], clip embeddings [B, E])."""
    _, frames = model.encode_audio(torch.stack(waveforms).to(device), need_clip_features=False)
    return frames, model.msc(frames, model.codebook)


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
            results[item["index"]] = encode_audio_windows(model, waveform, window_seconds)
        else:
            by_length.setdefault(min(length, window), []).append(item)
    for length, group in by_length.items():
        frames, clips = _encode_equal_length(model, [item["waveform"][:length] for item in group], device)
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
                      batch_size: int = 32, num_workers: int = 0, pad_mode: PadMode = "tile",
                      target_seconds: float = WINDOW_SECONDS, long_audio: LongAudio = "window",
                      crop_seed: int = 0, padding_spans: Sequence[tuple[int, int]] | None = None,
                      window_seconds: float = WINDOW_SECONDS) -> AudioEmbeddings:
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
        device: where the audio goes (default: the model's device); bf16 autocast on CUDA only.
        batch_size: files per DataLoader batch.
        num_workers: DataLoader processes that read and resample audio.
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
    batch_size = max(1, batch_size)
    num_workers = min(num_workers, math.ceil(len(paths) / batch_size))    # no idle loader processes
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_as_list)
    window = window_samples(ase, window_seconds)
    encoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    durations: dict[int, float] = {}
    lengths: dict[int, int] = {}
    skipped: list[tuple[str, str]] = []
    waiting: list[dict[str, Any]] = []
    with inference_context(ase, device):
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
                   pad_mode: PadMode = "tile", target_seconds: float = WINDOW_SECONDS
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
    with inference_context(ase, device):
        frames, clip = encode_audio_windows(ase, prepared.to(device))
    frames_per_second = 1.0 / FRAME_HOP_SECONDS
    num_real = min(frames.shape[0], math.ceil(waveform.numel() / ase.sample_rate * frames_per_second - 1e-6))
    return F.normalize(frames[:num_real].float(), dim=-1).cpu(), F.normalize(clip.float(), dim=-1).cpu()


def log_mel_spectrogram(model: nn.Module, waveform: torch.Tensor) -> torch.Tensor:
    """The model's log-mel (before bn0) of a [samples] waveform of any length -> [frames, n_mels] CPU."""
    ase = unwrap(model)
    device = model_device(ase)
    with torch.no_grad():
        log_mel = ase.audio_encoder.audio_enc.log_mel(waveform.float()[None].to(device))
    return log_mel[0, 0].float().cpu()


# ----------------------------------------------------------------------------------------------------
# Texts -> embeddings
# ----------------------------------------------------------------------------------------------------
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
                batch_size: int = 256) -> torch.Tensor:
    """Sentence embeddings: model.msc of the word embeddings with the text mask, L2-normalised.

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
    with inference_context(ase, device):
        for start in range(0, len(unique), max(1, batch_size)):
            _, word_embeds, attn_mask = ase.encode_text(unique[start:start + batch_size])
            sentence = ase.msc(word_embeds, ase.codebook, attn_mask.to(word_embeds.device))
            chunks.append(F.normalize(sentence.float(), dim=-1).cpu())
    embeds = torch.cat(chunks)
    row = {text: position for position, text in enumerate(unique)}
    return embeds[[row[text] for text in texts]]


def embed_phrases(model: nn.Module, phrases: Sequence[str], device: str | torch.device | None = None,
                  batch_size: int = 256) -> torch.Tensor:
    """Phrase embeddings for grounding ([N, E], L2-normalised): each phrase encoded as a sentence."""
    return embed_texts(model, _check_texts(phrases, "phrases"), device, batch_size)


# ----------------------------------------------------------------------------------------------------
# Model loading
# ----------------------------------------------------------------------------------------------------
def _checkpoint_config(checkpoint: dict[str, Any], path: Path, overrides: Sequence[str]) -> Config | None:
    """The Config stored in a checkpoint's 'config' entry (with `overrides` applied), or None."""
    stored = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    if not isinstance(stored, dict):
        return None
    data = parse_config(stored, source=f"{path}['config']").to_dict()
    for override in overrides:
        apply_override(data, override)
    try:
        return parse_config(data, source=f"{path}['config']")
    except ConfigError as error:
        raise ConfigError(f"{error}\nThe checkpoint's own config could not be used; pass "
                          f"use_checkpoint_config=False (scripts: --ignore-ckpt-config) to build the model "
                          f"from the YAML's model keys instead") from error


def _for_inference(config: Config) -> Config:
    """A copy that reads no pretrained weights (the checkpoint brings them) and trains nothing."""
    data = config.to_dict()
    data["text_encoder_args"]["pretrained"] = False
    data["audio_encoder_args"]["pretrained"] = False
    return parse_config(data, source="inference config")


def load_model_for_inference(config: str | Path | Config | dict | None, ckpt_path: str | Path | None,
                             device: str | torch.device | None = "auto", overrides: Sequence[str] = (),
                             use_checkpoint_config: bool = True) -> ASE:
    """Build an ASE, load a checkpoint into it, move it to `device`, eval mode.

    The checkpoint is self-describing when it holds a 'config' entry (a dict of our Config, as
    pretrain.py saves): the model is then built from it, and the YAML's model keys are used only for
    checkpoints without one (the released model.pt). `overrides` (key=value) are applied to the
    checkpoint's config too, e.g. to point text_encoder_args.type at a local folder. The text tower
    and HTS-AT are built without reading pretrained weights; the checkpoint brings every weight.
    Errors of the loaders (missing file, refused pickle, mis-shaped tensors) pass through.

    Args:
        config: a YAML path, a Config or a config dict (None: the defaults, i.e. the paper's model).
        ckpt_path: our or the reference's checkpoint; None builds a model with random weights (tests).
        device: 'auto', 'cpu', 'cuda', 'cuda:1' or a torch.device.
    """
    if isinstance(config, (str, Path)):
        config = load_config(config, list(overrides))
    config = parse_config(config) if not isinstance(config, Config) else config
    checkpoint: dict[str, Any] | None = None
    if ckpt_path is not None:
        checkpoint = read_checkpoint(ckpt_path)
        stored = _checkpoint_config(checkpoint, Path(ckpt_path), overrides) if use_checkpoint_config else None
        config = stored or config
        config = _for_inference(config)
    model = ASE(config)
    if checkpoint is not None:
        state = check_state_dict(model, extract_state_dict(checkpoint, ckpt_path), ckpt_path)
        model.load_state_dict(state, strict=False)
    else:
        log.warning("no checkpoint given: the model has random weights")
    return model.to(resolve_device(device)).eval()
