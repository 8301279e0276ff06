"""Training from shards: the caption rows of sharded clips, read by index (WebDataset's indexed reader).

`ShardCaptionDataset` is file mode's CaptionAudioDataset over shards: the same rows in the same order
(clips in json order, the captions of a clip consecutive), the same durations, the same random 10 s
window (its offset keyed by the sample's DrawKey, or drawn by torch.randint for a plain row, over the stored
length; only the window decoded), the same batch dicts.
So the existing DurationBucketBatchSampler applies unchanged: duration buckets, the split between
ranks with equal batch counts, every row once per epoch, and exact mid-epoch resume.

Shards are opened with wids' IndexedTarSamples (a memory-mapped tar and its member index); local shards
are read where they are, remote ones (fsspec URLs, http(s), `pipe:` commands) are first copied whole into
`cache_dir`, checked against the manifest's size, and read from there. A missing, unreadable or
truncated shard is a ShardError naming it (raised in the DataLoader worker, so it stops the run); an
undecodable clip inside a shard is skipped and counted like an unreadable file in file mode.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_handling.audio_io import AudioReadError, load_audio, load_audio_window
from data_handling.caption_dataset import DEFAULT_MAX_DECODE_SECONDS, TrainingClips
from data_handling.keyed_random import DrawKey, SampleDraw
from data_handling.shards.format import ClipRecord, clip_key, decode_record
from data_handling.shards.manifest import (
    ShardError,
    ShardManifest,
    default_manifest_url,
    expand_shard_urls,
    is_local,
    local_path,
    open_url,
    read_manifest,
    shard_name,
)
from data_handling.text_preprocess import preprocess_caption

logger = logging.getLogger(__name__)

OPEN_SHARDS_PER_PROCESS = 128
"""Memory-mapped shards kept open per process (least recently used closed first)."""


def fetch_to_cache(url: str, cache_dir: Path, expected_bytes: int) -> Path:
    """A local copy of a remote shard in cache_dir (downloaded once per cache: the processes that need it
    at the same time wait for one download; a copy of the wrong size is replaced)."""
    local = cache_dir / shard_name(url)
    if local.is_file() and local.stat().st_size == expected_bytes:
        return local
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{local.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if local.is_file() and local.stat().st_size == expected_bytes:  # another process fetched it meanwhile
            return local
        partial = local.with_name(f"{local.name}.partial.{os.getpid()}")
        try:
            with open_url(url) as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target, length=1 << 22)
            if partial.stat().st_size != expected_bytes:
                raise ShardError(f"shard {url!r}: {partial.stat().st_size} bytes downloaded, the manifest says "
                                 f"{expected_bytes}: the shard or the manifest is stale")
            os.replace(partial, local)
        except OSError as error:
            raise ShardError(f"cannot download shard {url!r} to {cache_dir}: {type(error).__name__}: "
                             f"{error}") from error
        finally:
            partial.unlink(missing_ok=True)
    return local


class OpenShard:
    """One shard's samples by index: {"flac": BytesIO, "json": BytesIO, "__key__": str}."""

    def __init__(self, url: str, path: Path, expected_clips: int) -> None:
        from wids.wids import IndexedTarSamples

        self.url = url
        try:
            self.samples = IndexedTarSamples(path=str(path))
        except Exception as error:  # noqa: BLE001 (wids raises assertion, struct and value errors alike)
            raise ShardError(f"shard {url!r} cannot be read as a tar file ({type(error).__name__}: {error}); "
                             f"rewrite it with `python -m tools.make_shards`") from error
        if len(self.samples) != expected_clips:
            raise ShardError(f"shard {url!r} holds {len(self.samples)} clips, the manifest says {expected_clips}: "
                             f"the shard is truncated or the manifest is stale; rewrite them with "
                             f"`python -m tools.make_shards`")

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        return {"__key__": sample["__key__"], "__url__": self.url,
                **{extension.lstrip("."): member.getvalue() for extension, member in sample.items()
                   if extension != "__key__"}}

    def close(self) -> None:
        self.samples.close()


