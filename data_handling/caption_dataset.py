"""Training data: WavCaps json files -> caption items -> (audio, caption) pairs -> padded batches.

Json layouts (the reference's rules; the file's path, as given in the config, decides which applies)::

    {"num_captions_per_audio": 1, "data": [{"id": "Y0a1b2", "audio": "/abs/or/rel/x.flac",
                                            "caption": "a dog barks", "duration": 9.8, "wav": "rel/x.flac"}]}
    Clotho (path contains "Clotho"): num_captions_per_audio N > 1, items with "caption_1" ... "caption_N"
    other multi-caption files: each item has "num_captions" n and "caption_1" ... "caption_n"

- Rows: a single-caption file gives one row per item ("caption"; a list of captions is also accepted
  and gives one row each); a Clotho file N rows per item; another multi-caption file "num_captions"
  rows per item (num_captions_per_audio when an item has none). The rows of a clip share its
  clip_index, a running number over the kept clips of all files in order (the loss's positives).
- Blacklist (read_blacklist): {"AudioSet": [ids], "FreeSound": [ids]}. Which list filters a file
  depends on its path: single-caption files whose path contains "FreeSound" use the FreeSound ids,
  else "AudioSet" or "AudioCaps" the AudioSet ids; multi-caption files whose path contains "Clotho"
  the FreeSound ids; every other file is not filtered. An item is dropped when its "id", as it
  appears in the json, is in that list (no conversion: the WavCaps ids are strings).
- Audio paths: a relative "audio" is joined to audio_root (else to the json's folder). When that file
  does not exist (WavCaps' "audio" values are absolute paths of the authors' machine; SoundBible's
  are the placeholder "wav_path"), AudioPathResolver looks under audio_root: the item's relative
  "wav" path, then the file name (of "audio", of "wav", and for the placeholder the id plus each of
  AUDIO_EXTENSIONS) in an index of every file below audio_root, built once.
- prepare_training_items does all of that as training does: read, filter, resolve (unresolved clips
  stop the run with MissingAudioFilesError unless skip_missing), durations from the headers where the
  json has none. `python -m data_handling.check_data` reports on the same steps.

A file that is missing or corrupt when the dataset reads it is, by default, skipped: the dataset logs it
(the first few per process at WARNING level, the rest at DEBUG) and returns None; collate_captions drops
it and counts it in `num_skipped`. With strict=True the dataset raises AudioReadError instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from data_handling.audio_io import AudioReadError, audio_duration, load_audio
from data_handling.text_preprocess import preprocess_caption

logger = logging.getLogger(__name__)

WAVCAPS_LAYOUT = ('WavCaps json layout: {"num_captions_per_audio": n, "data": [{"id": str, "audio": path, '
                  '"caption": str (n == 1) or "caption_1" ... (n > 1), "duration": seconds}, ...]}')
BLACKLIST_LAYOUT = '{"AudioSet": [id, ...], "FreeSound": [id, ...]} with the ids as they appear in the json files'
BLACKLIST_KEYS = ("AudioSet", "FreeSound")
PLACEHOLDER_AUDIO = "wav_path"
"""The "audio" value of every item of WavCaps' SoundBible json: no path at all."""
AUDIO_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg")
"""Tried after the id when the "audio" value is the placeholder."""
DEFAULT_MAX_DECODE_SECONDS = 300.0
MAX_FAILURES_LOGGED = 5
"""Per dataset copy (i.e. per worker process): failures logged at WARNING level; later ones at DEBUG."""
MAX_REPORTED = 5
"""Unresolved audio files named in a log line or an error message."""
MIN_HINT_LENGTH = 3
"""Folder names shorter than this do not count when choosing between files of the same name."""


@dataclass(frozen=True)
class CaptionItem:
    """One (clip, caption) row of the training list."""

    audio_path: Path  # where the audio is read from (the json's path until AudioPathResolver moves it)
    caption: str  # raw, as in the json; the dataset preprocesses it
    clip_index: int  # shared by the captions of one clip
    duration: float | None  # seconds, from the json; None until fill_missing_durations when it has none
    clip_id: str  # the json's id as a string (for messages)
    source: str = ""  # the json file, as given
    audio_ref: str = ""  # the json's "audio" value
    wav: str | None = None  # the json's relative "wav" path, if any


