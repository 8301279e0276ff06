"""tools.eval.psds_counts and the grounding PSDS built on it, against psds_eval itself (exact equality)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from benchmarks.metrics import main as metrics_benchmark
from benchmarks.metrics import psds_eval_grounding_psds
from models.windowing import FRAME_HOP_SECONDS
from tools.eval.grounding_metrics import (
    GROUNDING_DTC_GTC,
    GROUNDING_JOIN_SECONDS,
    GROUNDING_THRESHOLDS,
    _detections_at_thresholds,
    _PSDSEval,
    grounding_detections,
    grounding_psds,
)
from tools.eval.psds_counts import Segments, count_detections, kahan_group_sums
from tools.eval.sed_metrics import median_filter_time

LABEL = "phrase"
MAX_GAP = int(np.ceil(GROUNDING_JOIN_SECONDS / FRAME_HOP_SECONDS))


def quiet_psds_eval(**kwargs) -> _PSDSEval:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _PSDSEval(**kwargs)


def psds_eval_counts(detections: pd.DataFrame, truth: pd.DataFrame, metadata: pd.DataFrame,
                     criterion: float) -> tuple[int, int]:
    """(true positives, false positives) as psds_eval's add_operating_point counts them."""
    evaluator = quiet_psds_eval(dtc_threshold=criterion, gtc_threshold=criterion, cttc_threshold=0.0,
                                ground_truth=truth, metadata=metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts, *_ = evaluator._evaluate_detections(evaluator._init_det_table(detections))
    return int(counts[0, 0]), int(counts[0, -1])


def segments_of(table: pd.DataFrame, files: list[str]) -> Segments:
    index_of = {name: index for index, name in enumerate(files)}
    table = table.assign(file=table.filename.map(index_of)).sort_values(["file", "onset"])
    return Segments(table.file.to_numpy(np.int64), table.onset.to_numpy(np.float64),
                    table.offset.to_numpy(np.float64))


def random_case(rng: np.random.Generator, num_files: int = 12) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Ground truth (on and off the frame grid), detections on the frame grid (some past the duration)."""
    files = [f"f{index:02d}" for index in range(num_files)]
    durations = rng.choice([3.0, 7.5, 10.0, 10.0], size=num_files)
    truth_rows, detection_rows = [], []
    for file in files:
        cursor = 0.0
        for _ in range(int(rng.integers(1, 4))):
            onset = cursor + (rng.integers(0, 8) * FRAME_HOP_SECONDS if rng.random() < 0.5
                              else round(float(rng.uniform(0, 2.5)), 3))
            offset = onset + (rng.integers(1, 10) * FRAME_HOP_SECONDS if rng.random() < 0.5
                              else round(float(rng.uniform(0.05, 3.0)), 3))
            if onset >= 10.0:
                break
            truth_rows.append((file, onset, min(offset, 10.0), LABEL))
            cursor = min(offset, 10.0) + float(rng.choice([0.0, 0.2, 1.0]))   # touching events allowed
        frame = 0
        while frame < 32:
            frame += int(rng.integers(0, 6))
            length = int(rng.integers(1, 8))
            if frame >= 32:
                break
            detection_rows.append((file, frame * FRAME_HOP_SECONDS, min(frame + length, 32) * FRAME_HOP_SECONDS,
                                   LABEL))
            frame += length + 1
    truth = pd.DataFrame(truth_rows, columns=_PSDSEval.detection_cols)
    detections = pd.DataFrame(detection_rows, columns=_PSDSEval.detection_cols)
    metadata = pd.DataFrame({"filename": files, "duration": durations})
    return truth, detections, metadata


def test_kahan_group_sums_equal_pandas_groupby_sum():
    rng = np.random.default_rng(0)
    for _ in range(50):
        size = int(rng.integers(1, 60))
        values = rng.choice([1e16, -1e16, 1.0, 0.1, 0.7, 1e-3, 3.3333], size=size) * rng.choice([1, -1], size=size)
        groups = rng.integers(0, 5, size=size)
        expected = pd.Series(values).groupby(groups).sum()
        sums = kahan_group_sums(values, groups, 5)
        for group, value in expected.items():
            assert sums[group] == value, (group, sums[group], value)
        assert np.all(sums[np.setdiff1d(np.arange(5), groups)] == 0)


def test_kahan_group_sums_of_infinite_values_equal_pandas_groupby_sum():
    values, groups = np.array([np.inf, 1.0, 2.0, -np.inf, 3.0]), np.array([0, 0, 1, 2, 2])
    expected = pd.Series(values).groupby(groups).sum().to_numpy()
    with np.errstate(invalid="ignore"):                                       # inf - inf in the compensation
        assert np.array_equal(kahan_group_sums(values, groups, 3), expected)  # [inf, 2, -inf]: no NaN


@pytest.mark.slow
def test_counts_equal_psds_eval_on_random_cases():
    rng = np.random.default_rng(1)
    compared = 0
    for _ in range(40):
        truth, detections, metadata = random_case(rng)
        files = sorted(metadata.filename)
        events = quiet_psds_eval(ground_truth=truth, metadata=metadata).single_label_events(files)
        durations = metadata.set_index("filename").duration[files].to_numpy()
        counts = count_detections(segments_of(detections, files), events, durations, (*GROUNDING_DTC_GTC, 0.3))
        for criterion, (true_positives, false_positives) in zip((*GROUNDING_DTC_GTC, 0.3), counts, strict=True):
            assert (true_positives, false_positives) == psds_eval_counts(detections, truth, metadata, criterion)
            compared += true_positives + false_positives
    assert compared > 500  # the cases exercise both counts, not just empty ones


def test_counts_at_exact_ties_and_without_detections():
    """A detection covering exactly 70 % of its length with an event, and one event covered exactly 50 %."""
    hop = FRAME_HOP_SECONDS
    truth = pd.DataFrame([("a", 3 * hop, 10 * hop, LABEL), ("b", 0.0, 4 * hop, LABEL)], columns=_PSDSEval.detection_cols)
    detections = pd.DataFrame([("a", 0.0, 10 * hop, LABEL), ("b", 2 * hop, 6 * hop, LABEL)],
                              columns=_PSDSEval.detection_cols)
    metadata = pd.DataFrame({"filename": ["a", "b"], "duration": [10.0, 10.0]})
    events = quiet_psds_eval(ground_truth=truth, metadata=metadata).single_label_events(["a", "b"])
    criteria = (0.7, 0.5, 0.1, 0.71)
    counts = count_detections(segments_of(detections, ["a", "b"]), events, np.array([10.0, 10.0]), criteria)
    assert counts == [psds_eval_counts(detections, truth, metadata, criterion) for criterion in criteria]
    assert counts[0] == (1, 1) and counts[3] == (0, 2)
    empty = Segments(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    assert count_detections(empty, events, np.array([10.0, 10.0]), criteria) == [(0, 0)] * 4


def random_curves(rng: np.random.Generator, num_phrases: int) -> tuple[dict, dict, dict]:
    probs, truth, durations = {}, {}, {}
    for index in range(num_phrases):
        phrase = f"p{index:03d}"
        frames = int(rng.choice([32, 32, 64]))                  # 64: a long clip embedded in two windows
        curve = rng.random(frames)
        if rng.random() < 0.5:
            curve = np.round(curve, 1)                          # values on the thresholds' grid: ties
        probs[phrase] = curve
        onset = float(rng.uniform(0, 8))
        truth[phrase] = [[onset, onset + float(rng.uniform(0.2, 4))], [0, 0]]
        durations[phrase] = float(rng.choice([4.0, 10.0, frames * FRAME_HOP_SECONDS]))
    truth["unannotated"] = [[0, 0]]
    probs["unannotated"], durations["unannotated"] = rng.random(32), 10.0
    return probs, truth, durations


@pytest.mark.slow
@pytest.mark.parametrize("clip_to_duration", [False, True])
def test_grounding_psds_equals_psds_eval_end_to_end(clip_to_duration):
    probs, truth, durations = random_curves(np.random.default_rng(2 + clip_to_duration), 40)
    fast = grounding_psds(probs, truth, durations, clip_to_duration=clip_to_duration)
    slow = psds_eval_grounding_psds(probs, truth, durations, clip_to_duration)
    assert {key: fast[key] for key in slow} == slow
    assert 0 < fast["psds_0.1"] <= 1 and fast["num_phrases_without_segments"] == 1


def test_detections_at_thresholds_equal_grounding_detections():
    rng = np.random.default_rng(3)
    probs, _, durations = random_curves(rng, 40)
    files = sorted(probs)
    curves = [median_filter_time(probs[file], 3) for file in files]
    thresholds = (*GROUNDING_THRESHOLDS, 0.3, 0.5)
    for clip in (False, True):
        fast = _detections_at_thresholds(curves, np.array([durations[file] for file in files]), thresholds,
                                         FRAME_HOP_SECONDS, MAX_GAP, clip)
        for threshold, segments in zip(thresholds, fast, strict=True):
            table = grounding_detections(dict(zip(files, curves, strict=True)), durations, threshold,
                                         median_size=1, max_gap=MAX_GAP, clip_to_duration=clip)
            expected = segments_of(table, files)
            assert segments.key() == expected.key(), threshold


@pytest.mark.slow
def test_metrics_benchmark_tiny(tmp_path):
    report = metrics_benchmark(["--phrases", "12", "--clips", "8", "--classes", "3", "--repeats", "1",
                                "--out", str(tmp_path / "metrics.json")])
    assert [result["equal"] for result in report["results"]] == [True, True]
    assert set(report["sed_each_metric_s"]) == {"psds1", "psds2", "collar_f1", "segment_f1"}
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.slow
def test_single_label_psds_what_psds_eval_returns_and_what_we_return():
    """The grounding protocol has a single event label. psds_eval 0.5.3 called as the reference calls it
    (PSDSEval(cttc_threshold=0), an operating point per threshold, psds(alpha_ct=0, alpha_st=0,
    max_efpr=800)) returns 0.0 whatever the detections: its eFPR adds alpha_ct * nanmean(cross-trigger
    rates), NaN with no other class, and 0 * NaN makes the whole PSD-ROC NaN. We return the PSDS of its own
    definition with alpha_ct = 0 (eFPR = FPR). Only psds_eval's NumPy-2 incompatibility is patched here
    (on NumPy 2 its `_auc` raises TypeError before anything is computed; on NumPy 1 it computed the same)."""
    from psds_eval import PSDSEval

    from tools.eval.grounding_metrics import GROUNDING_MAX_EFPR, _grounding_tables

    class PsdsEvalAsOnNumpy1(PSDSEval):
        _auc = staticmethod(_PSDSEval._auc)

    rng = np.random.default_rng(0)
    probs, truth, durations = {}, {}, {}
    for index in range(10):
        onset = float(rng.uniform(0, 6))
        offset = onset + float(rng.uniform(1, 3))
        curve = 0.6 * rng.random(32)
        curve[int(onset / FRAME_HOP_SECONDS):int(offset / FRAME_HOP_SECONDS)] += 0.4
        probs[f"p{index}"], truth[f"p{index}"], durations[f"p{index}"] = curve, [[onset, offset]], 10.0
    ours = grounding_psds(probs, truth, durations)
    gt_table, metadata, curves, _ = _grounding_tables(probs, truth, durations)
    tables = [grounding_detections(curves, durations, threshold, median_size=3, max_gap=MAX_GAP)
              for threshold in GROUNDING_THRESHOLDS]
    for criterion in GROUNDING_DTC_GTC:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = PsdsEvalAsOnNumpy1(ground_truth=gt_table, metadata=metadata, dtc_threshold=criterion,
                                           gtc_threshold=criterion, cttc_threshold=0.0)
            for index, table in enumerate(tables):
                evaluator.add_operating_point(table, info={"name": f"Op {index + 1:02d}"})
            as_the_reference = evaluator.psds(alpha_ct=0, alpha_st=0, max_efpr=GROUNDING_MAX_EFPR).value
        assert as_the_reference == 0.0
        assert 0.2 < ours[f"psds_{criterion}"] <= 1.0


def test_counts_in_a_file_shorter_than_a_second_and_with_touching_segments():
    """A false positive in a 0.5 s file counts; a detection that only touches an event does not intersect it,
    even at criterion 0 (psds_eval's strict overlap)."""
    truth = pd.DataFrame([("b", 1.0, 2.0, LABEL)], columns=_PSDSEval.detection_cols)
    detections = pd.DataFrame([("a", 0.1, 0.3, LABEL), ("b", 0.5, 1.0, LABEL), ("b", 2.0, 2.5, LABEL)],
                              columns=_PSDSEval.detection_cols)
    metadata = pd.DataFrame({"filename": ["a", "b"], "duration": [0.5, 10.0]})
    events = quiet_psds_eval(ground_truth=truth, metadata=metadata).single_label_events(["a", "b"])
    criteria = (0.0, 0.5)
    counts = count_detections(segments_of(detections, ["a", "b"]), events, np.array([0.5, 10.0]), criteria)
    assert counts == [psds_eval_counts(detections, truth, metadata, criterion) for criterion in criteria]
    assert counts == [(0, 3), (0, 3)]


@pytest.mark.parametrize("shapes", [((2,), (2,), (3,)), ((2, 1), (2, 1), (2, 1))])
def test_segments_of_mismatched_or_2d_arrays_are_refused(shapes):
    file_shape, onset_shape, offset_shape = shapes
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        Segments(np.zeros(file_shape, np.int64), np.zeros(onset_shape), np.ones(offset_shape))
