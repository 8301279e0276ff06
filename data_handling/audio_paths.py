"""Finding the audio files that metadata names, for training and evaluation alike.

- AUDIO_EXTENSIONS: the audio extensions, in the one order of preference used wherever a clip is looked
  up by id or stem and several formats could match.
- clip_id_from_filename: a clip's id from its file name (sed_scores_eval's rule).
- find_audio_files / audio_files_by_stem: files of one folder, by name, else by stem (evaluation sets).
- json_audio_path, audio_file_names: where a caption json entry's "audio" points, and the file names it
  may have; shared by the two resolvers below.
- resolve_retrieval_audio (retrieval test json): "audio" as it stands, then the relative "wav" path,
  then the file name, in a few folders (`retrieval_roots`).
- datasets_named_by, row_datasets: which dataset (FreeSound, SoundBible, ...) a path or a training row names.
- AudioPathResolver (training json; training, check_data and the shard writer): the json's path, then the
  relative "wav" path under audio_root, then the file name anywhere below audio_root (an index of every
  file, built once), never a file under a folder of another dataset than the row's.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from data_handling.caption_rows import CaptionItem

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
"""Audio file extensions, in order of preference where one clip could be several files: a folder holding
x.wav and x.flac gives x.wav for the stem x, and a SoundBible id is looked up as <id>.wav, then <id>.flac.
.wav first because the reference's evaluation reads .wav files (VGGSound's <stem>.wav, AudioSet-SL,
AudioGrounding), so where a folder holds a clip in several formats the reference's file is evaluated."""
PLACEHOLDER_AUDIO = "wav_path"
"""The "audio" value of every item of WavCaps' SoundBible json: no path at all (the id names the file)."""
MIN_HINT_LENGTH = 3
"""Folder names shorter than this do not count when choosing between files of the same name."""
MAX_REPORTED = 5
"""Missing audio files named in a log line or an error message."""


def clip_id_from_filename(filename: str) -> str:
    """Clip id as sed_scores_eval names clips: the file name without its audio extension.

    Only a known audio extension is stripped, so ids without extension that contain dots (e.g.
    "Y-abc_0.000_10.000") are kept whole; for names ending in .wav etc. this equals sed_scores_eval's
    `filename.rsplit('.', 1)[0]`.
    """
    name = Path(str(filename).strip()).name
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in AUDIO_EXTENSIONS else name


# ----------------------------------------------------------------------------------------------------
# One folder of an evaluation set
# ----------------------------------------------------------------------------------------------------
def audio_files_by_stem(folder: Path) -> dict[str, Path]:
    """Stem -> path of the audio files directly in a folder; of several files with one stem, the first
    extension of AUDIO_EXTENSIONS (then the first name in sorted order)."""
    candidates = [path for path in folder.iterdir() if path.suffix.lower() in AUDIO_EXTENSIONS]
    by_stem: dict[str, Path] = {}
    for path in sorted(candidates, key=lambda path: (AUDIO_EXTENSIONS.index(path.suffix.lower()), path.name)):
        by_stem.setdefault(path.stem, path)
    return by_stem


def find_audio_files(folder: Path, names: Sequence[str]) -> list[Path]:
    """Paths of audio files named as in metadata: folder / name when that file exists, else the folder's
    audio file whose stem is clip_id_from_filename(name) (a name without, or with another, audio
    extension). Unresolved names keep their direct path (the loader then reports them as missing)."""
    stems: dict[str, Path] | None = None
    paths = []
    for name in names:
        path = folder / name
        if not path.is_file():
            stems = audio_files_by_stem(folder) if stems is None else stems
            path = stems.get(clip_id_from_filename(name), path)
        paths.append(path)
    return paths


def check_audio_exists(paths: Iterable[Path], source: Path) -> None:
    """Raise FileNotFoundError listing the first missing audio files of a metadata file."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        examples = ", ".join(str(path) for path in missing[:MAX_REPORTED])
        raise FileNotFoundError(f"{len(missing)} audio file(s) listed in {source} are missing, e.g. {examples}")


# ----------------------------------------------------------------------------------------------------
# Caption json entries (training and retrieval)
# ----------------------------------------------------------------------------------------------------
def json_audio_path(audio: str, root: Path) -> Path:
    """An entry's "audio" as it stands: an absolute path, or a path relative to `root`."""
    path = Path(audio).expanduser()
    return path if path.is_absolute() else root / path


def audio_file_names(audio: str, wav: str | None) -> list[str]:
    """The file names of "audio" (none for PLACEHOLDER_AUDIO) and of "wav", without repeats."""
    names = [Path(audio).name if audio != PLACEHOLDER_AUDIO else "", Path(wav).name if wav else ""]
    return list(dict.fromkeys(name for name in names if name))