# ----------------------------------------------------------------------------------------------------
# Blacklist
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blacklist:
    """Ids to leave out, per dataset key ("AudioSet", "FreeSound"), as they appear in the json files."""

    ids: Mapping[str, frozenset] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def ids_for(self, key: str | None) -> frozenset:
        return self.ids.get(key, frozenset()) if key is not None else frozenset()


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (check the path in the YAML file)")
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path} is not valid json: {error}") from error


def _blacklist_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The json files of a blacklist: one file, every *.json of a folder, or a list of either."""
    sources = [source] if isinstance(source, str | Path) else list(source)
    files: list[Path] = []
    for entry in sources:
        if not str(entry).strip():
            raise ValueError("a blacklist path is empty; give a json file or folder, or null for no blacklist")
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise FileNotFoundError(f"blacklist folder {path} holds no *.json file; expected {BLACKLIST_LAYOUT}")
            files += found
        else:
            files.append(path)
    return files


def _blacklist_lists(content: Any, path: Path) -> dict[str, list]:
    """{key: ids} of one blacklist file, checked against BLACKLIST_LAYOUT."""
    if not isinstance(content, dict):
        raise ValueError(f"blacklist {path}: expected {BLACKLIST_LAYOUT}; found a json {type(content).__name__}. "
                         f"A plain list of ids cannot be applied per dataset: put it under the right key")
    for key, ids in content.items():
        if not isinstance(ids, list):
            raise ValueError(f"blacklist {path}: expected a list of ids under {key!r} ({BLACKLIST_LAYOUT}); "
                             f"found {type(ids).__name__} {str(ids)[:80]!r}")
        bad = next((clip_id for clip_id in ids if isinstance(clip_id, bool) or not isinstance(clip_id, str | int)),
                   None)
        if bad is not None:
            raise ValueError(f"blacklist {path}: ids under {key!r} must be strings (or integers), found {bad!r}; "
                             f"expected {BLACKLIST_LAYOUT}")
    unused = sorted(set(content) - set(BLACKLIST_KEYS))
    if unused:
        logger.warning("blacklist %s: keys %s are not used (only %s are applied, as in the reference)", path,
                       unused, list(BLACKLIST_KEYS))
    return content


def read_blacklist(source: str | Path | Sequence[str | Path]) -> Blacklist:
    """Read a blacklist: one json file (the reference), a folder of *.json, or a list of files/folders.

    Several files are merged per key (the union of their "AudioSet" lists, of their "FreeSound" lists).

    Raises:
        FileNotFoundError: a file is missing or a folder holds no *.json.
        ValueError: a file is not {"AudioSet": [ids], "FreeSound": [ids]} (the message says what it found).
    """
    files = _blacklist_files(source)
    merged: dict[str, set] = {}
    for file in files:
        for key, ids in _blacklist_lists(_load_json(file, "blacklist file"), file).items():
            merged.setdefault(key, set()).update(ids)
    blacklist = Blacklist({key: frozenset(ids) for key, ids in merged.items()}, tuple(files))
    logger.info("blacklist %s: %s", ", ".join(map(str, files)),
                ", ".join(f"{len(blacklist.ids_for(key))} {key} ids" for key in BLACKLIST_KEYS))
    return blacklist


def blacklist_key_for(json_path: str, captions_per_audio: int) -> str | None:
    """Which blacklist list filters a json file, from its path as given (the reference's rule)."""
    if captions_per_audio == 1:
        if "FreeSound" in json_path:
            return "FreeSound"
        if "AudioSet" in json_path or "AudioCaps" in json_path:
            return "AudioSet"
        return None
    return "FreeSound" if "Clotho" in json_path else None


# ----------------------------------------------------------------------------------------------------
# Reading json files
# ----------------------------------------------------------------------------------------------------
@dataclass
class JsonFileContents:
    """The kept rows of one json file and what the blacklist removed."""

    path: str  # as given
    items: list[CaptionItem]
    num_clips: int  # clips kept
    num_blacklisted: int  # clips dropped by the blacklist
    blacklist_key: str | None  # the list that filtered this file (None: not filtered)


def _layout(content: Any, path: Path) -> tuple[list[Any], int]:
    """(data list, num_captions_per_audio) of a json file."""
    data = content.get("data") if isinstance(content, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a json object with a 'data' list. {WAVCAPS_LAYOUT}")
    per_audio = content.get("num_captions_per_audio")
    if isinstance(per_audio, bool) or not isinstance(per_audio, int) or per_audio < 1:
        raise ValueError(f"{path}: expected 'num_captions_per_audio' as an integer >= 1, found {per_audio!r}. "
                         f"{WAVCAPS_LAYOUT}")
    return data, per_audio


def _entry_location(path: Path, position: int, entry: Any) -> str:
    """'<file>, data[<position>] (id <id>)', for error messages."""
    has_id = isinstance(entry, dict) and "id" in entry
    return f"{path}, data[{position}]" + (f" (id {entry['id']!r})" if has_id else "")


def _caption(entry: Mapping[str, Any], key: str, where: str, why: str) -> str:
    caption = entry.get(key)
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"{where}: expected {key!r} as a non-empty string ({why}), found {caption!r}. "
                         f"{WAVCAPS_LAYOUT}")
    return caption


def _single_captions(entry: Mapping[str, Any], where: str) -> list[str]:
    """A single-caption file's "caption": a string (the reference), or a list of strings (ours)."""
    raw = entry.get("caption")
    if isinstance(raw, list) and raw:
        return [_caption({"caption": value}, "caption", where, "each caption of the list") for value in raw]
    return [_caption(entry, "caption", where, "num_captions_per_audio is 1")]


def _numbered_captions(entry: Mapping[str, Any], count: int, where: str, why: str) -> list[str]:
    return [_caption(entry, f"caption_{number}", where, why) for number in range(1, count + 1)]


def _entry_captions(entry: Mapping[str, Any], per_audio: int, is_clotho: bool, where: str) -> list[str]:
    if per_audio == 1:
        return _single_captions(entry, where)
    if is_clotho:
        return _numbered_captions(entry, per_audio, where, f"a Clotho file with {per_audio} captions per audio")
    count = entry.get("num_captions", per_audio)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{where}: expected 'num_captions' as an integer >= 1, found {count!r}")
    return _numbered_captions(entry, count, where, f"num_captions is {count}")


def _entry_audio(entry: Mapping[str, Any], root: Path, where: str) -> tuple[Path, str, str | None]:
    """(path to try first, the json's "audio" value, the json's "wav" value or None)."""
    audio = entry.get("audio")
    if not isinstance(audio, str) or not audio.strip():
        raise ValueError(f"{where}: expected 'audio' as a non-empty path string, found {audio!r}. {WAVCAPS_LAYOUT}")
    wav = entry.get("wav")
    if wav is not None and not isinstance(wav, str):
        raise ValueError(f"{where}: expected 'wav' as a relative path string, found {wav!r}")
    path = Path(audio).expanduser()
    return (path if path.is_absolute() else root / path), audio, wav or None


def _entry_duration(entry: Mapping[str, Any], where: str) -> float | None:
    """The json's duration (None when absent: fill_missing_durations reads the file header)."""
    if "duration" not in entry:
        return None
    duration = entry["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration < math.inf:
        raise ValueError(f"{where}: expected 'duration' as a finite number of seconds >= 0, found {duration!r}")
    return float(duration)


def _is_blacklisted(entry: Mapping[str, Any], excluded: frozenset, key: str, where: str) -> bool:
    if not excluded:
        return False
    if "id" not in entry:
        raise ValueError(f"{where}: the blacklist's {key} list applies to this file, but the item has no 'id'")
    clip_id = entry["id"]
    if not isinstance(clip_id, str | int | float):
        raise ValueError(f"{where}: expected 'id' as a string, found {type(clip_id).__name__} {clip_id!r}")
    return clip_id in excluded


def read_json_file(json_file: str | Path, audio_root: Path | None = None, blacklist: Blacklist | None = None,
                   first_clip_index: int = 0) -> JsonFileContents:
    """The rows of one json file after the blacklist; clip indices start at first_clip_index.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file or one of its items is malformed (the message names file and item).
    """
    path_text = str(json_file)
    path = Path(path_text).expanduser()
    entries, per_audio = _layout(_load_json(path, "training json file"), path)
    root = audio_root if audio_root is not None else path.parent
    key = blacklist_key_for(path_text, per_audio) if blacklist is not None else None
    excluded = blacklist.ids_for(key) if blacklist is not None else frozenset()
    is_clotho = "Clotho" in path_text
    items: list[CaptionItem] = []
    num_clips = num_blacklisted = 0
    for position, entry in enumerate(entries):
        where = _entry_location(path, position, entry)
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a json object, found {type(entry).__name__}. {WAVCAPS_LAYOUT}")
        if _is_blacklisted(entry, excluded, key or "", where):
            num_blacklisted += 1
            continue
        audio_path, audio_ref, wav = _entry_audio(entry, root, where)
        captions = _entry_captions(entry, per_audio, is_clotho, where)
        duration = _entry_duration(entry, where)
        clip_id = str(entry.get("id", Path(audio_ref).stem))
        items += [CaptionItem(audio_path, caption, first_clip_index + num_clips, duration, clip_id, path_text,
                              audio_ref, wav) for caption in captions]
        num_clips += 1
    if blacklist is not None:
        logger.info("%s: %d of %d clips blacklisted (%s)", path_text, num_blacklisted, len(entries),
                    f"{key} list" if key else "no list applies to this path")
    logger.info("%s: %d clips, %d captions", path_text, num_clips, len(items))
    return JsonFileContents(path_text, items, num_clips, num_blacklisted, key)


def read_json_files(json_files: str | Path | Sequence[str | Path], audio_root: str | Path | None = None,
                    blacklist: str | Path | Sequence[str | Path] | Blacklist | None = None) -> list[JsonFileContents]:
    """read_json_file for each file in order, clip indices running over all of them.

    Args:
        json_files: the json files, read in order.
        audio_root: resolves relative "audio" paths; None resolves them against each json's own folder.
        blacklist: a Blacklist, or what read_blacklist reads (a file, a folder, a list of them).
    """
    if isinstance(json_files, str | Path):
        json_files = [json_files]
    root = Path(audio_root).expanduser() if audio_root is not None else None
    if blacklist is not None and not isinstance(blacklist, Blacklist):
        blacklist = read_blacklist(blacklist)
    contents: list[JsonFileContents] = []
    next_clip_index = 0
    for json_file in json_files:
        contents.append(read_json_file(json_file, root, blacklist, next_clip_index))
        next_clip_index += contents[-1].num_clips
    return contents


def read_wavcaps_jsons(json_files: str | Path | Sequence[str | Path], audio_root: str | Path | None = None,
                       blacklist: str | Path | Sequence[str | Path] | Blacklist | None = None) -> list[CaptionItem]:
    """The kept rows of all json files (read_json_files, flattened); audio paths not yet resolved."""
    return [item for contents in read_json_files(json_files, audio_root, blacklist) for item in contents.items]


# ----------------------------------------------------------------------------------------------------
# Finding the audio files
# ----------------------------------------------------------------------------------------------------
class AudioPathResolver:
    """Finds an item's audio file: its json path, else under audio_root (see the module docstring).

    The name index of audio_root (os.walk, sorted, name -> paths) is built on the first lookup by name.
    A name found at several paths resolves to the one with the most folders (below audio_root) that
    contain, or are contained in, a folder name of the item's json file or "audio"/"wav" paths (so
    ".../json_files/SoundBible/sb_final.json" prefers "<root>/SoundBible_flac/1.flac" to
    "<root>/FreeSound_flac/1.flac"); the first in walk order on a tie. Such lookups are counted in
    `ambiguous_lookups`.
    """

    def __init__(self, audio_root: str | Path | None) -> None:
        self.audio_root = Path(audio_root).expanduser() if audio_root is not None else None
        self._index: dict[str, list[Path]] | None = None
        self.ambiguous_lookups = 0

    def _name_index(self) -> dict[str, list[Path]]:
        if self._index is None:
            self._index = {}
            if self.audio_root is not None and self.audio_root.is_dir():
                for folder, subfolders, names in os.walk(self.audio_root):
                    subfolders.sort()
                    for name in sorted(names):
                        self._index.setdefault(name, []).append(Path(folder) / name)
            duplicated = sum(len(paths) > 1 for paths in self._index.values())
            logger.info("indexed %d file names under %s (%d names at several paths)", len(self._index),
                        self.audio_root, duplicated)
        return self._index

    @staticmethod
    def _candidate_names(item: CaptionItem) -> list[str]:
        names = []
        if item.audio_ref != PLACEHOLDER_AUDIO:
            names.append(Path(item.audio_ref).name)
        if item.wav:
            names.append(Path(item.wav).name)
        if item.audio_ref == PLACEHOLDER_AUDIO:
            names += [item.clip_id + extension for extension in AUDIO_EXTENSIONS]
        return list(dict.fromkeys(name for name in names if name))

    def _closest(self, candidates: list[Path], item: CaptionItem) -> Path:
        if len(candidates) == 1:
            return candidates[0]
        self.ambiguous_lookups += 1
        hints = {part.lower() for text in (item.source, item.audio_ref, item.wav or "")
                 for part in Path(text).parent.parts if len(part) >= MIN_HINT_LENGTH}
        scores = [sum(any(hint in folder or folder in hint for hint in hints)
                      for folder in self._folders(candidate)) for candidate in candidates]
        return candidates[scores.index(max(scores))]

    def _folders(self, path: Path) -> list[str]:
        """Lower-cased folder names of a path below audio_root (those of MIN_HINT_LENGTH or more)."""
        relative = path.relative_to(self.audio_root) if self.audio_root is not None else path
        return [part.lower() for part in relative.parent.parts if len(part) >= MIN_HINT_LENGTH]

    def resolve(self, item: CaptionItem) -> Path | None:
        """The audio file of an item, or None when it is found nowhere."""
        if item.audio_ref != PLACEHOLDER_AUDIO and item.audio_path.is_file():
            return item.audio_path
        if self.audio_root is None:
            return None
        if item.wav and (self.audio_root / item.wav).is_file():
            return self.audio_root / item.wav
        index = self._name_index()
        for name in self._candidate_names(item):
            if name in index:
                return self._closest(index[name], item)
        return None


@dataclass
class AudioResolution:
    """Rows whose audio file was found (audio_path set to it) and rows whose file was not."""

    found: list[CaptionItem]
    unresolved: list[CaptionItem]

    @property
    def unresolved_clips(self) -> list[CaptionItem]:
        """The first row of each clip whose audio was not found."""
        first_rows: dict[tuple[str, int], CaptionItem] = {}
        for item in self.unresolved:
            first_rows.setdefault((item.source, item.clip_index), item)
        return list(first_rows.values())


def resolve_audio_paths(items: Iterable[CaptionItem], resolver: AudioPathResolver) -> AudioResolution:
    """Find each row's audio file (once per clip) with the resolver; logs how many clips were found where."""
    found: list[CaptionItem] = []
    unresolved: list[CaptionItem] = []
    clip_paths: dict[tuple[str, int], Path | None] = {}
    num_moved = 0
    for item in items:
        clip = (item.source, item.clip_index)
        if clip not in clip_paths:
            clip_paths[clip] = resolver.resolve(item)
            num_moved += clip_paths[clip] not in (None, item.audio_path)
        path = clip_paths[clip]
        if path is None:
            unresolved.append(item)
        else:
            found.append(item if path == item.audio_path else replace(item, audio_path=path))
    num_missing = sum(path is None for path in clip_paths.values())
    details = [f"{num_moved} found under {resolver.audio_root} instead of their json path"] if num_moved else []
    details += [f"{num_missing} not found"] if num_missing else []
    details += [f"{resolver.ambiguous_lookups} file names found at several paths so far"] \
        if resolver.ambiguous_lookups else []
    logger.info("audio files of %d of %d clips found%s", len(clip_paths) - num_missing, len(clip_paths),
                f" ({', '.join(details)})" if details else "")
    return AudioResolution(found, unresolved)


def describe_unresolved(unresolved_clips: Sequence[CaptionItem], limit: int = MAX_REPORTED) -> str:
    """'"audio" of id ... in file.json, ...' for the first `limit` clips, and how many more."""
    shown = "; ".join(f"{item.audio_ref!r} (id {item.clip_id!r} in {item.source})"
                      for item in unresolved_clips[:limit])
    more = f"; and {len(unresolved_clips) - limit} more" if len(unresolved_clips) > limit else ""
    return shown + more


class MissingAudioFilesError(FileNotFoundError):
    """Audio files of the training json files were found neither at their path nor under audio_root."""


# ----------------------------------------------------------------------------------------------------
# Everything training does before the dataset
# ----------------------------------------------------------------------------------------------------
def fill_missing_durations(items: Sequence[CaptionItem]) -> list[CaptionItem]:
    """Rows whose json had no duration get the file header's (0.0 when the header cannot be read)."""
    header_durations: dict[Path, float] = {}
    filled: list[CaptionItem] = []
    for item in items:
        if item.duration is None:
            if item.audio_path not in header_durations:
                try:
                    header_durations[item.audio_path] = audio_duration(item.audio_path)
                except AudioReadError as error:
                    logger.debug("%s, id %r: no duration and %s; using 0.0", item.source, item.clip_id, error)
                    header_durations[item.audio_path] = 0.0
            item = replace(item, duration=header_durations[item.audio_path])
        filled.append(item)
    if header_durations:
        logger.info("%d audio files without a json 'duration': read from their headers", len(header_durations))
    return filled


def prepare_training_items(json_files: str | Path | Sequence[str | Path], *,
                           blacklist: str | Path | Sequence[str | Path] | Blacklist | None = None,
                           audio_root: str | Path | None = None, check_files: bool = True,
                           skip_missing: bool = False) -> list[CaptionItem]:
    """The training rows, as Trainer reads them: json files, blacklist, audio paths, durations.

    Args:
        check_files: find every audio file at start-up (AudioPathResolver); False uses the json's paths
            as they stand, without a check.
        skip_missing: False raises MissingAudioFilesError when audio files are found nowhere; True drops
            their rows and logs how many.

    Raises:
        FileNotFoundError / ValueError: a json file or the blacklist is missing or malformed.
        MissingAudioFilesError: audio files not found and skip_missing is False (before any training).
    """
    items = read_wavcaps_jsons(json_files, audio_root, blacklist)
    if check_files:
        resolution = resolve_audio_paths(items, AudioPathResolver(audio_root))
        missing = resolution.unresolved_clips
        if missing and not skip_missing:
            raise MissingAudioFilesError(
                f"{len(missing)} audio files of the training json files were not found: "
                f"{describe_unresolved(missing)}. Set data_args.audio_root to the folder that holds them (they "
                f"are looked up there by their relative 'wav' path and by file name), or set "
                f"data_args.skip_missing: true to train without them; "
                f"`python -m data_handling.check_data -c <config>` reports every file")
        if missing:
            logger.warning("data_args.skip_missing: %d clips (%d captions) without an audio file are left out: %s",
                           len(missing), len(resolution.unresolved), describe_unresolved(missing))
        items = resolution.found
    return fill_missing_durations(items)


# ----------------------------------------------------------------------------------------------------
# Dataset and collate
# ----------------------------------------------------------------------------------------------------
class CaptionAudioDataset(Dataset):
    """(audio, caption) pairs for contrastive training.

    __getitem__(i) returns dict(audio=float32 tensor [samples] at sample_rate, caption=preprocessed str,
    idx=clip_index, path=str), or None when the audio file cannot be read and strict is False.

    Only the first max_decode_seconds of a file are decoded (0: all of it), as the reference. Cropping,
    when max_length > 0 and the decoded clip is longer than max_length seconds: train=True takes a
    random window whose offset is uniform over the decoded samples, from torch.randint (so torch's RNG
    state, seeded per DataLoader worker from the main process's, decides it and a resumed run repeats
    it); train=False keeps the first max_length seconds. Shorter clips are returned whole
    (collate_captions pads them).
    """

    def __init__(self, items: Sequence[CaptionItem], sample_rate: int = 32000, max_length: float = 10.0,
                 train: bool = True, strict: bool = False,
                 max_decode_seconds: float = DEFAULT_MAX_DECODE_SECONDS) -> None:
        if max_length < 0:
            raise ValueError(f"max_length must be >= 0 seconds (0 = no crop), got {max_length}")
        if not 0 <= max_decode_seconds < math.inf:
            raise ValueError(f"max_decode_seconds must be >= 0 seconds (0 = whole file), got {max_decode_seconds}")
        self.items = fill_missing_durations(items)
        self.sample_rate = sample_rate
        self.max_samples = round(max_length * sample_rate)  # 0 = no crop
        self.max_decode_seconds = max_decode_seconds
        self.train = train
        self.strict = strict
        self.num_failures = 0  # per process: each DataLoader worker counts its own

    def __len__(self) -> int:
        return len(self.items)

    @property
    def durations(self) -> list[float]:
        """Seconds per item, as listed in the json (for DurationBucketBatchSampler)."""
        return [float(item.duration) for item in self.items]

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
            samples = load_audio(item.audio_path, self.sample_rate, mono=True, max_seconds=self.max_decode_seconds)
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
