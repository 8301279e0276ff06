"""Training data: WavCaps json files -> caption items -> (audio, caption) pairs -> padded batches.

WavCaps json layout::

    {"num_captions_per_audio": n,
     "data": [{"id": "Y0a1b2", "audio": "audio/Y0a1b2.flac", "caption": "a dog barks", "duration": 9.8}, ...]}

"caption" may also be a list of captions, or (Clotho style) "caption_1" ... "caption_n" keys. A clip with
several captions gives one item per caption; the items share a clip_index, which the contrastive loss
uses to know which captions are positives of the same clip. clip_index counts clips over all json files
in the given order (before the blacklist is applied, so indices are stable whatever the blacklist).

A missing or corrupt audio file is, by default, skipped: the dataset logs it (the first few per process
at WARNING level, the rest at DEBUG) and returns None; collate_captions drops it and counts it in
`num_skipped`. With strict=True the dataset raises AudioReadError instead.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from data_handling.audio_io import AudioReadError, audio_duration, load_audio
from data_handling.text_preprocess import preprocess_caption

logger = logging.getLogger(__name__)

WAVCAPS_LAYOUT = ('WavCaps json layout: {"num_captions_per_audio": n, "data": [{"id": str, "audio": path, '
                  '"caption": str or [str, ...], "duration": seconds}, ...]}')
MAX_FAILURES_LOGGED = 5
"""Per dataset copy (i.e. per worker process): failures logged at WARNING level; later ones at DEBUG."""


@dataclass(frozen=True)
class CaptionItem:
    """One (clip, caption) pair of the training list."""

    audio_path: Path
    caption: str  # raw, as in the json; the dataset preprocesses it
    clip_index: int  # shared by the captions of one clip
    duration: float  # seconds, from the json (or the file header when the json has none)
    clip_id: str


# ----------------------------------------------------------------------------------------------------
# Reading json files
# ----------------------------------------------------------------------------------------------------
def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (check the path in the YAML file)")
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path} is not valid json: {error}") from error


def _entry_captions(entry: Mapping[str, Any], where: str) -> list[str]:
    """The captions of one json entry: "caption" (str or list of str) or "caption_1" ... keys."""
    if "caption" in entry:
        raw = entry["caption"]
        captions = [raw] if isinstance(raw, str) else raw
    else:
        numbered = sorted((int(key[8:]), value) for key, value in entry.items()
                          if key.startswith("caption_") and key[8:].isdigit())
        captions = [value for _, value in numbered]
    if not isinstance(captions, list) or not captions:
        raise ValueError(f"{where}: expected 'caption' as a string or a non-empty list of strings, "
                         f"found {entry.get('caption', 'no caption key')!r}. {WAVCAPS_LAYOUT}")
    for caption in captions:
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"{where}: every caption must be a non-empty string, found {caption!r}")
    return captions


def _entry_audio_path(entry: Mapping[str, Any], root: Path, where: str) -> Path:
    audio = entry.get("audio")
    if not isinstance(audio, str) or not audio.strip():
        raise ValueError(f"{where}: expected 'audio' as a non-empty path string, found {audio!r}. "
                         f"{WAVCAPS_LAYOUT}")
    path = Path(audio).expanduser()
    return path if path.is_absolute() else root / path


def _entry_duration(entry: Mapping[str, Any], audio_path: Path, where: str) -> float:
    """The json's duration; when absent, the file header's (0.0 if the header cannot be read)."""
    if "duration" not in entry:
        try:
            return audio_duration(audio_path)
        except AudioReadError as error:
            logger.debug("%s: no duration and %s; using 0.0", where, error)
            return 0.0
    duration = entry["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration < math.inf:
        raise ValueError(f"{where}: expected 'duration' as a finite number of seconds >= 0, found {duration!r}")
    return float(duration)


def _entries_of(content: Any, path: Path) -> list[Any]:
    data = content.get("data") if isinstance(content, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a json object with a 'data' list. {WAVCAPS_LAYOUT}")
    return data


def _items_of_entry(entry: Any, where: str, root: Path, clip_index: int) -> list[CaptionItem]:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a json object, found {type(entry).__name__}. {WAVCAPS_LAYOUT}")
    audio_path = _entry_audio_path(entry, root, where)
    clip_id = str(entry.get("id", audio_path.stem))
    captions = _entry_captions(entry, where)
    duration = _entry_duration(entry, audio_path, where)
    return [CaptionItem(audio_path, caption, clip_index, duration, clip_id) for caption in captions]


def _entry_location(path: Path, position: int, entry: Any) -> str:
    """'<file>, data[<position>] (id <id>)', for error messages."""
    has_id = isinstance(entry, dict) and "id" in entry
    return f"{path}, data[{position}]" + (f" (id {entry['id']!r})" if has_id else "")


def _read_one_json(path: Path, audio_root: Path | None, first_clip_index: int) -> tuple[list[CaptionItem], int]:
    """The items of one json file and its number of clips."""
    root = audio_root if audio_root is not None else path.parent
    entries = _entries_of(_load_json(path, "WavCaps json file"), path)
    items: list[CaptionItem] = []
    for position, entry in enumerate(entries):
        items += _items_of_entry(entry, _entry_location(path, position, entry), root, first_clip_index + position)
    missing_durations = sum("duration" not in entry for entry in entries)
    if missing_durations:
        logger.info("%s: %d entries without 'duration'; read from the file headers", path, missing_durations)
    return items, len(entries)


def read_wavcaps_jsons(json_files: Sequence[str | Path], audio_root: str | Path | None = None,
                       blacklist: str | Path | None = None) -> list[CaptionItem]:
    """Read WavCaps-style json files into one list of caption items.

    Args:
        json_files: the json files, read in order; clip_index counts clips over all of them.
        audio_root: resolves relative "audio" paths; None resolves them against each json's own folder.
        blacklist: a json file, or a folder of json files, listing clip ids to leave out (see
            read_blacklist). An item is dropped when its id or its audio file's stem is listed.

    Raises:
        FileNotFoundError: a json file or the blacklist is missing.
        ValueError: a json file or one of its entries is malformed (the message names file and entry).
    """
    if isinstance(json_files, str | Path):
        json_files = [json_files]
    root = Path(audio_root).expanduser() if audio_root is not None else None
    items: list[CaptionItem] = []
    next_clip_index = 0
    for json_file in json_files:
        file_items, num_clips = _read_one_json(Path(json_file).expanduser(), root, next_clip_index)
        next_clip_index += num_clips
        logger.info("%s: %d captions", json_file, len(file_items))
        items += file_items
    if blacklist is not None:
        items = drop_blacklisted(items, read_blacklist(blacklist))
    return items


def _blacklist_ids(content: Any, path: Path) -> set[str]:
    id_lists = list(content.values()) if isinstance(content, dict) else [content]
    for ids in id_lists:
        if not isinstance(ids, list):
            raise ValueError(f"blacklist {path}: expected {{dataset_name: [ids, ...]}} or [ids, ...], "
                             f"found {type(ids).__name__} {str(ids)[:80]!r}")
    return {str(clip_id) for ids in id_lists for clip_id in ids}


def read_blacklist(blacklist: str | Path) -> set[str]:
    """Clip ids of a blacklist json file, or of every *.json in a folder.

    Each file is {dataset_name: [id, ...], ...} or [id, ...]. Ids are compared as strings.
    """
    path = Path(blacklist).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"blacklist folder {path} holds no *.json file")
    else:
        files = [path]
    ids: set[str] = set()
    for file in files:
        ids |= _blacklist_ids(_load_json(file, "blacklist file"), file)
    return ids


def drop_blacklisted(items: Iterable[CaptionItem], blacklisted_ids: set[str]) -> list[CaptionItem]:
    """Items whose clip_id and audio file stem are both absent from blacklisted_ids; logs what it dropped."""
    items = list(items)
    kept = [item for item in items
            if item.clip_id not in blacklisted_ids and item.audio_path.stem not in blacklisted_ids]
    dropped = len(items) - len(kept)
    clips_dropped = len({item.clip_index for item in items}) - len({item.clip_index for item in kept})
    logger.info("blacklist: dropped %d captions of %d clips (%d ids listed)", dropped, clips_dropped,
                len(blacklisted_ids))
    return kept


def check_audio_files(items: Iterable[CaptionItem], max_report: int = 5) -> list[Path]:
    """Fast start-up check that every audio file exists (Path.is_file, no decoding).

    Returns the missing paths (each once, in list order) and logs their count and the first max_report.
    """
    unique_paths = dict.fromkeys(item.audio_path for item in items)
    missing = [path for path in unique_paths if not path.is_file()]
    if missing:
        shown = ", ".join(str(path) for path in missing[:max_report])
        more = f" and {len(missing) - max_report} more" if len(missing) > max_report else ""
        logger.warning("%d of %d audio files are missing: %s%s", len(missing), len(unique_paths), shown, more)
    else:
        logger.info("all %d audio files exist", len(unique_paths))
    return missing


# ----------------------------------------------------------------------------------------------------
# Dataset and collate
# ----------------------------------------------------------------------------------------------------
class CaptionAudioDataset(Dataset):
    """(audio, caption) pairs for contrastive training.

    __getitem__(i) returns dict(audio=float32 tensor [samples] at sample_rate, caption=preprocessed str,
    idx=clip_index, path=str), or None when the audio file cannot be read and strict is False.

    Cropping, when max_length > 0 and the clip is longer than max_length seconds: train=True takes a
    random window whose offset comes from torch.randint (so torch's RNG state, seeded per DataLoader
    worker from the main process's, decides it and a resumed run repeats it); train=False keeps the
    first max_length seconds. Shorter clips are returned whole (collate_captions pads them).
    """

    def __init__(self, items: Sequence[CaptionItem], sample_rate: int = 32000, max_length: float = 10.0,
                 train: bool = True, strict: bool = False) -> None:
        if max_length < 0:
            raise ValueError(f"max_length must be >= 0 seconds (0 = no crop), got {max_length}")
        self.items = list(items)
        self.sample_rate = sample_rate
        self.max_samples = round(max_length * sample_rate)  # 0 = no crop
        self.train = train
        self.strict = strict
        self.num_failures = 0  # per process: each DataLoader worker counts its own

    def __len__(self) -> int:
        return len(self.items)

    @property
    def durations(self) -> list[float]:
        """Seconds per item, as listed in the json (for DurationBucketBatchSampler)."""
        return [item.duration for item in self.items]

    def _crop(self, audio: torch.Tensor) -> torch.Tensor:
        """[samples] -> [min(samples, max_samples)]."""
        excess = audio.shape[0] - self.max_samples
        if self.max_samples <= 0 or excess <= 0:
            return audio
        offset = int(torch.randint(0, excess + 1, (1,)).item()) if self.train else 0
        return audio[offset:offset + self.max_samples]

    def _report_failure(self, error: AudioReadError) -> None:
        self.num_failures += 1
        level = logging.WARNING if self.num_failures <= MAX_FAILURES_LOGGED else logging.DEBUG
        suffix = " (further failures of this process are logged at DEBUG level)" \
            if self.num_failures == MAX_FAILURES_LOGGED else ""
        logger.log(level, "skipping a training clip: %s%s", error, suffix)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        item = self.items[index]
        try:
            samples = load_audio(item.audio_path, self.sample_rate, mono=True)
        except AudioReadError as error:
            if self.strict:
                raise
            self._report_failure(error)
            return None
        audio = self._crop(torch.from_numpy(samples))
        return {"audio": audio.contiguous(), "caption": preprocess_caption(item.caption),
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
