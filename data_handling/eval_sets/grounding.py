"""Text-to-audio grounding sets: AudioGrounding json (phrases with segments) and its duration file."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_handling.metadata_files import load_json, read_durations_tsv

GROUNDING_JSON_LAYOUT = ('AudioGrounding json: [{"audio_id", "audiocap_id", "tokens", "phrases": [{"phrase", '
                         '"start_index", "end_index", "segments": [[onset, offset], ...]}]}]')
"""The json format of an AudioGrounding set (the reader's errors)."""
GROUNDING_FOLDER_LAYOUT = "AudioGrounding layout: <root>/test.json and <root>/audio/<audio_id>"
"""The folder of an AudioGrounding set, for the evaluation's error when the audio folder is missing."""
GROUNDING_DURATIONS_LAYOUT = "grounding durations: tab-separated, header audio_id<TAB>duration"


@dataclass(frozen=True)
class GroundingPhrase:
    """One phrase of an AudioGrounding caption; segments in seconds without [0, 0] placeholders."""

    phrase_id: str
    audio_id: str
    audiocap_id: str
    phrase: str
    start_index: int
    end_index: int | None
    segments: list[tuple[float, float]]


def _duplicates(values: Iterable[str]) -> list[str]:
    """Sorted values that occur more than once."""
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _phrase_segments(segments: Any, where: str) -> list[tuple[float, float]]:
    """Segments in seconds without [0, 0] placeholders (and other empty ones, with a warning)."""
    kept, num_empty = [], 0
    for segment in segments or []:
        if not isinstance(segment, list | tuple) or len(segment) != 2:
            raise ValueError(f"{where}: each segment must be [onset, offset], got {segment!r}")
        onset, offset = float(segment[0]), float(segment[1])
        if offset > onset:
            kept.append((onset, offset))
        elif (onset, offset) != (0.0, 0.0):
            num_empty += 1
    if num_empty:
        warnings.warn(f"{where}: dropped {num_empty} segment(s) with offset <= onset", UserWarning, stacklevel=3)
    return kept


def _grounding_phrases(entry: Any, position: int, path: Path) -> list[GroundingPhrase]:
    """The phrase records of one AudioGrounding entry."""
    if not isinstance(entry, dict) or not {"audio_id", "audiocap_id", "phrases"} <= set(entry):
        raise ValueError(f"{path}: entry {position} lacks audio_id / audiocap_id / phrases ({GROUNDING_JSON_LAYOUT})")
    phrases = []
    for phrase in entry["phrases"]:
        where = f"{path}: entry {position} (audiocap_id {entry['audiocap_id']})"
        if not isinstance(phrase, dict) or "start_index" not in phrase or "phrase" not in phrase:
            raise ValueError(f"{where}: each phrase needs \"phrase\" and \"start_index\" ({GROUNDING_JSON_LAYOUT})")
        end_index = phrase.get("end_index")
        phrases.append(GroundingPhrase(
            phrase_id=f"{entry['audiocap_id']}_{phrase['start_index']}", audio_id=str(entry["audio_id"]),
            audiocap_id=str(entry["audiocap_id"]), phrase=str(phrase["phrase"]),
            start_index=int(phrase["start_index"]), end_index=None if end_index is None else int(end_index),
            segments=_phrase_segments(phrase.get("segments"), where)))
    return phrases


def read_grounding_json(json_path: str | Path) -> list[GroundingPhrase]:
    """AudioGrounding phrases, phrase_id = f"{audiocap_id}_{start_index}" (unique, else ValueError).

    Accepts the list layout or {"data": [...]}. [0, 0] segments are dropped, so a phrase may end up
    with no segment (tools.eval.sed_metrics.grounding_psds leaves such phrases out of the evaluation).
    """
    path = Path(json_path)
    content = load_json(path, "AudioGrounding json", GROUNDING_JSON_LAYOUT)
    entries = content.get("data") if isinstance(content, dict) else content
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries ({GROUNDING_JSON_LAYOUT})")
    phrases = [phrase for position, entry in enumerate(entries) for phrase in _grounding_phrases(entry, position, path)]
    duplicates = _duplicates(phrase.phrase_id for phrase in phrases)
    if duplicates:
        raise ValueError(f"{path}: duplicate phrase ids (audiocap_id_start_index) {duplicates[:5]}")
    return phrases


def read_grounding_durations(path: str | Path) -> dict[str, float]:
    """audio_id -> seconds from AudioGrounding's duration file (tab-separated, header audio_id<TAB>duration;
    "filename" is accepted for "audio_id")."""
    return dict(read_durations_tsv(Path(path), "grounding durations file",
                                   (("audio_id", "duration"), ("filename", "duration")), GROUNDING_DURATIONS_LAYOUT))
