"""Sound event detection (SED) and text-to-audio grounding metrics, pure functions of frame scores.

Frame grid: the model emits 32 frames per 10 s clip, frame i covering [i * hop, (i + 1) * hop) s with
hop = 10 / 32 = 0.3125 s; longer audio gives more frames at the same hop.

SED (AudioSet-strong / DESED protocol) uses sed_scores_eval: PSDS1, PSDS2, collar-based and
segment-based best F1 (macro averages), computed on the clips that have at least one ground-truth
event only (clips without events are dropped from scores, ground truth and durations).

Grounding (AudioGrounding protocol) uses psds_eval: every phrase is its own "file" with a single event
label; 50 thresholds give 50 operating points of binarised, median-filtered, gap-joined detections.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

with warnings.catch_warnings():
    # sed_scores_eval imports sed_eval -> dcase_util, which imports the deprecated pkg_resources.
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from psds_eval import PSDSEval
    from sed_scores_eval import collar_based, intersection_based, segment_based
    from sed_scores_eval.base_modules.scores import create_score_dataframe

from tools.eval.retrieval_metrics import to_numpy

FRAME_HOP = 10 / 32
"""Seconds per model frame (32 frames per 10 s)."""

Event = tuple[float, float, str]
Segment = tuple[float, float]

PSDS1_ARGS = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None,
              "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS2_ARGS = {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3,
              "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0}
COLLAR_ARGS = {"onset_collar": 0.2, "offset_collar": 0.2, "offset_collar_rate": 0.2}
SEGMENT_LENGTH = 1.0

GROUNDING_THRESHOLDS = 0.01 + np.arange(50) / 50
"""The 50 decision thresholds of the grounding protocol: 0.01, 0.03, ..., 0.99."""
GROUNDING_JOIN_SECONDS = 0.5
GROUNDING_DTC_GTC = (0.7, 0.5, 0.1)
GROUNDING_MAX_EFPR = 800.0
GROUNDING_EVENT_LABEL = "phrase"


# ----------------------------------------------------------------------------------------------------
# Frame grid and smoothing
# ----------------------------------------------------------------------------------------------------
def frame_timestamps(num_frames: int, hop: float = FRAME_HOP) -> np.ndarray:
    """Frame boundaries in seconds: [num_frames + 1], boundary i = i * hop."""
    return np.arange(num_frames + 1, dtype=np.float64) * hop


def median_filter_time(scores: np.ndarray, size: int = 3) -> np.ndarray:
    """Median filter along time (axis 0) only, each class independently.

    Edges use mode="nearest" (the edge frame is repeated), which for size 3 is identical to scipy's
    default "reflect": the first output is median(s0, s0, s1). size <= 1 returns a copy.

    Args:
        scores: [T, C] or [T].
    Returns:
        filtered scores, same shape and dtype (bool input is returned as bool).
    """
    scores = np.asarray(scores)
    if size <= 1:
        return scores.copy()
    if scores.ndim not in (1, 2):
        raise ValueError(f"scores must be [T] or [T, C], got shape {scores.shape}")
    footprint = (size,) if scores.ndim == 1 else (size, 1)
    work = scores.astype(np.uint8) if scores.dtype == bool else scores
    filtered = median_filter(work, size=footprint, mode="nearest")
    return filtered.astype(bool) if scores.dtype == bool else filtered


# ----------------------------------------------------------------------------------------------------
# Sound event detection
# ----------------------------------------------------------------------------------------------------
def _crop_to_duration(scores: np.ndarray, timestamps: np.ndarray, duration: float) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """Drop frames starting at or after `duration` and end the last frame at `duration`."""
    num_kept = max(1, int(np.sum(timestamps[:-1] < duration)))
    timestamps = timestamps[: num_kept + 1].copy()
    timestamps[-1] = min(timestamps[-1], duration)
    return scores[:num_kept], timestamps


def sed_scores_from_frames(
    frame_scores: Mapping[str, Any],
    class_names: Sequence[str],
    hop: float = FRAME_HOP,
    median_size: int = 3,
    durations: Mapping[str, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """Turn per-clip frame scores into sed_scores_eval score DataFrames.

    Args:
        frame_scores: clip_id -> [T, C] scores (numpy or torch), C = len(class_names). clip_id is the
            audio file name without its extension, as sed_scores_eval's readers name clips.
        class_names: C event class names, the DataFrame columns.
        hop: seconds per frame.
        median_size: median filter length in frames along time (1 disables it).
        durations: optional clip_id -> seconds; when given, frames starting at or after the clip's
            duration (e.g. from audio tiled up to 10 s) are dropped and the last frame ends at it.
    Returns:
        clip_id -> DataFrame with columns onset, offset, *class_names (one row per frame).
    """
    class_names = list(class_names)
    dataframes = {}
    for clip_id, clip_scores in frame_scores.items():
        clip_scores = to_numpy(clip_scores).astype(np.float64, copy=False)
        if clip_scores.ndim != 2 or clip_scores.shape[1] != len(class_names):
            raise ValueError(f"scores of clip {clip_id!r} must be [T, {len(class_names)}] "
                             f"(frames x classes), got shape {clip_scores.shape}")
        smoothed = median_filter_time(clip_scores, median_size)
        timestamps = frame_timestamps(len(smoothed), hop)
        if durations is not None:
            if clip_id not in durations:
                raise ValueError(f"no duration for clip {clip_id!r}; durations must cover every scored clip")
            smoothed, timestamps = _crop_to_duration(smoothed, timestamps, float(durations[clip_id]))
        dataframes[clip_id] = create_score_dataframe(smoothed, timestamps, class_names)
    return dataframes


def merge_same_class_events(events: Iterable[Sequence[Any]]) -> list[Event]:
    """Sort events and merge overlapping or touching events of the same class.

    sed_scores_eval (and psds_eval) reject same-class events that overlap or touch; AudioSet-strong
    annotations, and label maps that merge two raw labels into one class, can produce them.

    Args:
        events: (onset, offset, label) tuples.
    Returns:
        sorted (onset, offset, label) tuples with no same-class overlaps.
    """
    merged: dict[str, list[list[float]]] = {}
    for onset, offset, label in sorted((float(on), float(off), str(lab)) for on, off, lab in events):
        class_events = merged.setdefault(label, [])
        if class_events and onset <= class_events[-1][1]:
            class_events[-1][1] = max(class_events[-1][1], offset)
        else:
            class_events.append([onset, offset])
    return sorted((on, off, label) for label, spans in merged.items() for on, off in spans)


def _select_scored_clips(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Sequence[Sequence[Any]]],
    durations: Mapping[str, float],
) -> tuple[dict[str, pd.DataFrame], dict[str, list[Event]], dict[str, float]]:
    """Keep the clips with at least one ground-truth event; check scores and durations cover them."""
    truth = {clip: merge_same_class_events(events) for clip, events in ground_truth.items() if len(events)}
    if not truth:
        raise ValueError("ground_truth has no clip with an event; nothing to score")
    missing_scores = sorted(set(truth) - set(scores))
    missing_durations = sorted(set(truth) - set(durations))
    if missing_scores or missing_durations:
        raise ValueError(
            f"clips with ground-truth events lack scores ({len(missing_scores)}, e.g. {missing_scores[:5]}) "
            f"or durations ({len(missing_durations)}, e.g. {missing_durations[:5]}); clip ids must be file "
            f"names without extension in all three"
        )
    clip_ids = sorted(truth)
    return ({clip: scores[clip] for clip in clip_ids}, truth,
            {clip: float(durations[clip]) for clip in clip_ids})


def _check_labels(scores: Mapping[str, pd.DataFrame], ground_truth: Mapping[str, list[Event]]) -> None:
    """Score columns and ground-truth labels must be the same set of classes.

    sed_scores_eval needs at least one ground-truth event per scored class (classes = the sorted event
    labels of the ground truth, as the protocol defines them).
    """
    columns = set(next(iter(scores.values())).columns) - {"onset", "offset"}
    labels = {label for events in ground_truth.values() for *_, label in events}
    if labels - columns:
        raise ValueError(f"ground-truth labels without a score column: {sorted(labels - columns)[:10]}; "
                         f"score columns are {sorted(columns)[:10]}...")
    if columns - labels:
        raise ValueError(f"score columns without any ground-truth event in the scored clips: "
                         f"{sorted(columns - labels)[:10]}; build class_names from the ground-truth labels")


def sed_metrics(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Sequence[Sequence[Any]]],
    durations: Mapping[str, float],
    num_jobs: int = 1,
) -> dict[str, float]:
    """PSDS1, PSDS2, collar-based and segment-based best F1 (macro) with sed_scores_eval.

    Only clips with at least one ground-truth event are scored: the others are removed from scores,
    ground truth and durations before evaluation (so extra clips in `scores` are ignored).
    Same-class overlapping ground-truth events are merged first.

    Args:
        scores: clip_id -> DataFrame from `sed_scores_from_frames`.
        ground_truth: clip_id -> [(onset, offset, label), ...].
        durations: clip_id -> seconds.
        num_jobs: processes used by sed_scores_eval.
    Returns:
        psds1, psds2, collar_f1, segment_f1 (all in 0..1), num_clips (scored clips).
    """
    scores, truth, durations = _select_scored_clips(scores, ground_truth, durations)
    _check_labels(scores, truth)
    psds1 = intersection_based.psds(scores, truth, durations, num_jobs=num_jobs, **PSDS1_ARGS)[0]
    psds2 = intersection_based.psds(scores, truth, durations, num_jobs=num_jobs, **PSDS2_ARGS)[0]
    collar_f1 = collar_based.best_fscore(scores, truth, num_jobs=num_jobs, **COLLAR_ARGS)[0]
    segment_f1 = segment_based.best_fscore(scores, truth, durations, segment_length=SEGMENT_LENGTH,
                                           num_jobs=num_jobs)[0]
    return {
        "psds1": float(psds1),
        "psds2": float(psds2),
        "collar_f1": float(collar_f1["macro_average"]),
        "segment_f1": float(segment_f1["macro_average"]),
        "num_clips": len(scores),
    }


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
    hop: float = FRAME_HOP,
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
    hop: float = FRAME_HOP,
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
    operating_points = _unique_tables(
        grounding_detections(probs, durations, threshold, hop, max_gap=max_gap,
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
