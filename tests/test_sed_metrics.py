"""SED and grounding metrics on synthetic ground truth: oracle scores score ~1, random scores low."""

import numpy as np
import pytest

from models.windowing import FRAME_HOP_SECONDS as FRAME_HOP
from tools.eval.grounding_metrics import (
    GROUNDING_THRESHOLDS,
    active_regions,
    grounding_detections,
    grounding_psds,
    grounding_regions,
    join_close_regions,
)
from tools.eval.sed_metrics import (
    frame_timestamps,
    median_filter_time,
    merge_same_class_events,
    sed_metrics,
    sed_scores_from_frames,
)

CLASSES = ["bell", "dog bark", "engine"]
# events on the 32-frame grid: (start_frame, end_frame, class index), each at least 3 frames long
GRID_EVENTS = {
    "clip_a": [(2, 6, 0), (12, 16, 1), (20, 26, 2)],
    "clip_b": [(0, 5, 1), (8, 12, 1), (24, 32, 0)],
    "clip_c": [(4, 9, 2), (4, 7, 0), (15, 19, 1)],
    "clip_d": [(10, 14, 0), (27, 31, 2)],
}


def ground_truth() -> dict[str, list[tuple[float, float, str]]]:
    truth = {clip: [(start * FRAME_HOP, end * FRAME_HOP, CLASSES[index]) for start, end, index in events]
             for clip, events in GRID_EVENTS.items()}
    truth["silent_clip"] = []
    return truth


def oracle_frames() -> dict[str, np.ndarray]:
    frames = {clip: np.zeros((32, len(CLASSES))) for clip in [*GRID_EVENTS, "silent_clip"]}
    for clip, events in GRID_EVENTS.items():
        for start, end, index in events:
            frames[clip][start:end, index] = 1.0
    return frames


def random_frames(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {clip: rng.random((32, len(CLASSES))) for clip in [*GRID_EVENTS, "silent_clip"]}


DURATIONS = {clip: 10.0 for clip in [*GRID_EVENTS, "silent_clip"]}


def test_frame_timestamps_grid():
    stamps = frame_timestamps(32)
    assert stamps.shape == (33,)
    assert stamps[1] == pytest.approx(0.3125) and stamps[-1] == pytest.approx(10.0)
    assert frame_timestamps(64)[-1] == pytest.approx(20.0)  # long audio: same hop


def test_median_filter_along_time_only_with_edges():
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    filtered = median_filter_time(scores, 3)
    np.testing.assert_array_equal(filtered[:, 0], [1, 1, 1, 1])  # first: median(1, 1, 0)
    np.testing.assert_array_equal(filtered[:, 1], [0, 0, 0, 0])
    np.testing.assert_array_equal(median_filter_time(np.array([True, False, True]), 3), [True, True, True])


def test_score_dataframes_columns_and_crop():
    frames = {"clip": np.arange(64, dtype=float).reshape(32, 2)}
    dataframes = sed_scores_from_frames(frames, ["a", "b"], median_size=1)
    assert list(dataframes["clip"].columns) == ["onset", "offset", "a", "b"]
    assert dataframes["clip"]["offset"].iloc[-1] == pytest.approx(10.0)
    cropped = sed_scores_from_frames(frames, ["a", "b"], durations={"clip": 4.0})["clip"]
    assert len(cropped) == 13 and cropped["offset"].iloc[-1] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="\\[T, 3\\]"):
        sed_scores_from_frames(frames, ["a", "b", "c"])


def test_merge_same_class_events():
    merged = merge_same_class_events([(3.0, 5.0, "a"), (1.0, 3.0, "a"), (2.0, 4.0, "b"), (6.0, 7.0, "a")])
    assert merged == [(1.0, 5.0, "a"), (2.0, 4.0, "b"), (6.0, 7.0, "a")]


def test_oracle_scores_are_perfect():
    scores = sed_scores_from_frames(oracle_frames(), CLASSES)
    metrics = sed_metrics(scores, ground_truth(), DURATIONS)
    assert metrics["psds1"] >= 0.9
    assert metrics["psds2"] >= 0.9
    assert metrics["collar_f1"] == pytest.approx(1.0)
    assert metrics["segment_f1"] >= 0.95
    assert metrics["num_clips"] == 4  # the clip without events is not scored


