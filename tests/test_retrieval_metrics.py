"""Hand-computed checks of the retrieval metrics."""

import numpy as np
import pytest
import torch

from tools.eval.retrieval_metrics import (
    average_precision_at_k,
    rank_matrix,
    retrieval_metrics,
    retrieval_score,
)


def test_one_caption_per_audio_with_ties():
    # caption 2's column is all ties: the stable sort puts audio 0 and 1 ahead of audio 2 (rank 2).
    similarity = np.array([[0.9, 0.1, 0.5],
                           [0.2, 0.8, 0.5],
                           [0.3, 0.7, 0.5]])
    metrics = retrieval_metrics(similarity, np.array([0, 1, 2]))
    # t2a ranks [0, 0, 2]
    assert metrics["t2a_R1_percent"] == pytest.approx(200 / 3)
    assert metrics["t2a_R5_percent"] == 100.0
    assert metrics["t2a_medR"] == 1.0
    assert metrics["t2a_meanR"] == pytest.approx(1 + 2 / 3)
    assert metrics["t2a_mAP10_percent"] == pytest.approx(100 * (1 + 1 + 1 / 3) / 3)
    # a2t ranks [0, 0, 1] (audio 2: caption 1 scores 0.7 > caption 2's 0.5)
    assert metrics["a2t_R1_percent"] == pytest.approx(200 / 3)
    assert metrics["a2t_meanR"] == pytest.approx(1 + 1 / 3)
    assert metrics["a2t_mAP10_percent"] == pytest.approx(100 * (1 + 1 + 1 / 2) / 3)


def test_all_ties_rank_lower_index_first():
    metrics = retrieval_metrics(np.zeros((2, 2)), np.array([0, 1]))
    # caption 0 -> audio 0 rank 0, caption 1 -> audio 1 rank 1; same for a2t
    assert metrics["t2a_R1_percent"] == 50.0 and metrics["a2t_R1_percent"] == 50.0
    assert metrics["t2a_meanR"] == 1.5 and metrics["a2t_meanR"] == 1.5
    np.testing.assert_array_equal(rank_matrix(np.array([[1.0, 3.0, 3.0, 0.0]])), [[2, 0, 1, 3]])


def five_caption_case() -> tuple[np.ndarray, np.ndarray]:
    """2 audios x 10 captions, captions 0-4 describe audio 0 and captions 5-9 audio 1."""
    similarity = np.array([
        [0.1, 0.2, 0.3, 0.4, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5],
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
    ])
    return similarity, np.repeat([0, 1], 5)


def test_five_captions_a2t_uses_best_caption():
    metrics = retrieval_metrics(*five_caption_case())
    # audio 0: its captions at ranks 0, 6, 7, 8, 9 -> best 0; audio 1: ranks 5..9 -> best 5
    assert metrics["a2t_R1_percent"] == 50.0
    assert metrics["a2t_R5_percent"] == 50.0
    assert metrics["a2t_R10_percent"] == 100.0
    assert metrics["a2t_medR"] == 3.0  # floor(median(0, 5) = 2.5) + 1
    assert metrics["a2t_meanR"] == 3.5
    ap_audio0 = (1 / 1 + 2 / 7 + 3 / 8 + 4 / 9 + 5 / 10) / 5
    ap_audio1 = (1 / 6 + 2 / 7 + 3 / 8 + 4 / 9 + 5 / 10) / 5
    assert metrics["a2t_mAP10_percent"] == pytest.approx(100 * (ap_audio0 + ap_audio1) / 2)


def test_five_captions_t2a():
    metrics = retrieval_metrics(*five_caption_case())
    # t2a ranks: caption 4 -> 0, all others -> 1
    assert metrics["t2a_R1_percent"] == 10.0
    assert metrics["t2a_R5_percent"] == 100.0
    assert metrics["t2a_medR"] == 2.0
    assert metrics["t2a_meanR"] == pytest.approx(1.9)
    assert metrics["t2a_mAP10_percent"] == pytest.approx(100 * (1 + 9 * 0.5) / 10)
    assert retrieval_score(metrics) == pytest.approx(10 + 100 + 50 + 50)


def test_average_precision_cutoff_at_ten():
    assert average_precision_at_k(np.array([10, 0, 12])) == pytest.approx(1 / 3)
    assert average_precision_at_k(np.array([9, 2])) == pytest.approx((1 / 3 + 2 / 10) / 2)
    similarity = np.tile(np.arange(12, 0, -1, dtype=float), (12, 1)).T  # every caption prefers audio 0
    metrics = retrieval_metrics(similarity, np.arange(12))
    assert metrics["t2a_mAP10_percent"] == pytest.approx(100 * sum(1 / (rank + 1) for rank in range(10)) / 12)
    assert metrics["t2a_R50_percent"] == 100.0 and metrics["t2a_R10_percent"] == pytest.approx(1000 / 12)


def test_accepts_torch_and_matches_numpy():
    similarity, text_to_audio = five_caption_case()
    from_torch = retrieval_metrics(torch.tensor(similarity, dtype=torch.bfloat16), torch.tensor(text_to_audio))
    assert from_torch.keys() == retrieval_metrics(similarity, text_to_audio).keys()
    assert from_torch["a2t_R1_percent"] == 50.0


def test_audio_without_caption_is_an_error():
    with pytest.raises(ValueError, match="no caption"):
        retrieval_metrics(np.zeros((3, 2)), np.array([0, 2]))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="n_text"):
        retrieval_metrics(np.zeros((2, 3)), np.array([0, 1]))


def test_units_are_in_the_keys():
    metrics = retrieval_metrics(*five_caption_case())
    assert set(metrics) == {f"{direction}_{name}" for direction in ("t2a", "a2t")
                            for name in ("R1_percent", "R5_percent", "R10_percent", "R50_percent",
                                         "mAP10_percent", "medR", "meanR")}
    assert all(0 <= metrics[key] <= 100 for key in metrics if key.endswith("_percent"))
