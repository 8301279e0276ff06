"""Finding the audio files that metadata names, for training and evaluation alike.

- AUDIO_EXTENSIONS: the audio extensions, in the one order of preference used wherever a clip is looked
  up by id or stem and several formats could match.
- clip_id_from_filename: a clip's id from its file name (sed_scores_eval's rule).
- find_audio_files / audio_files_by_stem: files of one folder, by name, else by stem (evaluation sets).
- json_audio_path, audio_file_names: where a caption json entry's "audio" points, and the file names it
  may have; shared by the two resolvers below.
- resolve_retrieval_audio (retrieval test json): "audio" as it stands, then the relative "wav" path,
  then the file name, in a few folders (`retrieval_roots`).
- AudioPathResolver (training json): the json's path, then the relative "wav" path under audio_root,
  then the file name anywhere below audio_root (an index of every file, built once).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from data_handling.wavcaps import CaptionItem

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


class AudioPathResolver:
    """Finds a training row's audio file: its json path, else under audio_root.

    Under audio_root: the row's relative "wav" path, then a file name (of "audio", of "wav", and for
    PLACEHOLDER_AUDIO the id plus each of AUDIO_EXTENSIONS, in that order) in an index of every file below
    audio_root (os.walk, sorted, name -> paths), built on the first lookup by name. A name found at
    several paths resolves to the one with the most folders (below audio_root) that contain, or are
    contained in, a folder name of the row's json file or "audio"/"wav" paths (so
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
        names = audio_file_names(item.audio_ref, item.wav)
        if item.audio_ref == PLACEHOLDER_AUDIO:
            names += [item.clip_id + extension for extension in AUDIO_EXTENSIONS]
        return list(dict.fromkeys(names))

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
        """The audio file of a row, or None when it is found nowhere."""
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
