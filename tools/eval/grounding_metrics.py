"""Text-to-audio grounding metrics (AudioGrounding protocol), pure functions of frame probabilities.

psds_eval computes them: every phrase is its own "file" with a single event label; 50 thresholds give 50
operating points of binarised, median-filtered, gap-joined detections; PSDS at the detection and ground-truth
criteria 0.7, 0.5 and 0.1. Frame grid as in sed_metrics.py (hop 10 / 32 s).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from psds_eval import PSDSEval

from models.windowing import FRAME_HOP_SECONDS
from tools.eval.retrieval_metrics import to_numpy
from tools.eval.sed_metrics import Segment, median_filter_time, merge_same_class_events

GROUNDING_THRESHOLDS = 0.01 + np.arange(50) / 50
"""The 50 decision thresholds of the grounding protocol: 0.01, 0.03, ..., 0.99."""
GROUNDING_JOIN_SECONDS = 0.5
GROUNDING_DTC_GTC = (0.7, 0.5, 0.1)
GROUNDING_MAX_EFPR = 800.0
GROUNDING_EVENT_LABEL = "phrase"
GROUNDING_MEDIAN_FRAMES = 3


# ----------------------------------------------------------------------------------------------------
# Text-to-audio grounding
# ----------------------------------------------------------------------------------------------------
def active_regions(active: np.ndarray) -> np.ndarray:
    """Runs of True frames.

    Args:
        active: [T] bool.
    Returns:
        [n_regions, 2] int, (start_frame, end_frame) with end exclusive.
    """
    padded = np.concatenate(([False], np.asarray(active, dtype=bool), [False]))
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return changes.reshape(-1, 2)


def join_close_regions(active: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill inactive gaps of at most `max_gap` frames between two active regions.

    Leading and trailing inactive frames are not gaps and stay inactive.

    Args:
        active: [T] bool.
    Returns:
        [T] bool.
    """
    joined = np.asarray(active, dtype=bool).copy()
    regions = active_regions(joined)
    for (_, previous_end), (next_start, _) in zip(regions[:-1], regions[1:], strict=True):
        if next_start - previous_end <= max_gap:
            joined[previous_end:next_start] = True
    return joined


def grounding_regions(probs: np.ndarray, threshold: float, median_size: int = 3,
                      max_gap: int = 2) -> np.ndarray:
    """Binarise (probs > threshold, strictly), median-filter, join close regions.

    Args:
        probs: [T] phrase-frame probabilities.
    Returns:
        [n_regions, 2] (start_frame, end_frame), end exclusive.
    """
    active = median_filter_time(np.asarray(probs) > threshold, median_size)
    return active_regions(join_close_regions(active, max_gap))


def _valid_segments(segments: Iterable[Sequence[float]]) -> list[Segment]:
    """Drop [0, 0] placeholders and other empty segments (offset <= onset); merge overlaps."""
    kept = [(float(on), float(off)) for on, off in segments if float(off) > float(on)]
    merged = merge_same_class_events((on, off, GROUNDING_EVENT_LABEL) for on, off in kept)
    return [(on, off) for on, off, _ in merged]


def _grounding_tables(
    phrase_probs: Mapping[str, Any],
    ground_truth: Mapping[str, Sequence[Sequence[float]]],
    durations: Mapping[str, float],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], int]:
    """Ground-truth and metadata tables of the evaluated phrases, their probabilities, #dropped."""
    truth = {phrase: _valid_segments(segments) for phrase, segments in ground_truth.items()}
    evaluated = sorted(phrase for phrase, segments in truth.items() if segments)
    if not evaluated:
        raise ValueError("no phrase has a valid ground-truth segment (all empty or [0, 0])")
    missing = [phrase for phrase in evaluated if phrase not in phrase_probs or phrase not in durations]
    if missing:
        raise ValueError(f"{len(missing)} phrase(s) with ground truth lack probabilities or durations, "
                         f"e.g. {missing[:5]}")
    gt_rows = [(phrase, on, off, GROUNDING_EVENT_LABEL) for phrase in evaluated for on, off in truth[phrase]]
    gt_table = pd.DataFrame(gt_rows, columns=PSDSEval.detection_cols)
    metadata = pd.DataFrame({"filename": evaluated,
                             "duration": [float(durations[phrase]) for phrase in evaluated]})
    probs = {phrase: to_numpy(phrase_probs[phrase]).astype(np.float64).reshape(-1) for phrase in evaluated}
    return gt_table, metadata, probs, len(truth) - len(evaluated)


def grounding_detections(
    probs: Mapping[str, np.ndarray],
    durations: Mapping[str, float],
    threshold: float,
    hop: float = FRAME_HOP_SECONDS,
    median_size: int = 3,
    max_gap: int = 2,
    clip_to_duration: bool = False,
) -> pd.DataFrame:
    """Detections of one operating point: columns filename, onset, offset, event_label.

    Regions are turned into seconds (frame * hop) as they are, as the reference does: a detection in the
    frames of audio tiled beyond a short clip's end counts (a false positive unless it overlaps ground
    truth). With `clip_to_duration` offsets are clipped to the phrase's audio duration and detections
    starting at or after it are dropped.

    Args:
        probs: phrase_id -> [T] probabilities.
        durations: phrase_id -> seconds.
    """
    rows = []
    for phrase, phrase_probs in probs.items():
        duration = float(durations[phrase]) if clip_to_duration else math.inf
        for start, end in grounding_regions(phrase_probs, threshold, median_size, max_gap):
            onset, offset = start * hop, min(end * hop, duration)
            if offset > onset:
                rows.append((phrase, onset, offset, GROUNDING_EVENT_LABEL))
    return pd.DataFrame(rows, columns=PSDSEval.detection_cols)


