"""Text-to-audio grounding metrics (AudioGrounding protocol), pure functions of frame probabilities.

PSDS as psds_eval defines it: every phrase is its own "file" with a single event label; 50 thresholds give 50
operating points of binarised, median-filtered, gap-joined detections; PSDS at the detection and ground-truth
criteria 0.7, 0.5 and 0.1. psds_eval prepares the ground truth and computes the PSD-ROC and its area; the
operating points' true and false positives are counted by tools.eval.psds_counts, as psds_eval counts them.
Frame grid as in sed_metrics.py (hop 10 / 32 s).
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
    from psds_eval.psds import WORLD

from models.windowing import FRAME_HOP_SECONDS
from tools.eval.psds_counts import Segments, count_detections
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


def _detections_at_thresholds(curves: Sequence[np.ndarray], durations: np.ndarray, thresholds: Sequence[float],
                               hop: float, max_gap: int, clip_to_duration: bool) -> list[Segments]:
    """`grounding_detections` (median_size=1) at many thresholds, all curves at once.

    The curves are laid end to end with a never-active frame between two, so a region never spans two
    curves; regions of one curve closer than `max_gap` frames are joined.

    Args:
        curves: per file, its [T_i] (already smoothed) probabilities.
        durations: [num_files] seconds (used with `clip_to_duration`).
    Returns:
        per threshold, the detections as Segments (file = index into `curves`).
    """
    flat = np.concatenate([np.append(np.asarray(curve, dtype=np.float64), -np.inf) for curve in curves])
    first_frame = np.concatenate(([0], np.cumsum([np.size(curve) + 1 for curve in curves])[:-1]))
    operating_points = []
    for threshold in thresholds:
        padded = np.concatenate(([False], flat > threshold, [False]))
        changes = np.flatnonzero(padded[1:] != padded[:-1])
        starts, ends = changes[0::2], changes[1::2]
        file = np.searchsorted(first_frame, starts, side="right") - 1
        opens_region = np.ones(starts.size, dtype=bool)
        opens_region[1:] = (starts[1:] - ends[:-1] > max_gap) | (file[1:] != file[:-1])
        first = np.flatnonzero(opens_region)
        last = np.append(first[1:], starts.size)[:first.size] - 1
        file, starts, ends = file[first], starts[first], ends[last]
        onset = (starts - first_frame[file]) * hop
        offset = (ends - first_frame[file]) * hop
        if clip_to_duration:
            offset = np.minimum(offset, durations[file])
            kept = offset > onset
            file, onset, offset = file[kept], onset[kept], offset[kept]
        operating_points.append(Segments(file, onset.astype(np.float64), offset.astype(np.float64)))
    return operating_points


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

    The detections of each threshold are those of `grounding_detections`; psds_eval prepares the ground
    truth and computes the PSD-ROC and its area, `tools.eval.psds_counts` counts true and false positives
    as psds_eval's `add_operating_point` does (tests/test_psds_counts.py compares the two).

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
    evaluator = _PSDSEval(ground_truth=gt_table, metadata=metadata)
    files = evaluator.metadata.filename.tolist()
    file_durations = evaluator.metadata.duration.to_numpy(dtype=np.float64)
    events = evaluator.single_label_events(files)
    # A median filter of odd length commutes with thresholding (median > t exactly when most values are > t):
    # filtering each curve once gives the regions that binarising and then filtering give at every threshold.
    smoothed = [median_filter_time(probs[file], GROUNDING_MEDIAN_FRAMES) for file in files]
    detections = _detections_at_thresholds(smoothed, file_durations, thresholds, hop,
                                           math.ceil(GROUNDING_JOIN_SECONDS / hop), clip_to_duration)
    unique = list({operating_point.key(): operating_point for operating_point in detections}.values())
    counts = [count_detections(operating_point, events, file_durations, GROUNDING_DTC_GTC)
              for operating_point in unique]
    results: dict[str, float] = {}
    for index, criterion in enumerate(GROUNDING_DTC_GTC):
        results[f"psds_{criterion}"] = evaluator.psds_of_counts([per_criterion[index] for per_criterion in counts],
                                                                GROUNDING_MAX_EFPR)
    results["num_phrases"] = len(metadata)
    results["num_phrases_without_segments"] = num_dropped
    return results


class _PSDSEval(PSDSEval):
    """psds_eval's PSDSEval with two fixes that leave its definitions unchanged, and two helpers that let
    counts made elsewhere (tools.eval.psds_counts) use its ground truth and PSD-ROC.

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

    def single_label_events(self, files: Sequence[str]) -> Segments:
        """The ground truth as psds_eval prepared it (zero-length events dropped, sorted), WORLD excluded.

        Args:
            files: file names; `Segments.file` indexes this list.
        """
        table = self.ground_truth[self.ground_truth.event_label != WORLD]
        labels = set(table.event_label)
        if len(labels) > 1:
            raise ValueError(f"expected ground truth with one event label, got {sorted(labels)}")
        index_of = {name: index for index, name in enumerate(files)}
        file = table.filename.map(index_of).to_numpy(dtype=np.int64)
        onset = table.onset.to_numpy(dtype=np.float64)
        offset = table.offset.to_numpy(dtype=np.float64)
        order = np.lexsort((onset, file))
        return Segments(file[order], onset[order], offset[order])

    def psds_of_counts(self, counts: Sequence[tuple[int, int]], max_efpr: float) -> float:
        """PSDS (alpha_ct = alpha_st = 0) of operating points given as (true positives, false positives).

        The rates are computed as `add_operating_point` computes them (true positives / events, false
        positives * seconds per unit / dataset duration); the PSD-ROC and its area are psds_eval's.
        """
        [label] = sorted(set(self.class_names) - {WORLD})
        num_events = self._get_dataset_counts()[label]
        _, dataset_duration = self._get_dataset_duration()
        rows = []
        for index, (true_positives, false_positives) in enumerate(counts):
            confusion = np.zeros((2, 2))                 # rows: detections of (label, WORLD); columns: truth
            confusion[0, 0], confusion[0, 1] = true_positives, false_positives
            rows.append({"id": f"op{index}", "counts": confusion,
                         "tpr": np.array([confusion[0, 0] / num_events]),
                         "fpr": np.array([confusion[0, 1] * self.nseconds / dataset_duration]),
                         "ctr": np.full((1, 1), np.nan)})
        self.operating_points = pd.DataFrame(rows, columns=["id", "counts", "tpr", "fpr", "ctr"])
        with warnings.catch_warnings():
            # Expected noise with a single class (NaN cross-trigger means) and pandas 2 (fillna(method=)).
            warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="Degrees of freedom", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message=".*fillna with 'method'", category=FutureWarning)
            warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
            return float(self.psds(alpha_ct=0.0, alpha_st=0.0, max_efpr=max_efpr).value)
