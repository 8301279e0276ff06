"""One clip as a WebDataset sample: `<key>.flac` (the audio) and `<key>.json` (captions and facts).

The audio is what file-mode training decodes from the clip: mono (mean of the channels), resampled to
SAMPLE_RATE by data_args.resampler, the first max_seconds of the file only (data_handling.audio_io.load_audio),
stored as FLAC. FLAC holds integers: 24-bit by default, so the stored samples equal the decoded float32
ones to 2^-24 of full scale times `gain` (the resampler's ringing may exceed 1.0; such a clip is divided
by gain = peak / PEAK_HEADROOM before encoding and multiplied back when read).

The json: {"clip_index": int (the loss's clip id, as in file mode), "id": the json's id, "captions":
[raw captions, in row order], "duration": the json's duration in seconds (the duration buckets'),
"audio_seconds": stored seconds, "source": the json file, "audio": the json's "audio" value, "gain": float}.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

SAMPLE_RATE = 32000
"""The rate of every stored clip (HTS-AT's)."""

FLAC_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}
PEAK_HEADROOM = 0.999
"""Peaks above this are scaled down by `gain` before FLAC encoding (FLAC's range is [-1, 1))."""


def clip_key(clip_index: int) -> str:
    """The sample's key in the tar: no dots (WebDataset splits a member's name at its first dot)."""
    return f"clip{clip_index:09d}"


@dataclass(frozen=True)
class ClipRecord:
    """What a shard holds of one clip, but its audio."""

    clip_index: int
    clip_id: str
    captions: tuple[str, ...]
    duration: float  # the json's (or the header's) seconds: the duration bucket's
    audio_seconds: float
    source: str
    audio: str
    gain: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"clip_index": self.clip_index, "id": self.clip_id, "captions": list(self.captions),
                "duration": self.duration, "audio_seconds": self.audio_seconds, "source": self.source,
                "audio": self.audio, "gain": self.gain}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClipRecord:
        return cls(clip_index=int(data["clip_index"]), clip_id=str(data["id"]),
                   captions=tuple(str(caption) for caption in data["captions"]), duration=float(data["duration"]),
                   audio_seconds=float(data["audio_seconds"]), source=str(data["source"]),
                   audio=str(data["audio"]), gain=float(data.get("gain", 1.0)))


def encode_clip(samples: np.ndarray, record: ClipRecord, bits: int = 24) -> tuple[dict[str, bytes], ClipRecord]:
    """float32 [samples] at SAMPLE_RATE -> ({"flac": bytes, "json": bytes}, the record with its gain)."""
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"expected mono samples [samples], got shape {samples.shape}")
    peak = float(np.abs(samples).max())
    gain = peak / PEAK_HEADROOM if peak > PEAK_HEADROOM else 1.0
    buffer = io.BytesIO()
    sf.write(buffer, samples / np.float32(gain) if gain != 1.0 else samples, SAMPLE_RATE, format="FLAC",
             subtype=FLAC_SUBTYPES[bits])
    record = ClipRecord(**{**record.__dict__, "gain": gain, "audio_seconds": samples.size / SAMPLE_RATE})
    return {"flac": buffer.getvalue(), "json": json.dumps(record.to_json(), ensure_ascii=False).encode()}, record


def decode_record(sample: Mapping[str, Any]) -> ClipRecord:
    """The ClipRecord of a WebDataset sample (its "json" member); ValueError naming the key when malformed."""
    try:
        return ClipRecord.from_json(json.loads(sample["json"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"shard sample {sample.get('__key__')!r} of {sample.get('__url__')!r} has no valid "
                         f"json member ({type(error).__name__}: {error}); rewrite the shard with "
                         f"`python -m tools.make_shards`") from error