def test_random_scores_are_poor():
    oracle = sed_metrics(sed_scores_from_frames(oracle_frames(), CLASSES), ground_truth(), DURATIONS)
    metrics = sed_metrics(sed_scores_from_frames(random_frames(), CLASSES), ground_truth(), DURATIONS)
    assert metrics["psds1"] < 0.2
    assert metrics["collar_f1"] < 0.4
    assert metrics["segment_f1"] < oracle["segment_f1"] - 0.25


@pytest.mark.slow
def test_metrics_side_by_side_equal_one_process_and_fall_back_on_failure(monkeypatch):
    import tools.eval.sed_metrics as sed_metrics_module

    noisy = {clip: 0.3 * frames + 0.7 * random_frames()[clip] for clip, frames in oracle_frames().items()}
    scores = sed_scores_from_frames(noisy, CLASSES)
    here = sed_metrics(scores, ground_truth(), DURATIONS, processes=1)
    assert sed_metrics(scores, ground_truth(), DURATIONS, processes=2) == here
    assert sed_metrics(scores, ground_truth(), DURATIONS, processes=2, num_jobs=2) == here  # nested processes
    assert all(0 < here[key] < 1 for key in ("psds1", "psds2", "collar_f1", "segment_f1"))

    class BrokenPool:
        def __init__(self, *args, **kwargs):
            raise sed_metrics_module.BrokenProcessPool("no processes here")

    monkeypatch.setattr(sed_metrics_module, "ProcessPoolExecutor", BrokenPool)
    with pytest.warns(RuntimeWarning, match="computing them in this process"):
        assert sed_metrics(scores, ground_truth(), DURATIONS, processes=3) == here
    with pytest.raises(ValueError, match="processes must be an integer >= 1 or 'auto'"):
        sed_metrics(scores, ground_truth(), DURATIONS, processes=0)
    with pytest.raises(ValueError, match="num_jobs must be an integer >= 1 or 'auto'"):
        sed_metrics(scores, ground_truth(), DURATIONS, num_jobs=0)


def test_missing_scores_and_unknown_classes_are_errors():
    scores = sed_scores_from_frames(oracle_frames(), CLASSES)
    del scores["clip_a"]
    with pytest.raises(ValueError, match="lack scores"):
        sed_metrics(scores, ground_truth(), DURATIONS)
    extra = {clip: np.pad(frames, ((0, 0), (0, 1))) for clip, frames in oracle_frames().items()}
    with pytest.raises(ValueError, match="without any ground-truth event"):
        sed_metrics(sed_scores_from_frames(extra, [*CLASSES, "cat"]), ground_truth(), DURATIONS)


def test_region_helpers():
    active = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    np.testing.assert_array_equal(active_regions(active), [[1, 3], [5, 6], [9, 10]])
    joined = join_close_regions(active, max_gap=2)  # gap of 2 filled, gap of 3 kept, edges untouched
    np.testing.assert_array_equal(active_regions(joined), [[1, 6], [9, 10]])
    assert active_regions(np.zeros(5, dtype=bool)).shape == (0, 2)


def test_grounding_threshold_is_strict():
    probs = np.array([0.0, 0.5, 0.5, 0.5, 0.0, 0.0])
    assert grounding_regions(probs, 0.5).shape == (0, 2)
    np.testing.assert_array_equal(grounding_regions(probs, 0.49), [[1, 4]])
    assert GROUNDING_THRESHOLDS[0] == pytest.approx(0.01) and GROUNDING_THRESHOLDS[-1] == pytest.approx(0.99)


@pytest.mark.slow
def test_grounding_median_filter_once_equals_binarise_then_filter_at_every_threshold():
    """grounding_psds filters each curve once, then thresholds it: the regions of the reference's order
    (binarise, median filter, join gaps) at every threshold, ties at the threshold included."""
    rng = np.random.default_rng(0)
    probs = {f"p{index}": np.round(rng.random(int(rng.integers(1, 40))), 1) for index in range(200)}
    durations = dict.fromkeys(probs, 10.0)
    smoothed = {phrase: median_filter_time(curve, 3) for phrase, curve in probs.items()}
    for threshold in (*GROUNDING_THRESHOLDS, 0.3, 0.5, 0.7):
        expected = grounding_detections(probs, durations, threshold)
        once = grounding_detections(smoothed, durations, threshold, median_size=1)
        assert expected.equals(once), threshold


