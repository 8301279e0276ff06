"""Frame scores -> decisions: score scale, smoothing, gap joining, minimum length, thresholds -> events.

Every decision of the detector is a threshold on one post-processed score curve per query:

    frame cosine [T, Q] -> (sigmoid) -> median filter -> gap closing -> short-run opening -> score > threshold

The median filter is the SED protocol's (`tools.eval.sed_metrics.median_filter_time`, inside
`sed_scores_from_frames`). Joining gaps of at most g frames and dropping runs shorter than L frames are the
grey-level closing and opening of the curve with flat windows of g + 1 and L frames: thresholding commutes
with max and min filters, so thresholding the post-processed curve at t gives exactly the runs that
thresholding the smoothed curve at t, joining its gaps (as `tools.eval.grounding_metrics.join_close_regions`)
and dropping its short runs give, at every t. That lets sed_scores_eval score the detector itself (PSDS,
the best collar F1 and its threshold per class) from the written score files, and makes events.tsv what
sed_scores_eval's thresholding of those files gives. Decisions are strict (score > threshold), as
sed_scores_eval's and the grounding protocol's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from models.similarity import frame_text_similarity
from models.windowing import FRAME_HOP_SECONDS
from tools.eval.grounding_metrics import active_regions
from tools.eval.sed_metrics import median_filter_time

SCORE_KINDS = ("cosine", "sigmoid")
"""cosine: the SED protocol's frame score; sigmoid: the grounding protocol's (sigmoid of the cosine)."""
DEFAULT_THRESHOLD = {"cosine": 0.5, "sigmoid": 1.0 / (1.0 + math.exp(-0.5))}
"""Threshold of queries without a calibrated one: cosine 0.5, or the same decision on the sigmoid scale
(sigmoid(0.5) = 0.6225)."""


@dataclass(frozen=True)
class Event:
    """One detection: seconds from the start of the file, the query, the peak of its smoothed score."""

    onset: float
    offset: float
    label: str
    peak: float


@dataclass(frozen=True)
class DecisionSettings:
    """How frame scores become decisions (the defaults are the SED protocol's: cosine, median filter of 3).

    score: "cosine" or "sigmoid" (`SCORE_KINDS`).
    median_frames: median filter length in frames (1: none).
    join_gap_seconds: join detections separated by a gap of at most this many seconds (0: none).
    min_length_seconds: drop detections shorter than this (0: none).
    """

    score: str = "cosine"
    median_frames: int = 3
    join_gap_seconds: float = 0.0
    min_length_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.score not in SCORE_KINDS:
            raise ValueError(f"score must be one of {SCORE_KINDS}, got {self.score!r}")
        if self.median_frames < 1:
            raise ValueError(f"the median filter needs >= 1 frame (1: no filter), got {self.median_frames}")
        if self.join_gap_seconds < 0 or self.min_length_seconds < 0:
            raise ValueError(f"join gap and minimum length must be >= 0 seconds, got {self.join_gap_seconds} "
                             f"and {self.min_length_seconds}")

    @property
    def gap_frames(self) -> int:
        """Longest gap joined, in frames (a gap of g frames lasts g * 10 / 32 s)."""
        return math.floor(self.join_gap_seconds / FRAME_HOP_SECONDS + 1e-9)

    @property
    def min_frames(self) -> int:
        """Shortest run kept, in frames."""
        return max(1, math.ceil(self.min_length_seconds / FRAME_HOP_SECONDS - 1e-9))

    @property
    def default_threshold(self) -> float:
        return DEFAULT_THRESHOLD[self.score]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> DecisionSettings:
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


def frame_scores(frame_embeds: torch.Tensor, query_embeds: torch.Tensor, score: str = "cosine") -> np.ndarray:
    """L2-normalised frames [T, E] x queries [Q, E] -> [T, Q] float64 scores (cosine, or its sigmoid)."""
    cosine = frame_text_similarity(frame_embeds.float(), query_embeds.float())
    return (torch.sigmoid(cosine) if score == "sigmoid" else cosine).double().numpy()


def _window_max(values: np.ndarray, width: int) -> np.ndarray:
    """[N, C] -> [N - width + 1, C], row k = max of rows k .. k + width - 1."""
    return sliding_window_view(values, width, axis=0).max(axis=-1)


def _window_min(values: np.ndarray, width: int) -> np.ndarray:
    """[N, C] -> [N - width + 1, C], row k = min of rows k .. k + width - 1."""
    return sliding_window_view(values, width, axis=0).min(axis=-1)


def close_gaps(scores: np.ndarray, max_gap: int) -> np.ndarray:
    """Grey closing along time: at every threshold t, the runs of (result > t) are those of (scores > t)
    with the gaps of at most max_gap frames between two runs filled; frames below t before the first run
    and after the last stay below it.

    Dilation over [i - g, i] (runs grow right by g frames), then erosion over [i, i + g] (they shrink back),
    on the curve edge-padded by g + 1 frames so that the ends are never joined to anything.
    Args:
        scores: [T, C]. Returns [T, C].
    """
    if max_gap <= 0:
        return scores
    width = max_gap + 1
    padded = np.pad(scores, ((width, width), (0, 0)), mode="edge")       # [T + 2w, C]
    dilated = _window_max(padded, width)                                # row k: position k + g
    eroded = _window_min(dilated, width)                                # row j: position j + g
    return eroded[1:1 + scores.shape[0]]


def drop_short_runs(scores: np.ndarray, min_frames: int) -> np.ndarray:
    """Grey opening along time: at every threshold t, the runs of (result > t) are the runs of (scores > t)
    that last at least min_frames frames (beyond both ends the curve counts as below every threshold).

    Args:
        scores: [T, C]. Returns [T, C].
    """
    if min_frames <= 1:
        return scores
    floor = np.min(scores) - 1.0 if scores.size else 0.0
    padded = np.pad(scores, ((min_frames - 1, min_frames - 1), (0, 0)), constant_values=floor)
    eroded = _window_min(padded, min_frames)            # row k: erosion over [k, k + L - 1], at position k
    return _window_max(eroded, min_frames)              # row j: dilation over [p - L + 1, p], p = j + L - 1


def smooth_scores(scores: np.ndarray, settings: DecisionSettings) -> np.ndarray:
    """The median-filtered curve [T, C] (what the peaks are read from)."""
    return median_filter_time(np.asarray(scores, dtype=np.float64), settings.median_frames)


def decision_curves(smoothed: np.ndarray, settings: DecisionSettings) -> np.ndarray:
    """Median-filtered scores [T, C] -> the curves the thresholds apply to [T, C] (gap closing, opening)."""
    return drop_short_runs(close_gaps(smoothed, settings.gap_frames), settings.min_frames)


def frame_boundaries(num_frames: int, duration: float | None = None) -> np.ndarray:
    """[num_frames + 1] frame boundaries in seconds (i * 10 / 32); with a duration, the last one is capped at it."""
    boundaries = np.arange(num_frames + 1, dtype=np.float64) * FRAME_HOP_SECONDS
    if duration is not None and num_frames:
        boundaries[-1] = min(boundaries[-1], float(duration))
    return boundaries


def frames_within(num_frames: int, duration: float) -> int:
    """Frames that start before `duration` seconds (at least one): the frames that cover real audio."""
    return max(1, min(num_frames, math.ceil(duration / FRAME_HOP_SECONDS - 1e-9)))


def score_dataframe(curves: np.ndarray, boundaries: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """sed_scores_eval's score DataFrame: onset, offset, one column per label (one row per frame)."""
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    return create_score_dataframe(curves, boundaries, list(labels))


def events_from_curves(curves: np.ndarray, smoothed: np.ndarray, boundaries: np.ndarray, labels: Sequence[str],
                       thresholds: Sequence[float]) -> list[Event]:
    """Runs of (curves > threshold) per label -> events sorted by onset, then label.

    Args:
        curves: [T, C] decision curves; smoothed: [T, C] median-filtered scores (the peaks);
        boundaries: [T + 1] seconds; thresholds: C values.
    """
    if curves.shape != smoothed.shape or curves.shape[1] != len(labels) or len(thresholds) != len(labels):
        raise ValueError(f"curves {curves.shape}, smoothed {smoothed.shape}, {len(labels)} labels and "
                         f"{len(thresholds)} thresholds must agree ([T, C], C labels, C thresholds)")
    events = []
    for column, (label, threshold) in enumerate(zip(labels, thresholds, strict=True)):
        for start, end in active_regions(curves[:, column] > threshold):
            peak = float(np.max(smoothed[start:end, column]))
            events.append(Event(float(boundaries[start]), float(boundaries[end]), label, peak))
    return sorted(events, key=lambda event: (event.onset, event.label, event.offset))
