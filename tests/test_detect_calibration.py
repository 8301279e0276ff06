"""detect.py's calibration: the thresholds are sed_scores_eval best_fscore's, and F1 rises where the default is wrong."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import tools.detect.calibration as calibration
from models.windowing import FRAME_HOP_SECONDS
from tools.detect.calibration import LabelledSet, calibrate
from tools.detect.detector import detect_in_scores
from tools.detect.events import DecisionSettings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from sed_scores_eval import collar_based

CLASSES = ["dog bark", "siren"]
EVENT_LEVEL = {"dog bark": 0.30, "siren": 0.38}
"""Cosine of a frame inside an event: well below the default threshold (0.5 for cosine): a tiny or
little-trained model's scores, which the default threshold misses entirely."""
NUM_FRAMES = 32


def built_case() -> tuple[LabelledSet, dict[str, np.ndarray]]:
    """8 clips of 10 s; raw frame cosines per clip [32, 2]: background 0.08 to 0.14, events at their class's
    level (+- 0.02), and in two clips a weaker bump (0.22) of a class where it has no event (a false alarm
    a good threshold sits above). Events start and end on frame boundaries, 3 to 9 frames long."""
    rng = np.random.default_rng(0)
    clip_ids = [f"clip{index}" for index in range(8)]
    truth: dict[str, list[tuple[float, float, str]]] = {}
    raw: dict[str, np.ndarray] = {}
    for number, clip in enumerate(clip_ids):
        scores = rng.uniform(0.08, 0.14, size=(NUM_FRAMES, len(CLASSES)))
        events = []
        for column, label in enumerate(CLASSES):
            if (number + column) % 3 == 2:
                continue
            first = int(rng.integers(0, 20))
            length = int(rng.integers(3, 10))
            scores[first:first + length, column] = EVENT_LEVEL[label] + rng.uniform(-0.02, 0.02, size=length)
            events.append((first * FRAME_HOP_SECONDS, (first + length) * FRAME_HOP_SECONDS, label))
        if number in (2, 4):  # a false alarm of the class this clip has no event of
            column = 0 if number == 2 else 1
            assert not any(label == CLASSES[column] for *_, label in events)
            scores[24:28, column] = 0.22
        truth[clip] = sorted(events)
        raw[clip] = scores
    labelled = LabelledSet(Path("dev.tsv"), clip_ids, [Path(f"{clip}.wav") for clip in clip_ids], truth,
                           dict.fromkeys(clip_ids, 10.0), list(CLASSES))
    return labelled, raw


@pytest.fixture
def case(monkeypatch) -> tuple[LabelledSet, dict]:
    """The built case, with the detector's network replaced by the built frame cosines: the decisions
    (median filter, gap joining, curves) are the real detector's."""
    labelled, raw = built_case()

    def fake_detect_files(model, paths, labels, settings, thresholds, default, device, options):
        for path in paths:
            yield detect_in_scores(path.stem, path, 10.0, raw[path.stem], labels, settings,
                                   [default] * len(labels))

    monkeypatch.setattr(calibration, "detect_files", fake_detect_files)
    return labelled, raw


def test_calibrated_thresholds_are_best_fscore_and_f1_rises(case):
    labelled, raw = case
    settings = DecisionSettings()
    result = calibrate(None, labelled, settings)
    assert result["default_threshold"] == 0.5 and result["not_calibrated"] == []

    scores = {clip: detect_in_scores(clip, Path(clip), 10.0, raw[clip], CLASSES, settings, [0.5, 0.5]).score_frame()
              for clip in labelled.clip_ids}
    f_best, _, _, thresholds, _ = collar_based.best_fscore(scores, labelled.ground_truth, onset_collar=0.2,
                                                           offset_collar=0.2, offset_collar_rate=0.2)
    assert result["thresholds"] == {label: float(thresholds[label]) for label in CLASSES}
    # the best thresholds lie between the false alarms (0.22) and the event levels, far from the default
    for label in CLASSES:
        assert 0.22 <= result["thresholds"][label] < EVENT_LEVEL[label] - 0.02
    before, after = result["collar_f1"]["before"], result["collar_f1"]["after"]
    assert before["macro"] == 0.0
    assert after["macro"] > before["macro"] + 0.9
    for label in CLASSES:
        assert after["per_class"][label] == pytest.approx(float(f_best[label]))
        assert after["per_class"][label] > before["per_class"][label]
