"""The training Dataset and its collate function: caption rows (data_handling/training_items.py) ->
(audio, caption) pairs -> padded batches.

A file that is missing or corrupt when the dataset reads it is, by default, skipped: the dataset logs it
(the first few per process at WARNING level, the rest at DEBUG) and returns None; collate_captions drops
it and counts it in `num_skipped`. With strict=True the dataset raises AudioReadError instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from data_handling.audio_io import RESAMPLERS, AudioReadError, load_audio, load_audio_window
from data_handling.caption_rows import CaptionItem
from data_handling.keyed_random import DrawKey, SampleDraw, crop_offset
from data_handling.source_records import template_caption
from data_handling.text_preprocess import preprocess_caption
from data_handling.training_items import fill_missing_durations

logger = logging.getLogger(__name__)

DEFAULT_MAX_DECODE_SECONDS = 300.0
MAX_FAILURES_LOGGED = 5
"""Per dataset copy (i.e. per worker process): failures logged at WARNING level; later ones at DEBUG."""


class TrainingClips(Dataset):
    """What the training datasets (files: CaptionAudioDataset, shards: ShardCaptionDataset) share: the random
    crop's offset and the counted, logged skip of a clip that cannot be read. Subclasses set `train` and
    `num_failures`.

    An index is a row (int) or a SampleDraw(row, key) from a keyed batch sampler: with a key the crop offset
    is keyed_random.crop_offset(key, excess), the same in any process and after any resume; a plain row
    draws it from torch.randint (torch's RNG state, per DataLoader worker).
    """

    train: bool
    num_failures: int

    @staticmethod
    def _split_index(index: int | SampleDraw) -> tuple[int, DrawKey | None]:
        """(row, key of its draws or None)."""
        if isinstance(index, SampleDraw):
            return int(index.row), index.key
        return int(index), None

    def _offset_chooser(self, key: DrawKey | None) -> Callable[[int], int]:
        """excess -> the window's first sample, for a clip max_samples + excess samples long (excess > 0)."""
        if not self.train:
            return lambda excess: 0
        if key is None:
            return lambda excess: int(torch.randint(0, excess + 1, (1,)).item())
        return lambda excess: crop_offset(key, excess)

    def _report_failure(self, error: AudioReadError) -> None:
        self.num_failures += 1
        level = logging.WARNING if self.num_failures <= MAX_FAILURES_LOGGED else logging.DEBUG
        suffix = " (further failures of this process are logged at DEBUG level)" \
            if self.num_failures == MAX_FAILURES_LOGGED else ""
        logger.log(level, "skipping a training clip: %s%s", error, suffix)


class CaptionAudioDataset(TrainingClips):
    """(audio, caption) pairs for contrastive training.

    __getitem__(i) returns dict(audio=float32 tensor [samples] at sample_rate, caption=preprocessed str,
    idx=clip_index, path=str), or None when the audio file cannot be read and strict is False.

    Only the first max_decode_seconds of a file are decoded (0: all of it), as the reference. Cropping,
    when max_length > 0 and the decoded clip is longer than max_length seconds: train=True takes a
    random window whose offset is uniform over the decoded samples, keyed by the sample's DrawKey when
    the index is a SampleDraw (as in training: see TrainingClips), else from torch.randint; train=False
    keeps the first max_length seconds. Shorter clips are returned whole (collate_captions pads them).

    partial_decoding=True draws the same offset from the header's length and decodes only the window
    (data_handling.audio_io.load_audio_window): the same samples, to float rounding, for far less work on
    long files. False decodes the first max_decode_seconds whole and cuts, as the reference.

    resampler: how files not at sample_rate are resampled (data_handling.audio_io.RESAMPLERS); kaiser_best
    is the reference's (librosa 0.9.2 with resampy).

    A labelled clip (item.labels) takes one of caption_templates, drawn per clip and epoch from a generator
    keyed by (seed, the epoch set by set_epoch, the item's position): the same captions on every run and
    after a resume, whatever the loader workers. Without templates its caption is item.caption.
    """

    def __init__(self, items: Sequence[CaptionItem], sample_rate: int = 32000, max_length: float = 10.0,
                 train: bool = True, strict: bool = False,
                 max_decode_seconds: float = DEFAULT_MAX_DECODE_SECONDS, partial_decoding: bool = True,
                 resampler: str = "kaiser_best", caption_templates: Sequence[str] = (), seed: int = 0) -> None:
        if max_length < 0:
            raise ValueError(f"max_length must be >= 0 seconds (0 = no crop), got {max_length}")
        if not 0 <= max_decode_seconds < math.inf:
            raise ValueError(f"max_decode_seconds must be >= 0 seconds (0 = whole file), got {max_decode_seconds}")
        self.items = fill_missing_durations(items)
        self.sample_rate = sample_rate
        self.max_samples = round(max_length * sample_rate)  # 0 = no crop
        self.max_decode_seconds = max_decode_seconds
        self.train = train
        self.partial_decoding = partial_decoding
        if resampler not in RESAMPLERS:
            raise ValueError(f"resampler must be one of {list(RESAMPLERS)}, got {resampler!r}")
        self.resampler = resampler
        self.strict = strict
        self.num_failures = 0  # per process: each DataLoader worker counts its own
        self.caption_templates = list(caption_templates)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose caption templates __getitem__ draws (before the epoch's loader is iterated)."""
        self.epoch = epoch

    def caption(self, index: int) -> str:
        """The raw caption of item `index` this epoch (module docstring of the class)."""
        item = self.items[index]
        if item.labels and self.caption_templates:
            return template_caption(item.labels, self.caption_templates, self.seed, self.epoch, index)
        return item.caption

    def __len__(self) -> int:
        return len(self.items)

    @property
    def durations(self) -> list[float]:
        """Seconds per item, as listed in the json (for DurationBucketBatchSampler)."""
        return [float(item.duration) for item in self.items]

    def _crop(self, audio: torch.Tensor, choose_offset: Callable[[int], int]) -> torch.Tensor:
        """[samples] -> [min(samples, max_samples)]."""
        excess = audio.shape[0] - self.max_samples
        if self.max_samples <= 0 or excess <= 0:
            return audio
        offset = choose_offset(excess)
        return audio[offset:offset + self.max_samples]

    def _read(self, item: CaptionItem, key: DrawKey | None) -> torch.Tensor:
        """The item's audio, cropped: float32 [min(samples, max_samples)] (all samples when max_samples is 0)."""
        choose_offset = self._offset_chooser(key)
        if self.partial_decoding and self.max_samples > 0:
            return torch.from_numpy(load_audio_window(item.audio_path, self.sample_rate, self.max_samples,
                                                      choose_offset, max_seconds=self.max_decode_seconds,
                                                      resampler=self.resampler))
        samples = load_audio(item.audio_path, self.sample_rate, mono=True, max_seconds=self.max_decode_seconds,
                             resampler=self.resampler)
        return self._crop(torch.from_numpy(samples), choose_offset)

    def __getitem__(self, index: int | SampleDraw) -> dict[str, Any] | None:
        row, key = self._split_index(index)
        item = self.items[row]
        try:
            audio = self._read(item, key)
        except AudioReadError as error:
            if self.strict:
                raise
            self._report_failure(error)
            return None
        return {"audio": audio.contiguous(), "caption": preprocess_caption(self.caption(row)),
                "idx": item.clip_index, "path": str(item.audio_path)}


def collate_captions(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack dataset outputs into a batch; None entries (unreadable files) are dropped and counted.

    Returns:
        audio: float32 [B, max_samples], zero-padded at the end to the longest clip ([0, 0] if B == 0);
        lengths: int64 [B], samples before padding; idx: int64 [B], clip indices;
        captions: list of B str; paths: list of B str; num_skipped: int, len(batch) - B.
    """
    samples = [sample for sample in batch if sample is not None]
    lengths = torch.tensor([sample["audio"].shape[0] for sample in samples], dtype=torch.long)
    max_samples = int(lengths.max()) if samples else 0
    audio = torch.zeros(len(samples), max_samples, dtype=torch.float32)
    for row, sample in enumerate(samples):
        audio[row, :lengths[row]] = sample["audio"]
    return {
        "audio": audio,
        "captions": [sample["caption"] for sample in samples],
        "idx": torch.tensor([sample["idx"] for sample in samples], dtype=torch.long),
        "lengths": lengths,
        "paths": [sample["path"] for sample in samples],
        "num_skipped": len(batch) - len(samples),
    }
