"""Open-vocabulary detection on audio files: text queries -> events with absolute timestamps.

    files -> frame embeddings (streaming.embed_files) -> frame scores [T, Q] per file (events.frame_scores)
          -> median filter, gap closing, opening (events) -> thresholds per query -> events

Query embeddings are `tools.eval.embedding.embed_texts`'; a query's text is its label in every output.
The scores of one file are held whole ([T, Q] floats: 11,520 frames per hour); frame embeddings are not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from tools.detect.events import (
    DecisionSettings,
    Event,
    decision_curves,
    events_from_curves,
    frame_boundaries,
    frame_scores,
    score_dataframe,
    smooth_scores,
)
from tools.detect.streaming import DEFAULT_OVERLAP, EmbeddedFile, SkippedFile, embed_files
from tools.eval.embedding import embed_texts

log = logging.getLogger(__name__)


@dataclass
class FileDetection:
    """The detector's output for one file.

    clip_id: the file's id in the score files (its name without extension, made unique).
    smoothed: [T, Q] median-filtered scores; curves: [T, Q] decision curves (what thresholds apply to);
    boundaries: [T + 1] frame boundaries in seconds (the last capped at the duration);
    events: detections, sorted by onset.
    """

    clip_id: str
    path: Path
    duration: float
    labels: list[str]
    smoothed: np.ndarray
    curves: np.ndarray
    boundaries: np.ndarray
    events: list[Event] = field(default_factory=list)

    def score_frame(self) -> pd.DataFrame:
        """The decision curves as a sed_scores_eval DataFrame (onset, offset, one column per query)."""
        return score_dataframe(self.curves, self.boundaries, self.labels)


@dataclass(frozen=True)
class StreamOptions:
    """How files are read and encoded: window overlap of long files (streaming.OVERLAPS), windows or files
    per forward pass, loader processes for short files, numerics (float32 / bf16 on CUDA), progress bar."""

    overlap: float = DEFAULT_OVERLAP
    batch_size: int | str = "auto"
    num_workers: int | str = "auto"
    precision: str = "float32"
    progress: bool = True


def unique_clip_ids(paths: Sequence[Path]) -> list[str]:
    """One id per path: the file name without extension; names that occur twice get their folder's name
    in front ("<folder>__<name>"), then a counter if that is not enough."""
    stems = [path.stem for path in paths]
    ids = [stem if stems.count(stem) == 1 else f"{path.parent.name}__{stem}" for stem, path in zip(stems, paths,
                                                                                                    strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for clip_id in ids:
        seen[clip_id] = seen.get(clip_id, 0) + 1
        unique.append(clip_id if seen[clip_id] == 1 else f"{clip_id}__{seen[clip_id]}")
    return unique


def resolve_thresholds(labels: Sequence[str], thresholds: Mapping[str, float] | None,
                       settings: DecisionSettings, default: float | None = None) -> list[float]:
    """One threshold per label: the calibrated one when given, else `default` (else the score's default)."""
    fallback = settings.default_threshold if default is None else float(default)
    thresholds = thresholds or {}
    return [float(thresholds.get(label, fallback)) for label in labels]


def detect_in_scores(clip_id: str, path: Path, duration: float, raw_scores: np.ndarray, labels: Sequence[str],
                     settings: DecisionSettings, thresholds: Sequence[float]) -> FileDetection:
    """Frame scores [T, Q] of one file -> FileDetection (smoothing, decision curves, events)."""
    smoothed = smooth_scores(raw_scores, settings)
    curves = decision_curves(smoothed, settings)
    boundaries = frame_boundaries(smoothed.shape[0], duration)
    events = events_from_curves(curves, smoothed, boundaries, labels, thresholds)
    return FileDetection(clip_id, path, duration, list(labels), smoothed, curves, boundaries, events)


def detect_files(model: nn.Module, paths: Sequence[str | Path], queries: Sequence[str],
                 settings: DecisionSettings | None = None, thresholds: Mapping[str, float] | None = None,
                 default_threshold: float | None = None, device: str | torch.device | None = None,
                 options: StreamOptions | None = None) -> Iterator[FileDetection | SkippedFile]:
    """Detect every query in every file; yields one FileDetection (or SkippedFile) per path, in order.

    Args:
        paths: N audio files, any length and sample rate (mono mix, resampled to the model's rate).
        queries: Q texts (the labels of the outputs).
        thresholds: query -> threshold (e.g. from a calibration file); others get `default_threshold`
            (default: DEFAULT_THRESHOLD of the score kind).
    """
    settings = settings or DecisionSettings()
    options = options or StreamOptions()
    if not queries:
        raise ValueError("no text query given; pass --query TEXT (repeatable) or --queries-file FILE "
                         "(one query per line)")
    paths = [Path(path) for path in paths]
    labels = list(queries)
    query_embeds = embed_texts(model, labels, device, precision=options.precision)      # [Q, E]
    threshold_list = resolve_thresholds(labels, thresholds, settings, default_threshold)
    clip_ids = unique_clip_ids(paths)

    def reduce_frames(frames: torch.Tensor) -> np.ndarray:
        return frame_scores(frames, query_embeds, settings.score)                           # [t, Q]

    for embedded in embed_files(model, paths, reduce_frames, device, options.overlap, options.batch_size,
                                options.num_workers, options.precision, progress=options.progress):
        if isinstance(embedded, SkippedFile):
            log.warning("skipped %s: %s", embedded.path, embedded.reason)
            yield embedded
            continue
        yield _detection(embedded, clip_ids[embedded.index], labels, settings, threshold_list)


def _detection(embedded: EmbeddedFile, clip_id: str, labels: list[str], settings: DecisionSettings,
               thresholds: list[float]) -> FileDetection:
    return detect_in_scores(clip_id, embedded.path, embedded.duration, embedded.frame_outputs, labels, settings,
                            thresholds)
