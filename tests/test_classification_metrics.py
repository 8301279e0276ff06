"""Hand-computed checks of zero-shot classification accuracy."""

import numpy as np
import pytest
import torch

from tools.eval.classification_metrics import classification_accuracy, predict_classes


def test_fold_mean_differs_from_pooled_accuracy():
    # fold 1: 2 clips, 1 correct (50 %); fold 2: 4 clips, all correct (100 %)
    similarity = np.array([
        [0.9, 0.1, 0.0],  # pred 0, target 0: correct
        [0.9, 0.1, 0.0],  # pred 0, target 1: wrong
        [0.1, 0.9, 0.0],
        [0.1, 0.9, 0.0],
        [0.0, 0.1, 0.9],
        [0.0, 0.1, 0.9],
    ])
    targets = np.array([0, 1, 1, 1, 2, 2])
    folds = np.array([1, 1, 2, 2, 2, 2])
    result = classification_accuracy(similarity, targets, folds)
    assert result["per_fold_accuracy_percent"] == {1: 50.0, 2: 100.0}
    assert result["accuracy_percent"] == pytest.approx(75.0)
    assert result["num_clips"] == 6
    pooled = classification_accuracy(similarity, targets)
    assert pooled["accuracy_percent"] == pytest.approx(500 / 6)
    assert pooled["per_fold_accuracy_percent"] == {}


def test_ties_go_to_lowest_index():
    np.testing.assert_array_equal(predict_classes(np.array([[0.5, 0.5, 0.1], [0.2, 0.7, 0.7]])), [0, 1])


def test_torch_inputs():
    result = classification_accuracy(torch.eye(3), torch.tensor([0, 1, 0]), torch.tensor([1, 1, 1]))
    assert result["accuracy_percent"] == pytest.approx(200 / 3)


def test_target_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="targets"):
        classification_accuracy(np.zeros((2, 2)), np.array([0, 2]))