class ShardCaptionDataset(TrainingClips):
    """(audio, caption) rows of sharded clips; the interface of CaptionAudioDataset (see the module doc).

    __getitem__(row or SampleDraw) returns dict(audio=float32 [<= max_length * sample_rate],
    caption=preprocessed str, idx=clip_index, path="<shard url>#<key>"), or None when the clip cannot be decoded and strict is False.
    """

    def __init__(self, urls: Sequence[str], manifest: ShardManifest, sample_rate: int = 32000,
                 max_length: float = 10.0, train: bool = True, strict: bool = False,
                 max_decode_seconds: float = DEFAULT_MAX_DECODE_SECONDS, cache_dir: str | Path | None = None) -> None:
        if manifest.sample_rate != sample_rate:
            raise ShardError(f"the shards hold {manifest.sample_rate} Hz audio, audio_args.sr is {sample_rate}: "
                             f"write shards at the model's rate")
        self.urls = list(urls)
        self.entries = [manifest.entry(url) for url in self.urls]
        self.resampler = manifest.resampler  # how the writer resampled the audio (the reader does not resample)
        self.sample_rate = sample_rate
        self.max_samples = round(max_length * sample_rate)
        self.max_decode_seconds = max_decode_seconds
        self.train = train
        self.strict = strict
        self.cache_dir = Path(cache_dir) if cache_dir else None
        shard_of_row, clip_of_row, caption_of_row, durations = [], [], [], []
        for shard, entry in enumerate(self.entries):
            for clip, (duration, count) in enumerate(zip(entry.durations, entry.captions_per_clip, strict=True)):
                shard_of_row += [shard] * count
                clip_of_row += [clip] * count
                caption_of_row += list(range(count))
                durations += [duration] * count
        self.shard_of_row = np.asarray(shard_of_row, dtype=np.int64)
        self.clip_of_row = np.asarray(clip_of_row, dtype=np.int64)
        self.caption_of_row = np.asarray(caption_of_row, dtype=np.int64)
        self._durations = durations
        self._open: OrderedDict[int, OpenShard] = OrderedDict()
        self.num_failures = 0

    def __len__(self) -> int:
        return len(self._durations)

    @property
    def durations(self) -> list[float]:
        """Seconds per row, the json's (for DurationBucketBatchSampler)."""
        return list(self._durations)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own shards
        return {**self.__dict__, "_open": OrderedDict()}

    def _shard(self, shard: int) -> OpenShard:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        url, entry = self.urls[shard], self.entries[shard]
        if is_local(url):
            path = local_path(url)
            if not path.is_file():
                raise ShardError(f"shard {url!r} does not exist (any more)")
        else:
            if self.cache_dir is None:
                raise ShardError(f"shard {url!r} is remote: set data_args.shard_cache to a local folder for it")
            path = fetch_to_cache(url, self.cache_dir, entry.bytes)
        self._open[shard] = OpenShard(url, path, entry.clips)
        if len(self._open) > OPEN_SHARDS_PER_PROCESS:
            self._open.popitem(last=False)[1].close()
        return self._open[shard]

    def _read_audio(self, flac: bytes, record: ClipRecord, key: DrawKey | None) -> torch.Tensor:
        max_seconds = self.max_decode_seconds or None
        if self.max_samples > 0:
            samples = load_audio_window(flac, self.sample_rate, self.max_samples, self._offset_chooser(key),
                                        max_seconds)
        else:
            samples = load_audio(flac, self.sample_rate, mono=True, max_seconds=max_seconds)
        if record.gain != 1.0:
            samples = samples * np.float32(record.gain)
        return torch.from_numpy(samples)

    def record(self, row: int) -> tuple[dict[str, Any], ClipRecord]:
        """The raw sample and the record of a row's clip."""
        shard = self._shard(int(self.shard_of_row[row]))
        sample = shard[int(self.clip_of_row[row])]
        return sample, decode_record(sample)

    def __getitem__(self, index: int | SampleDraw) -> dict[str, Any] | None:
        row, key = self._split_index(index)
        sample, record = self.record(row)
        where = f"{sample['__url__']}#{sample['__key__']}"
        if sample["__key__"] != clip_key(record.clip_index):
            raise ShardError(f"{where}: its json says clip {record.clip_index}; the shard is damaged")
        try:
            if "flac" not in sample:
                raise AudioReadError(where, "the sample has no flac member")
            audio = self._read_audio(sample["flac"], record, key)
        except AudioReadError as error:
            if self.strict:
                raise AudioReadError(where, error.reason) from error
            self._report_failure(AudioReadError(where, error.reason))
            return None
        caption = record.captions[int(self.caption_of_row[row])]
        return {"audio": audio.contiguous(), "caption": preprocess_caption(caption), "idx": record.clip_index,
                "path": where}


def open_shard_dataset(shards: str | Sequence[str], manifest_url: str | None = None, **kwargs: Any
                       ) -> ShardCaptionDataset:
    """ShardCaptionDataset of `data_args.shards` (manifest: data_args.shards_manifest or the one beside the
    first shard). Raises ShardError before any training when the shards or the manifest are missing."""
    urls = expand_shard_urls(shards)
    manifest = read_manifest(manifest_url or default_manifest_url(urls[0]))
    requested = kwargs.get("max_decode_seconds", DEFAULT_MAX_DECODE_SECONDS)
    if manifest.max_seconds and (not requested or requested > manifest.max_seconds):
        logger.warning("data_args.max_decode_seconds is %s but the shards hold only the first %s s of each file",
                       requested or "0 (whole file)", manifest.max_seconds)
    dataset = ShardCaptionDataset(urls, manifest, **kwargs)
    logger.info("training from %d shards: %d clips, %d captions, %.1f h", len(urls),
                sum(entry.clips for entry in dataset.entries), len(dataset),
                sum(entry.seconds for entry in dataset.entries) / 3600)
    return dataset