class RetrievalRoots(NamedTuple):
    """Where a retrieval json's audio is looked for (`resolve_retrieval_audio`)."""

    audio_root: Path
    """where relative "audio" paths start; its files are also found by name"""
    wav_roots: list[Path]
    """where relative "wav" paths are tried, in order"""
    name_roots: list[Path]
    """where bare file names are tried, in order"""


def retrieval_roots(json_path: Path, audio_root: str | Path | None, search_roots: Sequence[str | Path]
                    ) -> RetrievalRoots:
    """The audio root (default: the json's folder), "wav" roots (the audio root, or without one the json's
    folder and every folder above it; then the search roots) and file-name roots (audio root, search roots)."""
    extra = [Path(root).expanduser() for root in search_roots]
    if audio_root is not None:
        root = Path(audio_root).expanduser()
        wav_roots = [root]
    else:
        root = json_path.parent
        wav_roots = [root, *json_path.resolve().parent.parents]
    return RetrievalRoots(root, list(dict.fromkeys([*wav_roots, *extra])), list(dict.fromkeys([root, *extra])))


def resolve_retrieval_audio(audio: str, wav: str | None, roots: RetrievalRoots) -> Path:
    """The audio file of a retrieval json entry, the first that exists of: "audio" as it stands (a relative
    path under the audio root); the relative "wav" path under each wav root; the file name of "audio" or
    "wav" in each name root. When none exists, the "audio" path (the evaluation then reports it missing)."""
    given = json_audio_path(audio, roots.audio_root)
    candidates = [given] + ([root / wav for root in roots.wav_roots] if wav else [])
    candidates += [root / name for root in roots.name_roots for name in audio_file_names(audio, wav)]
    return next((candidate for candidate in candidates if candidate.is_file()), given)


# ----------------------------------------------------------------------------------------------------
# Training json entries: which dataset a row and a file belong to, and the resolver
# ----------------------------------------------------------------------------------------------------
DATASET_NAMES: dict[str, tuple[str, ...]] = {
    "FreeSound": ("freesound",),
    "SoundBible": ("soundbible",),
    "BBC Sound Effects": ("bbc",),
    "AudioSet": ("audioset",),
    "Clotho": ("clotho",),
    "AudioCaps": ("audiocaps",),
}
"""Dataset -> the words that name it in a folder or file name (compared lower-cased, with "_", "-", " " and
"." removed: "FreeSound_flac", "AudioSet_SL", "BBC_Sound_Effects" name theirs)."""
WAVCAPS_JSON_STEMS: dict[str, str] = {"fsd_final": "FreeSound", "sb_final": "SoundBible",
                                      "bbc_final": "BBC Sound Effects", "as_final": "AudioSet"}
"""WavCaps' own json file names (the stem, lower-cased) -> the dataset they hold."""
_NAME_SEPARATORS = re.compile(r"[_\-\s.]")


def datasets_named_by(parts: Sequence[str]) -> frozenset[str]:
    """The datasets of DATASET_NAMES named by the last of `parts` (folder or file names, outermost first)
    that names any: ("WavCaps", "FreeSound_flac") -> {"FreeSound"}; ("audioset_work", "json", "sb_final.json")
    -> {"SoundBible"} (WAVCAPS_JSON_STEMS; the nearer name wins); ("data", "waveforms") -> {}."""
    for part in reversed(parts):
        lowered = part.lower()
        named = {WAVCAPS_JSON_STEMS[stem]} if (stem := lowered.rsplit(".", 1)[0]) in WAVCAPS_JSON_STEMS else set()
        squeezed = _NAME_SEPARATORS.sub("", lowered)
        named.update(dataset for dataset, words in DATASET_NAMES.items() if any(word in squeezed for word in words))
        if named:
            return frozenset(named)
    return frozenset()


def row_datasets(item: CaptionItem) -> frozenset[str]:
    """The datasets a training row belongs to: those its json file's path (its name, else the nearest folder
    that names one) and the folders of its "audio" and "wav" paths name (empty when nothing names one)."""
    audio_folders = [Path(text).parent.parts for text in (item.audio_ref, item.wav or "")
                     if text and text != PLACEHOLDER_AUDIO]
    return frozenset().union(*(datasets_named_by(parts) for parts in [Path(item.source).parts, *audio_folders]))


class AudioLookup(NamedTuple):
    """The outcome of looking up one row's audio file."""

    path: Path | None
    """the file, or None when none is taken"""
    why_missing: str = ""
    """when path is None: why (no file of that name; only under another dataset's folder; several files)"""


