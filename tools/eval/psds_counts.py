"""psds_eval's true-positive and false-positive counts for a ground truth with one event label, in NumPy.

psds_eval (0.5.3) counts each operating point with several pandas merges and group-bys; for the grounding
protocol (50 operating points, three criteria, one label) that is most of the metric's time. This module
counts the same things from arrays, every criterion from one intersection pass, with the same floats:

- a detection and a ground-truth event of the same file intersect when each starts before the other ends;
- a detection passes the detection tolerance criterion (DTC) when the sum, over the events it intersects,
  of intersection / detection length is >= dtc;
- an event is a true positive when the sum, over the DTC-passing detections intersecting it, of
  intersection / event length is >= gtc;
- a false positive is a detection that fails the DTC and intersects its file's [0, duration].

Sums are compensated (Kahan) in the order pandas' groupby sums them, onset order within a file, so the
comparisons with the criteria see the floats psds_eval sees. tests/test_psds_counts.py checks the counts,
and the PSDS built from them, against psds_eval itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segments:
    """Segments of many files, sorted by (file, onset), not overlapping within a file.

    file: [N] int, index of the segment's file; onset, offset: [N] float64 seconds, offset > onset.
    """

    file: np.ndarray
    onset: np.ndarray
    offset: np.ndarray

    def __post_init__(self) -> None:
        sizes = {np.shape(self.file), np.shape(self.onset), np.shape(self.offset)}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"file, onset and offset must be 1-D arrays of one length, got shapes {sizes}")

    def __len__(self) -> int:
        return int(np.shape(self.file)[0])

    def key(self) -> bytes:
        """Bytes identifying the segments (equal segments, equal key)."""
        return b"|".join(np.ascontiguousarray(array).tobytes() for array in (self.file, self.onset, self.offset))


def kahan_group_sums(values: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Sum `values` per group, in their order of appearance, compensated as pandas' groupby().sum() does.

    Args:
        values: [N] float64.
        groups: [N] int in [0, num_groups).
    Returns:
        [num_groups] float64, 0 for groups without values.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    total = np.zeros(num_groups)
    compensation = np.zeros(num_groups)
    if not values.size:
        return total
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    rank = np.arange(order.size) - np.searchsorted(sorted_groups, sorted_groups, side="left")
    for position in range(int(rank.max()) + 1):
        picked = order[rank == position]          # at most one value per group, in order of appearance
        group = groups[picked]
        corrected = values[picked] - compensation[group]
        new_total = total[group] + corrected
        new_compensation = (new_total - total[group]) - corrected
        compensation[group] = np.where(np.isfinite(new_compensation), new_compensation, 0.0)
        total[group] = new_total
    return total


@dataclass(frozen=True)
class _Intersections:
    """Intersecting (detection, event) pairs in psds_eval's row order (detection-major, onset order)."""

    detection: np.ndarray        # [P] index into the detections
    event: np.ndarray            # [P] index into the events
    length: np.ndarray           # [P] seconds of overlap


def _intersections(detections: Segments, events: Segments) -> _Intersections:
    """Every same-file (detection, event) pair that overlaps (strictly: touching is not overlapping)."""
    first_event = np.searchsorted(events.file, detections.file, side="left")
    events_in_file = np.searchsorted(events.file, detections.file, side="right") - first_event
    detection = np.repeat(np.arange(len(detections)), events_in_file)
    pair_start = np.repeat(np.cumsum(events_in_file) - events_in_file, events_in_file)
    event = np.repeat(first_event, events_in_file) + (np.arange(detection.size) - pair_start)
    overlapping = ((detections.onset[detection] < events.offset[event])
                   & (events.onset[event] < detections.offset[detection]))
    detection, event = detection[overlapping], event[overlapping]
    length = (np.minimum(detections.offset[detection], events.offset[event])
              - np.maximum(detections.onset[detection], events.onset[event]))
    return _Intersections(detection, event, length)


def count_detections(detections: Segments, events: Segments, durations: np.ndarray,
                     criteria: Sequence[float]) -> list[tuple[int, int]]:
    """True and false positives of one operating point at each criterion (dtc = gtc = criterion).

    Args:
        detections: the operating point's detections.
        events: the ground truth (one label).
        durations: [num_files] seconds, indexed by `Segments.file`.
        criteria: DTC = GTC values.
    Returns:
        [(true_positive_events, false_positive_detections)] per criterion.
    """
    durations = np.asarray(durations, dtype=np.float64)
    pairs = _intersections(detections, events)
    detection_length = detections.offset - detections.onset
    event_length = events.offset - events.onset
    precision_sum = kahan_group_sums(pairs.length / detection_length[pairs.detection], pairs.detection,
                                     len(detections))
    has_event = np.zeros(len(detections), dtype=bool)
    has_event[pairs.detection] = True
    file_duration = durations[detections.file]
    in_file = (file_duration > 0) & (detections.onset < file_duration) & (detections.offset > 0)
    coverage = pairs.length / event_length[pairs.event]
    counts = []
    for criterion in criteria:
        passes_dtc = has_event & (precision_sum >= criterion)
        false_positives = int(np.count_nonzero(in_file & ~passes_dtc))
        kept = passes_dtc[pairs.detection]
        coverage_sum = kahan_group_sums(coverage[kept], pairs.event[kept], len(events))
        covered = np.zeros(len(events), dtype=bool)
        covered[pairs.event[kept]] = True
        true_positives = int(np.count_nonzero(covered & (coverage_sum >= criterion)))
        counts.append((true_positives, false_positives))
    return counts
