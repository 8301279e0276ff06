"""The WavCaps caption json layout, shared by the training files and the retrieval test files, and the
parsing of one entry's fields (captions, audio paths, id) with errors that name file and entry.

    {"num_captions_per_audio": n, "data": [{"id": "Y0a1b2", "audio": "/abs/or/rel/x.flac", "wav": "rel/x.flac",
                                            "caption": "a dog barks", "duration": 9.8}, ...]}

Caption keys, two rules:
- training (the reference's; `training_captions`): a file with num_captions_per_audio 1 reads "caption"
  (a string, or a non-empty list of strings: one row each); a Clotho file (its path contains "Clotho")
  "caption_1" ... "caption_N" with N = num_captions_per_audio; any other multi-caption file "caption_1" ...
  "caption_n" with n = the entry's "num_captions" (num_captions_per_audio when it has none).
- retrieval (`retrieval_captions`): "caption" (a string or a list of strings) when the entry has it, else
  every "caption_<n>" key, in the order of n.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from data_handling.audio_paths import clip_id_from_filename

WAVCAPS_LAYOUT = ('WavCaps json layout: {"num_captions_per_audio": n, "data": [{"id": str, "audio": path, '
                  '"caption": str (n == 1) or "caption_1" ... (n > 1), "duration": seconds}, ...]}')
NUMBERED_CAPTION = "caption_"
"""Prefix of the numbered caption keys: caption_1, caption_2, ..."""


def data_entries(content: Any, path: Path) -> list[Any]:
    """The "data" list of a caption json file's content."""
    data = content.get("data") if isinstance(content, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a json object with a 'data' list. {WAVCAPS_LAYOUT}")
    return data


def entry_location(path: Path, position: int, entry: Any) -> str:
    """'<file>, data[<position>] (id <id>)', for error messages."""
    has_id = isinstance(entry, dict) and "id" in entry
    return f"{path}, data[{position}]" + (f" (id {entry['id']!r})" if has_id else "")


def require_entry_object(entry: Any, where: str) -> Mapping[str, Any]:
    """The entry, if it is a json object."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a json object, found {type(entry).__name__}. {WAVCAPS_LAYOUT}")
    return entry


def entry_audio(entry: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    """(the "audio" value, the relative "wav" path or None) of an entry."""
    audio = entry.get("audio")
    if not isinstance(audio, str) or not audio.strip():
        raise ValueError(f"{where}: expected 'audio' as a non-empty path string, found {audio!r}. {WAVCAPS_LAYOUT}")
    wav = entry.get("wav")
    if wav is not None and not isinstance(wav, str):
        raise ValueError(f"{where}: expected 'wav' as a relative path string, found {wav!r}")
    return audio, wav or None


def entry_clip_id(entry: Mapping[str, Any], audio: str) -> str:
    """The entry's "id" as a string; without one, the audio file's name without its audio extension."""
    clip_id = entry.get("id")
    return str(clip_id) if clip_id is not None else clip_id_from_filename(Path(audio).name)


# ----------------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------------
def _caption(entry: Mapping[str, Any], key: str, where: str, why: str, allow_empty: bool) -> str:
    """The string under `key`; an empty (or blank) one only with allow_empty."""
    caption = entry.get(key)
    if not isinstance(caption, str) or not (allow_empty or caption.strip()):
        kind = "a string" if allow_empty else "a non-empty string"
        raise ValueError(f"{where}: expected {key!r} as {kind} ({why}), found {caption!r}. {WAVCAPS_LAYOUT}")
    return caption


def _listed_captions(entry: Mapping[str, Any], where: str, why: str, allow_empty: bool) -> list[str]:
    """"caption": a string, or a non-empty list of strings."""
    raw = entry.get("caption")
    if isinstance(raw, list) and raw:
        return [_caption({"caption": value}, "caption", where, "each caption of the list", allow_empty)
                for value in raw]
    return [_caption(entry, "caption", where, why, allow_empty)]


def _captions_under(entry: Mapping[str, Any], keys: Sequence[str], where: str, why: str,
                    allow_empty: bool) -> list[str]:
    return [_caption(entry, key, where, why, allow_empty) for key in keys]


def is_empty_caption(caption: str) -> bool:
    """A caption with no text (only whitespace): trained on as it stands, the tokenizer gives [CLS] [SEP]."""
    return not caption.strip()


def _numbered_keys(count: int) -> list[str]:
    return [f"{NUMBERED_CAPTION}{number}" for number in range(1, count + 1)]


def training_captions(entry: Mapping[str, Any], per_audio: int, is_clotho: bool, where: str) -> list[str]:
    """The captions of a training entry (the reference's rule, see the module docstring). An empty caption
    ("" or blank) is kept, as the reference trains on it (`is_empty_caption`; the readers count them)."""
    if per_audio == 1:
        return _listed_captions(entry, where, "num_captions_per_audio is 1", allow_empty=True)
    if is_clotho:
        return _captions_under(entry, _numbered_keys(per_audio), where,
                               f"a Clotho file with {per_audio} captions per audio", allow_empty=True)
    count = entry.get("num_captions", per_audio)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{where}: expected 'num_captions' as an integer >= 1, found {count!r}")
    return _captions_under(entry, _numbered_keys(count), where, f"num_captions is {count}", allow_empty=True)


def retrieval_captions(entry: Mapping[str, Any], where: str) -> list[str]:
    """The captions of a retrieval test entry: "caption", else every "caption_<n>" in the order of n."""
    if "caption" in entry:
        return _listed_captions(entry, where, "a caption or a list of captions", allow_empty=False)
    keys = sorted((key for key in entry if key.startswith(NUMBERED_CAPTION) and key[len(NUMBERED_CAPTION):].isdigit()),
                  key=lambda key: int(key[len(NUMBERED_CAPTION):]))
    if not keys:
        raise ValueError(f"{where}: no captions; expected \"caption_1\" .. \"caption_N\" or a \"caption\" list, "
                         f"found keys {sorted(entry)}. {WAVCAPS_LAYOUT}")
    return _captions_under(entry, keys, where, "the numbered captions of a retrieval entry", allow_empty=False)
