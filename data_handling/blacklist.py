"""The blacklist of training clips: reading it, and which of its lists filters a json file (the reference's rules).

Layout: {"AudioSet": [ids], "FreeSound": [ids]}, with the ids as they appear in the json files (WavCaps'
ids are strings; no conversion is made). One file (the reference), a folder of *.json or a list of
either; several files are merged per key.

Which list filters a json file depends on its path as given: single-caption files whose path contains
"FreeSound" use the FreeSound ids, else "AudioSet" or "AudioCaps" the AudioSet ids; multi-caption files
whose path contains "Clotho" the FreeSound ids; every other file is not filtered (`blacklist_key_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_handling.metadata_files import load_json

logger = logging.getLogger(__name__)

BLACKLIST_LAYOUT = '{"AudioSet": [id, ...], "FreeSound": [id, ...]} with the ids as they appear in the json files'
BLACKLIST_KEYS = ("AudioSet", "FreeSound")


@dataclass(frozen=True)
class Blacklist:
    """Ids to leave out, per dataset key ("AudioSet", "FreeSound"), as they appear in the json files."""

    ids: Mapping[str, frozenset] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def ids_for(self, key: str | None) -> frozenset:
        return self.ids.get(key, frozenset()) if key is not None else frozenset()


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
        content = load_json(file, "blacklist file", "check the path in the YAML file")
        for key, ids in _blacklist_lists(content, file).items():
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
