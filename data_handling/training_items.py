"""The training rows as training reads them: json files and blacklist (data_handling/wavcaps.py), audio files
found (data_handling/audio_paths.py's AudioPathResolver), durations from the file headers where the json has
none. `prepare_training_items` is what the trainer calls; `python -m tools.check_data` reports on the
same steps, file by file.

Clips whose audio is found nowhere stop the run with MissingAudioFilesError, unless skip_missing drops them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from data_handling.audio_io import AudioReadError, audio_duration
from data_handling.audio_paths import MAX_REPORTED, AudioPathResolver
from data_handling.blacklist import Blacklist
from data_handling.caption_rows import CaptionItem
from data_handling.caption_sources import read_wavcaps_jsons
from data_handling.source_records import SourceOptions

logger = logging.getLogger(__name__)


class MissingAudioFilesError(FileNotFoundError):
    """Audio files of the training json files were found neither at their path nor under audio_root."""


@dataclass
class AudioResolution:
    """Rows whose audio file was found (audio_path set to it) and rows whose file was not."""

    found: list[CaptionItem]
    unresolved: list[CaptionItem]
    why_missing: dict[tuple[str, int], str] = field(default_factory=dict)
    """(json file, clip_index) -> why the clip's audio is missing (AudioLookup.why_missing)"""

    def missing_records(self) -> list[dict[str, str]]:
        """One record per clip whose audio is missing: its "id", "audio" (the json's value), "source" (the
        json file) and "reason" (why no file was taken)."""
        return [{"id": item.clip_id, "audio": item.audio_ref, "source": item.source,
                 "reason": self.why_missing.get((item.source, item.clip_index), "audio file not found")}
                for item in self.unresolved_clips]

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
    why_missing: dict[tuple[str, int], str] = {}
    num_moved = 0
    for item in items:
        clip = (item.source, item.clip_index)
        if clip not in clip_paths:
            lookup = resolver.lookup(item)
            clip_paths[clip] = lookup.path
            num_moved += lookup.path not in (None, item.audio_path)
            if lookup.path is None:
                why_missing[clip] = lookup.why_missing
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
    details += [f"{resolver.other_dataset_refusals} file names found only under another dataset's folders "
                f"so far, not taken"] if resolver.other_dataset_refusals else []
    details += [f"{resolver.ambiguous_refusals} file names at several paths for rows that name no dataset so "
                f"far, not taken"] if resolver.ambiguous_refusals else []
    logger.info("audio files of %d of %d clips found%s", len(clip_paths) - num_missing, len(clip_paths),
                f" ({', '.join(details)})" if details else "")
    return AudioResolution(found, unresolved, why_missing)


def describe_clip(item: CaptionItem, with_source: bool = True) -> str:
    """'"<audio>" (id <id> in <json file>)', for messages; without the json file when with_source is False."""
    return f"{item.audio_ref!r} (id {item.clip_id!r}" + (f" in {item.source})" if with_source else ")")


def describe_unresolved(unresolved_clips: Sequence[CaptionItem], limit: int = MAX_REPORTED) -> str:
    """describe_clip of the first `limit` clips, and how many more."""
    shown = "; ".join(describe_clip(item) for item in unresolved_clips[:limit])
    more = f"; and {len(unresolved_clips) - limit} more" if len(unresolved_clips) > limit else ""
    return shown + more


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


def _drop_or_stop(resolution: AudioResolution, skip_missing: bool) -> list[CaptionItem]:
    """The found rows; MissingAudioFilesError for unresolved clips unless skip_missing (then logged)."""
    missing = resolution.unresolved_clips
    if missing and not skip_missing:
        raise MissingAudioFilesError(
            f"{len(missing)} audio files of the training json files were not found: "
            f"{describe_unresolved(missing)}. Set data_args.audio_root to the folder that holds them (they "
            f"are looked up there by their relative 'wav' path and by file name), or set "
            f"data_args.skip_missing: true to train without them; "
            f"`python -m tools.check_data -c <config>` reports every file")
    if missing:
        logger.warning("data_args.skip_missing: %d clips (%d captions) without an audio file are left out: %s",
                       len(missing), len(resolution.unresolved), describe_unresolved(missing))
    return resolution.found


def prepare_training_items(json_files: str | Path | Sequence[str | Path], *,
                           blacklist: str | Path | Sequence[str | Path] | Blacklist | None = None,
                           audio_root: str | Path | None = None, check_files: bool = True,
                           skip_missing: bool = False, options: SourceOptions | None = None) -> list[CaptionItem]:
    """The training rows, as Trainer reads them: json files (or the other formats of
    data_handling.caption_sources), blacklist, audio paths, durations.

    Args:
        check_files: find every audio file at start-up (AudioPathResolver); False uses the json's paths
            as they stand, without a check.
        skip_missing: False raises MissingAudioFilesError when audio files are found nowhere; True drops
            their rows and logs how many.
        options: caption templates, strictness and audio cache of the formats other than WavCaps json.

    Raises:
        FileNotFoundError / ValueError: a json file or the blacklist is missing or malformed.
        MissingAudioFilesError: audio files not found and skip_missing is False (before any training).
    """
    items = read_wavcaps_jsons(json_files, audio_root, blacklist, options)
    if check_files:
        items = _drop_or_stop(resolve_audio_paths(items, AudioPathResolver(audio_root)), skip_missing)
    return fill_missing_durations(items)


HOLD_OUT_STREAM = 0x5EED
"""The first key of the held-out draw's generator (data_args.val_fraction)."""


def hold_out_clips(items: Sequence[CaptionItem], fraction: float, seed: int
                   ) -> tuple[list[CaptionItem], list[CaptionItem]]:
    """(training rows, held-out rows): round(fraction x clips) whole clips (at least one, never all), drawn by a
    generator keyed by (HOLD_OUT_STREAM, seed) over the clips in their order: the same split on every run, on
    every process and after a resume. The rows of a clip stay together."""
    clips = list(dict.fromkeys((item.source, item.clip_index) for item in items))
    if len(clips) < 2:
        raise ValueError(f"data_args.val_fraction {fraction}: {len(clips)} training clip(s), too few to hold any out")
    count = min(len(clips) - 1, max(1, round(fraction * len(clips))))
    order = np.random.default_rng([HOLD_OUT_STREAM, seed]).permutation(len(clips))
    held = {clips[position] for position in order[:count].tolist()}
    train = [item for item in items if (item.source, item.clip_index) not in held]
    held_out = [item for item in items if (item.source, item.clip_index) in held]
    return train, held_out