def test_grounding_detections_are_not_clipped_unless_asked():
    """The reference turns regions into seconds as they are; clipping to the duration is our switch."""
    probs = {"p": np.ones(32), "q": np.r_[np.zeros(30), np.ones(2)]}
    durations = {"p": 9.0, "q": 9.0}
    detections = grounding_detections(probs, durations, threshold=0.5)
    assert detections[["filename", "onset", "offset"]].values.tolist() == [["p", 0.0, 10.0], ["q", 9.375, 10.0]]
    clipped = grounding_detections(probs, durations, threshold=0.5, clip_to_duration=True)
    assert clipped[["filename", "onset", "offset"]].values.tolist() == [["p", 0.0, 9.0]]


def test_sed_scores_past_the_duration_count_as_false_positives():
    """Scores up to 10 s of a 5 s clip (the tiled tail) are accepted; detections there cost PSDS."""
    truth = {clip: [event for event in events if event[1] <= 5.0] for clip, events in ground_truth().items()}
    truth = {clip: events for clip, events in truth.items() if events}
    frames = {clip: scores for clip, scores in oracle_frames().items() if clip in truth}
    for clip in truth:
        frames[clip][16:] = 0.0
        frames[clip][20:, :] = 1.0                                  # every class "detected" in the tail
    durations = {clip: 5.0 for clip in truth}
    whole = sed_metrics(sed_scores_from_frames(frames, CLASSES), truth, durations)
    cropped = sed_metrics(sed_scores_from_frames(frames, CLASSES, durations=durations), truth, durations)
    assert cropped["psds1"] > whole["psds1"]


def grounding_case(seed: int = 0) -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(seed)
    truth, oracle, durations = {}, {}, {}
    for index in range(16):
        start = int(rng.integers(0, 24))
        length = int(rng.integers(3, 8))
        probs = np.zeros(32)
        probs[start:start + length] = 1.0
        phrase = f"cap{index}_2"
        truth[phrase] = [[start * FRAME_HOP, (start + length) * FRAME_HOP], [0, 0]]
        oracle[phrase] = probs
        durations[phrase] = 10.0
    truth["unannotated_1"] = [[0, 0]]
    durations["unannotated_1"] = 10.0
    return truth, oracle, durations


def test_grounding_oracle_close_to_one():
    truth, oracle, durations = grounding_case()
    metrics = grounding_psds(oracle, truth, durations)
    assert metrics["psds_0.5"] >= 0.9
    assert metrics["psds_0.7"] >= 0.9
    assert metrics["num_phrases"] == 16
    assert metrics["num_phrases_without_segments"] == 1


def test_grounding_random_is_low():
    truth, _, durations = grounding_case()
    rng = np.random.default_rng(1)
    metrics = grounding_psds({phrase: rng.random(32) for phrase in truth}, truth, durations)
    assert metrics["psds_0.5"] < 0.3
    assert metrics["psds_0.7"] < 0.3


def test_psds_eval_area_under_staircase_up_to_max_efpr():
    from tools.eval.grounding_metrics import _PSDSEval

    area = _PSDSEval._auc(np.array([0.0, 100.0, 1000.0]), np.array([0.5, 0.8, 1.0]), max_x=800.0)
    assert area == pytest.approx(100 * 0.5 + 700 * 0.8)


def test_collar_f1_uses_the_references_time_decimals():
    """The reference calls collar_based.best_fscore with time_decimals=30: an onset 0.2 s from the detection's
    in decimals (2.7 vs the frame edge 2.5) is 0.20000000000000018 s away in floating point, outside the
    0.2 s collar; with the library's default of 6 decimals it would be a hit."""
    from sed_scores_eval import collar_based

    frames = np.linspace(0.0, 0.1, 32)[:, None].repeat(2, axis=1)
    frames[8:16, 0] = 1.0                                   # bell detected on [2.5, 5.0] at thresholds in (0.1, 1]
    frames[24:28, 1] = 1.0                                  # dog detected on [7.5, 8.75], exactly its event
    scores = sed_scores_from_frames({"clip": frames}, ["bell", "dog"], median_size=1)
    truth = {"clip": [(2.7, 5.0, "bell"), (7.5, 8.75, "dog")]}

    def reference_collar_f1(time_decimals: int) -> float:
        f_best = collar_based.best_fscore(scores, truth, onset_collar=0.2, offset_collar=0.2,
                                          offset_collar_rate=0.2, time_decimals=time_decimals)[0]
        return f_best["macro_average"]

    assert reference_collar_f1(6) == 1.0 and reference_collar_f1(30) == 0.5
    result = sed_metrics(scores, truth, {"clip": 10.0}, processes=1, num_jobs=1)
    assert result["collar_f1"] == reference_collar_f1(30)
