"""Reading the WavCaps training json files into caption rows (CaptionItem), after the blacklist.

The layout and the caption rules are in data_handling/caption_json.py, the blacklist's in
data_handling/blacklist.py. Rows: a single-caption file gives one row per item (a "caption" list one row
per caption); a Clotho file num_captions_per_audio rows per item; another multi-caption file "num_captions"
rows per item. The rows of a clip share its clip_index, a running number over the kept clips of all files
in order (the loss's positives). A relative "audio" is joined to audio_root (else to the json's folder);
whether the file is there is data_handling/audio_paths.py's concern (AudioPathResolver).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_handling.audio_paths import json_audio_path
from data_handling.blacklist import Blacklist, blacklist_key_for
from data_handling.caption_json import (
    WAVCAPS_LAYOUT,
    data_entries,
    entry_audio,
    entry_clip_id,
    entry_location,
    is_empty_caption,
    require_entry_object,
    training_captions,
)
from data_handling.caption_rows import CaptionItem, JsonFileContents
from data_handling.metadata_files import load_json

logger = logging.getLogger(__name__)


def _captions_per_audio(content: Any, path: Path) -> int:
    """num_captions_per_audio of a training json file (required, an integer >= 1)."""
    per_audio = content.get("num_captions_per_audio")
    if isinstance(per_audio, bool) or not isinstance(per_audio, int) or per_audio < 1:
        raise ValueError(f"{path}: expected 'num_captions_per_audio' as an integer >= 1, found {per_audio!r}. "
                         f"{WAVCAPS_LAYOUT}")
    return per_audio


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
    content = load_json(path, "training json file", "check the path in the YAML file")
    entries = data_entries(content, path)
    per_audio = _captions_per_audio(content, path)
    root = audio_root if audio_root is not None else path.parent
    key = blacklist_key_for(path_text, per_audio) if blacklist is not None else None
    excluded = blacklist.ids_for(key) if blacklist is not None else frozenset()
    is_clotho = "Clotho" in path_text
    items: list[CaptionItem] = []
    num_clips = num_blacklisted = 0
    for position, entry in enumerate(entries):
        where = entry_location(path, position, entry)
        require_entry_object(entry, where)
        if _is_blacklisted(entry, excluded, key or "", where):
            num_blacklisted += 1
            continue
        audio, wav = entry_audio(entry, where)
        captions = training_captions(entry, per_audio, is_clotho, where)
        duration = _entry_duration(entry, where)
        items += [CaptionItem(json_audio_path(audio, root), caption, first_clip_index + num_clips, duration,
                              entry_clip_id(entry, audio), path_text, audio, wav) for caption in captions]
        num_clips += 1
    if blacklist is not None:
        logger.info("%s: %d of %d clips blacklisted (%s)", path_text, num_blacklisted, len(entries),
                    f"{key} list" if key else "no list applies to this path")
    logger.info("%s: %d clips, %d captions", path_text, num_clips, len(items))
    num_empty = sum(is_empty_caption(item.caption) for item in items)
    if num_empty:
        logger.warning("%s: %d empty captions, kept and trained on as the reference does (first: id %r)", path_text,
                       num_empty, next(item.clip_id for item in items if is_empty_caption(item.caption)))
    return JsonFileContents(path_text, items, num_clips, num_blacklisted, key, num_empty_captions=num_empty)