def grounding_psds(
    phrase_probs: Mapping[str, Any],
    ground_truth: Mapping[str, Sequence[Sequence[float]]],
    durations: Mapping[str, float],
    hop: float = FRAME_HOP_SECONDS,
    thresholds: Sequence[float] = tuple(GROUNDING_THRESHOLDS),
    clip_to_duration: bool = False,
) -> dict[str, float]:
    """AudioGrounding PSDS at dtc = gtc = 0.7, 0.5 and 0.1 (cttc 0, alpha_ct 0, alpha_st 0, max_efpr 800).

    Each phrase is a "file" of its own with the single event label "phrase". Phrases whose segments are
    all [0, 0] (or otherwise empty) have no ground truth to detect; they are left out of the evaluation
    entirely (ground truth, metadata and detections), because psds_eval would count every detection on
    them as a false positive although they are unannotated rather than silent. Their number is reported.

    Args:
        phrase_probs: phrase_id -> [T] probabilities (sigmoid of phrase-frame cosine), numpy or torch.
        ground_truth: phrase_id -> [(onset, offset), ...] in seconds; [0, 0] entries are ignored.
        durations: phrase_id -> duration of the phrase's audio in seconds.
        hop: seconds per frame.
        thresholds: decision thresholds, one operating point each (default: 0.01 + k / 50, k < 50).
        clip_to_duration: clip detections to the phrase's duration (`grounding_detections`); the reference
            does not.
    Returns:
        psds_0.7, psds_0.5, psds_0.1, num_phrases (evaluated), num_phrases_without_segments (dropped).
    """
    gt_table, metadata, probs, num_dropped = _grounding_tables(phrase_probs, ground_truth, durations)
    max_gap = math.ceil(GROUNDING_JOIN_SECONDS / hop)
    # A median filter of odd length commutes with thresholding (median > t exactly when most values are > t):
    # filtering each curve once gives the regions that binarising and then filtering give at every threshold.
    smoothed = {phrase: median_filter_time(curve, GROUNDING_MEDIAN_FRAMES) for phrase, curve in probs.items()}
    operating_points = _unique_tables(
        grounding_detections(smoothed, durations, threshold, hop, median_size=1, max_gap=max_gap,
                             clip_to_duration=clip_to_duration) for threshold in thresholds
    )
    results: dict[str, float] = {}
    for criterion in GROUNDING_DTC_GTC:
        results[f"psds_{criterion}"] = _single_label_psds(gt_table, metadata, operating_points, criterion)
    results["num_phrases"] = len(metadata)
    results["num_phrases_without_segments"] = num_dropped
    return results


class _PSDSEval(PSDSEval):
    """psds_eval's PSDSEval with two fixes that leave its definitions unchanged.

    - Single class: eFPR = FPR + alpha_ct * nanmean(cross-trigger rates); with one class there is no
      other class, the mean is NaN and 0 * NaN makes every eFPR NaN (PSDS 0). With alpha_ct == 0 the
      eFPR is the FPR by definition, so it is used directly.
    - NumPy 2: psds_eval 0.5.3 computes `int(np.argwhere(...))` on a [1, 1] array when max_efpr is not
      one of the curve's x values, which NumPy >= 2 rejects. Inserting max_efpr (with the staircase
      value just before it) ahead of the parent's computation gives what it computed on older NumPy.
    """

    def _effective_fp_rate(self, alpha_ct: float = 0.0) -> Any:
        rates = super()._effective_fp_rate(alpha_ct)
        if alpha_ct == 0:
            rates = rates._replace(effective_fp_rate=rates.fp_rate)
        return rates

    @staticmethod
    def _auc(x: np.ndarray, y: np.ndarray, max_x: float | None = None, decreasing_y: bool = False) -> float:
        if max_x is not None and x.size and max_x not in x:
            position = int(np.searchsorted(x, max_x))
            x = np.insert(x, position, max_x)
            y = np.insert(y, position, y[position - 1])
        return PSDSEval._auc(x, y, max_x, decreasing_y)


def _single_label_psds(gt_table: pd.DataFrame, metadata: pd.DataFrame,
                       operating_points: Sequence[pd.DataFrame], criterion: float) -> float:
    """psds_eval PSDS with dtc = gtc = criterion, cttc 0, alpha_ct 0, alpha_st 0, max_efpr 800."""
    with warnings.catch_warnings():
        # Expected noise with a single class (NaN cross-trigger means) and pandas 2 (fillna(method=)).
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="Degrees of freedom", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*fillna with 'method'", category=FutureWarning)
        warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
        evaluator = _PSDSEval(dtc_threshold=criterion, gtc_threshold=criterion, cttc_threshold=0.0,
                              ground_truth=gt_table, metadata=metadata)
        for detections in operating_points:
            evaluator.add_operating_point(detections)
        psds = evaluator.psds(alpha_ct=0.0, alpha_st=0.0, max_efpr=GROUNDING_MAX_EFPR)
    return float(psds.value)


def _unique_tables(tables: Iterable[pd.DataFrame]) -> list[pd.DataFrame]:
    """Drop repeated detection tables (psds_eval would skip them with a warning)."""
    seen: set[tuple] = set()
    unique = []
    for table in tables:
        key = tuple(table.itertuples(index=False, name=None))
        if key not in seen:
            seen.add(key)
            unique.append(table)
    return unique
