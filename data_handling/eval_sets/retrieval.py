"""Retrieval test sets: Clotho / AudioCaps-style caption json (WavCaps' retrieval test files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_handling.audio_paths import (
    RetrievalRoots,
    check_audio_exists,
    resolve_retrieval_audio,
    retrieval_roots,
)
from data_handling.caption_json import (
    WAVCAPS_LAYOUT,
    data_entries,
    entry_audio,
    entry_clip_id,
    entry_location,
    require_entry_object,
    retrieval_captions,
)
from data_handling.caption_sources import read_source_records, source_format
from data_handling.metadata_files import load_json


@dataclass(frozen=True)
class RetrievalItem:
    """One audio clip of a retrieval test set with its captions; `id` is informational (it may repeat)."""

    audio_path: Path
    captions: list[str]
    id: str


def read_retrieval_json(path: str | Path, audio_root: str | Path | None = None, check_audio: bool = True,
                        search_roots: Sequence[str | Path] = ()) -> list[RetrievalItem]:
    """Read a Clotho/AudioCaps-style retrieval json (WavCaps' retrieval test files).

    Layout: {"num_captions_per_audio": 5, "data": [{"id"?: ..., "audio": path, "wav"?: relative path,
    "caption_1": .., "caption_5": ..} or {"audio": path, "caption": [..]}]}. Clips are numbered by their
    position in "data"; "id" is informational only (it may repeat: the Clotho test file has five "Not
    found"); a missing "id" becomes the audio file name without extension. When "num_captions_per_audio"
    is given every entry must have that many captions.

    Audio paths, the first that exists (`resolve_retrieval_audio`): "audio" as it stands (the reference
    reads it so; in WavCaps' files it is an absolute path of the authors' machine; a relative path starts
    at `audio_root`, default the json's folder); the relative "wav" path under `audio_root` (without one:
    the json's folder or any folder above it) or a search root; the file name in `audio_root` (default:
    the json's folder) or a search root. When none exists the item keeps the "audio" path, which the
    evaluation reports as missing (skipped and counted).

    A CSV/TSV table or a Hugging Face dataset with captions (data_handling.caption_sources) is read as its
    training rows are: a clip per distinct audio, its non-empty captions, paths relative to the table's folder.

    Args:
        check_audio: raise FileNotFoundError if a listed audio file cannot be found.
        search_roots: further folders (e.g. eval.data_root_dir) that "wav" paths and file names are tried in.
    """
    path = Path(path)
    if source_format(path) != "wavcaps":
        items = _retrieval_items_of_source(path)
        if check_audio:
            check_audio_exists((item.audio_path for item in items), path)
        return items
    content = load_json(path, "retrieval json", WAVCAPS_LAYOUT)
    entries = data_entries(content, path)
    roots = retrieval_roots(path, audio_root, search_roots)
    expected_count = content.get("num_captions_per_audio")
    items = [_retrieval_item(entry, entry_location(path, position, entry), roots, expected_count)
             for position, entry in enumerate(entries)]
    if check_audio:
        check_audio_exists((item.audio_path for item in items), path)
    return items


def _retrieval_item(entry: Any, where: str, roots: RetrievalRoots, expected_count: int | None) -> RetrievalItem:
    """One RetrievalItem from one json entry."""
    require_entry_object(entry, where)
    audio, wav = entry_audio(entry, where)
    captions = retrieval_captions(entry, where)
    if expected_count is not None and len(captions) != int(expected_count):
        raise ValueError(f"{where}: has {len(captions)} captions but num_captions_per_audio is {expected_count}")
    return RetrievalItem(audio_path=resolve_retrieval_audio(audio, wav, roots), captions=captions,
                         id=entry_clip_id(entry, audio))


def _retrieval_items_of_source(path: Path) -> list[RetrievalItem]:
    """The clips of a table or dataset with captions; clips without a non-empty caption are left out."""
    items = [RetrievalItem(record.audio_path, [caption for caption in record.captions if caption.strip()],
                           record.clip_id) for record in read_source_records(path, need="caption")]
    return [item for item in items if item.captions]
