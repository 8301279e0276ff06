"""Sound event detection (SED) metrics, pure functions of frame scores (grounding: grounding_metrics.py).

Frame grid: the model emits 32 frames per 10 s clip, frame i covering [i * hop, (i + 1) * hop) s with
hop = 10 / 32 = 0.3125 s; longer audio gives more frames at the same hop.

SED (AudioSet-strong / DESED protocol) uses sed_scores_eval: PSDS1, PSDS2, collar-based and
segment-based best F1 (macro averages), computed on the clips that have at least one ground-truth
event only (clips without events are dropped from scores, ground truth and durations).

"""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

with warnings.catch_warnings():
    # sed_scores_eval imports sed_eval -> dcase_util, which imports the deprecated pkg_resources.
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from sed_scores_eval import collar_based, intersection_based, segment_based
    from sed_scores_eval.base_modules.scores import create_score_dataframe

from models.windowing import FRAME_HOP_SECONDS
from tools.eval.loader_defaults import explicit_or_auto, usable_cpus
from tools.eval.retrieval_metrics import to_numpy

Event = tuple[float, float, str]
Segment = tuple[float, float]

PSDS1_ARGS = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None,
              "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0}
PSDS2_ARGS = {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3,
              "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0}
COLLAR_ARGS = {"onset_collar": 0.2, "offset_collar": 0.2, "offset_collar_rate": 0.2, "time_decimals": 30}
"""Collar-based F1 as the reference calls sed_scores_eval: time_decimals=30 (the library's default is 6), so a
boundary 0.2 s away in decimals but 0.20000000000000018 s in floating point (e.g. a frame edge at 2.5 s, an
onset at 2.7 s) is outside the collar, as in the reference; with 6 decimals it would count as inside."""
SEGMENT_LENGTH = 1.0



# ----------------------------------------------------------------------------------------------------
# Frame grid and smoothing
# ----------------------------------------------------------------------------------------------------
def frame_timestamps(num_frames: int, hop: float = FRAME_HOP_SECONDS) -> np.ndarray:
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
    hop: float = FRAME_HOP_SECONDS,
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


SED_METRICS = ("psds1", "psds2", "collar_f1", "segment_f1")


def _one_sed_metric(name: str, scores: Mapping[str, pd.DataFrame], truth: Mapping[str, list[Event]],
                    durations: Mapping[str, float], num_jobs: int) -> float:
    """One of SED_METRICS with sed_scores_eval (macro average for the F1s)."""
    if name == "psds1":
        return float(intersection_based.psds(scores, truth, durations, num_jobs=num_jobs, **PSDS1_ARGS)[0])
    if name == "psds2":
        return float(intersection_based.psds(scores, truth, durations, num_jobs=num_jobs, **PSDS2_ARGS)[0])
    if name == "collar_f1":
        return float(collar_based.best_fscore(scores, truth, num_jobs=num_jobs, **COLLAR_ARGS)[0]["macro_average"])
    if name == "segment_f1":
        return float(segment_based.best_fscore(scores, truth, durations, segment_length=SEGMENT_LENGTH,
                                               num_jobs=num_jobs)[0]["macro_average"])
    raise ValueError(f"unknown SED metric {name!r}; expected one of {SED_METRICS}")


def _can_fork() -> bool:
    """Forked processes are used on Linux only (elsewhere fork is unavailable or unsafe)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def metric_processes(processes: int | str) -> int:
    """Processes computing the SED metrics side by side: `processes` itself, or for 'auto' one per metric up
    to the usable cores, on Linux (forked workers inherit the loaded modules); 1 elsewhere."""
    explicit = explicit_or_auto(processes, "processes", 1)
    if explicit is not None:
        return explicit
    return max(1, min(len(SED_METRICS), usable_cpus())) if _can_fork() else 1


def metric_jobs(num_jobs: int | str, processes: int) -> int:
    """sed_scores_eval's processes within each metric: `num_jobs` itself, or for 'auto' the usable cores shared
    among the `processes` metric processes (at least 1), on Linux; 1 elsewhere."""
    explicit = explicit_or_auto(num_jobs, "num_jobs", 1)
    if explicit is not None:
        return explicit
    return max(1, usable_cpus() // processes) if _can_fork() else 1


def _sed_metrics_side_by_side(scores: Mapping[str, pd.DataFrame], truth: Mapping[str, list[Event]],
                              durations: Mapping[str, float], num_jobs: int, processes: int) -> dict[str, float]:
    """SED_METRICS in `processes` forked processes; computed here instead if the processes fail (a warning)."""
    try:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {name: pool.submit(_one_sed_metric, name, scores, truth, durations, num_jobs)
                       for name in SED_METRICS}
            return {name: future.result() for name, future in futures.items()}
    except (BrokenProcessPool, OSError) as error:
        warnings.warn(f"computing the SED metrics in {processes} processes failed ({error!r}); computing them "
                      f"in this process", RuntimeWarning, stacklevel=3)
        return {name: _one_sed_metric(name, scores, truth, durations, num_jobs) for name in SED_METRICS}


def sed_metrics(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Sequence[Sequence[Any]]],
    durations: Mapping[str, float],
    num_jobs: int | str = "auto",
    processes: int | str = "auto",
) -> dict[str, float]:
    """PSDS1, PSDS2, collar-based and segment-based best F1 (macro) with sed_scores_eval.

    Only clips with at least one ground-truth event are scored: the others are removed from scores,
    ground truth and durations before evaluation (so extra clips in `scores` are ignored).
    Same-class overlapping ground-truth events are merged first.

    Args:
        scores: clip_id -> DataFrame from `sed_scores_from_frames`.
        ground_truth: clip_id -> [(onset, offset, label), ...].
        durations: clip_id -> seconds.
        num_jobs: processes sed_scores_eval uses within each metric ('auto': the usable cores shared among
            the metric processes, at least 1, on Linux; `metric_jobs`).
        processes: the four metrics are computed side by side in this many forked processes ('auto': one
            per metric up to the usable cores on Linux, `metric_processes`); 1 computes them in this
            process. The values are the same for any `processes` and `num_jobs`.
    Returns:
        psds1, psds2, collar_f1, segment_f1 (all in 0..1), num_clips (scored clips).
    """
    scores, truth, durations = _select_scored_clips(scores, ground_truth, durations)
    _check_labels(scores, truth)
    workers = metric_processes(processes)
    num_jobs = metric_jobs(num_jobs, workers)
    if workers > 1:
        results = _sed_metrics_side_by_side(scores, truth, durations, num_jobs, workers)
    else:
        results = {name: _one_sed_metric(name, scores, truth, durations, num_jobs) for name in SED_METRICS}
    return {**results, "num_clips": len(scores)}
