"""tools.eval.psds_counts: cases where the compensated sums decide a count, against psds_eval itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.test_psds_counts import LABEL, psds_eval_counts, quiet_psds_eval, segments_of
from tools.eval.grounding_metrics import _PSDSEval
from tools.eval.psds_counts import count_detections

PIECES = [(0.48, 1.88), (2.02, 4.12), (4.9, 7.7), (9.22, 9.92)]
"""Four pieces of [0, 10] s: 14 %, 21 %, 28 % and 7 % of it, 70 % in all. Summed one after the other in
float64 the fractions give 0.6999999999999998 < 0.7; summed with compensation (pandas' groupby sum, which
psds_eval uses) they give 0.7, exactly the PSDS1-like criterion."""


def naive_sum(values) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


def case(kind: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """'dtc': one detection [0, 10] over four events (the pieces): its DTC sum is the pieces' 0.7.
    'gtc': one event [0, 10] under four detections (the pieces): its GTC sum is the pieces' 0.7."""
    whole = [("a", 0.0, 10.0, LABEL)]
    pieces = [("a", onset, offset, LABEL) for onset, offset in PIECES]
    truth, detections = (pieces, whole) if kind == "dtc" else (whole, pieces)
    metadata = pd.DataFrame({"filename": ["a"], "duration": [10.0]})
    return (pd.DataFrame(truth, columns=_PSDSEval.detection_cols),
            pd.DataFrame(detections, columns=_PSDSEval.detection_cols), metadata)


def test_the_pieces_sum_below_the_criterion_without_compensation():
    fractions = [(offset - onset) / 10.0 for onset, offset in PIECES]
    assert naive_sum(fractions) < 0.7 <= float(pd.Series(fractions).groupby(np.zeros(4, int)).sum().iloc[0])


@pytest.mark.parametrize(("kind", "expected"), [("dtc", (4, 0)), ("gtc", (1, 0))])
def test_compensated_sums_give_psds_eval_counts_where_plain_sums_would_not(kind, expected):
    """dtc: psds_eval lets the detection pass (0.7 >= 0.7), so its four events are true positives and it is
    no false positive (a plain sum: 0 true, 1 false positive). gtc: the event counts as detected (plain: 0)."""
    truth, detections, metadata = case(kind)
    events = quiet_psds_eval(ground_truth=truth, metadata=metadata).single_label_events(["a"])
    criteria = (0.7, 0.5)
    counts = count_detections(segments_of(detections, ["a"]), events, np.array([10.0]), criteria)
    assert counts == [psds_eval_counts(detections, truth, metadata, criterion) for criterion in criteria]
    assert counts[0] == expected
