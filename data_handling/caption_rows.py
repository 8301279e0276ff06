"""The caption rows every training source is read into (WavCaps json files, tables, labelled folders, Hugging
Face datasets): one CaptionItem per (clip, caption), and what one source file gave (JsonFileContents)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    labels: tuple[str, ...] = ()  # a labelled clip's labels (its caption is drawn from templates per epoch)


@dataclass
class JsonFileContents:
    """The kept rows of one json file and what the blacklist removed."""

    path: str  # as given
    items: list[CaptionItem]
    num_clips: int  # clips kept
    num_blacklisted: int  # clips dropped by the blacklist
    blacklist_key: str | None  # the list that filtered this file (None: not filtered)
    num_empty_captions: int = 0  # rows whose caption is empty or blank (kept, as the reference trains on them)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> clips or captions left out (other formats)