class AudioPathResolver:
    """Finds a training row's audio file: its json path, else under audio_root, never another dataset's.

    Under audio_root: the row's relative "wav" path, then a file name (of "audio", of "wav", and for
    PLACEHOLDER_AUDIO the id plus each of AUDIO_EXTENSIONS, in that order) in an index of every file below
    audio_root (os.walk, sorted, name -> paths), built on the first lookup by name. The first of these
    names that the index holds decides:
    - a row whose dataset is named (`row_datasets`: "FreeSound/fsd_final.json", "sb_final.json", an
      "audio" path through "FreeSound_flac/") never takes a file whose folders (audio_root's own name and
      the folders below it) name another dataset (`datasets_named_by`): SoundBible's id 2218 is not
      paired with "FreeSound_flac/2218.wav". Of the files left, those under a folder of its own dataset
      come first, then the one with the most folders that contain, or are contained in, a folder name of
      the row's paths; the first in walk order on a tie (counted in `ambiguous_lookups`);
    - a row whose dataset nothing names takes the file only when the name is unique under audio_root.
    What is not taken is missing (`AudioLookup.why_missing` says why); the refusals are counted in
    `other_dataset_refusals` and `ambiguous_refusals`.
    """

    def __init__(self, audio_root: str | Path | None) -> None:
        self.audio_root = Path(audio_root).expanduser() if audio_root is not None else None
        self._index: dict[str, list[Path]] | None = None
        self._folder_datasets: dict[Path, frozenset[str]] = {}
        self.ambiguous_lookups = 0
        self.other_dataset_refusals = 0
        self.ambiguous_refusals = 0

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
        names = audio_file_names(item.audio_ref, item.wav)
        if item.audio_ref == PLACEHOLDER_AUDIO:
            names += [item.clip_id + extension for extension in AUDIO_EXTENSIONS]
        return list(dict.fromkeys(names))

    def _folders(self, path: Path) -> list[str]:
        """The folder names of a path below audio_root, audio_root's own name first."""
        if self.audio_root is None:
            return list(path.parent.parts)
        return [self.audio_root.name, *path.relative_to(self.audio_root).parent.parts]

    def _datasets_of(self, path: Path) -> frozenset[str]:
        """The datasets that the folders of a file below audio_root name (cached per folder)."""
        if path.parent not in self._folder_datasets:
            self._folder_datasets[path.parent] = datasets_named_by(self._folders(path))
        return self._folder_datasets[path.parent]

    def _closest(self, candidates: list[Path], item: CaptionItem, own: frozenset[str]) -> Path:
        if len(candidates) == 1:
            return candidates[0]
        self.ambiguous_lookups += 1
        hints = {part.lower() for text in (item.source, item.audio_ref, item.wav or "")
                 for part in Path(text).parent.parts if len(part) >= MIN_HINT_LENGTH}

        def closeness(candidate: Path) -> tuple[bool, int]:
            folders = [folder.lower() for folder in self._folders(candidate)[1:] if len(folder) >= MIN_HINT_LENGTH]
            return (bool(self._datasets_of(candidate) & own),
                    sum(any(hint in folder or folder in hint for hint in hints) for folder in folders))

        scores = [closeness(candidate) for candidate in candidates]
        return candidates[scores.index(max(scores))]

    def _choose(self, name: str, candidates: list[Path], item: CaptionItem) -> AudioLookup:
        own = row_datasets(item)
        if not own:
            if len(candidates) == 1:
                return AudioLookup(candidates[0])
            self.ambiguous_refusals += 1
            return AudioLookup(None, f"{len(candidates)} files named {name!r} under {self.audio_root} and no "
                                     f"dataset named by the json's path or the item's audio path to choose one")
        allowed = [candidate for candidate in candidates if not self._datasets_of(candidate) - own]
        if not allowed:
            self.other_dataset_refusals += 1
            others = sorted(set().union(*(self._datasets_of(candidate) for candidate in candidates)))
            return AudioLookup(None, f"{name!r} is only under folders of {', '.join(others)} "
                                     f"(not {', '.join(sorted(own))}): {candidates[0]}")
        return AudioLookup(self._closest(allowed, item, own))

    def lookup(self, item: CaptionItem) -> AudioLookup:
        """The audio file of a row, or None and why it is missing."""
        if item.audio_ref != PLACEHOLDER_AUDIO and item.audio_path.is_file():
            return AudioLookup(item.audio_path)
        if self.audio_root is None:
            return AudioLookup(None, "not at its json path (no data_args.audio_root to look under)")
        if item.wav and (self.audio_root / item.wav).is_file():
            return AudioLookup(self.audio_root / item.wav)
        index = self._name_index()
        names = self._candidate_names(item)
        for name in names:
            if name in index:
                return self._choose(name, index[name], item)
        return AudioLookup(None, f"no file named {' or '.join(repr(name) for name in names[:3])}"
                                 f"{' ...' if len(names) > 3 else ''} under {self.audio_root}")

    def resolve(self, item: CaptionItem) -> Path | None:
        """The audio file of a row, or None when none is taken (`lookup` says why)."""
        return self.lookup(item).path
