"""Zero-shot classification accuracy (ESC-50: mean over 5 folds, UrbanSound8K: over 10, VGGSound: plain).

Accuracy is in percent, and its keys say so (`accuracy_percent`); the reference prints it as a fraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tools.eval.retrieval_metrics import to_numpy


def predict_classes(similarity: np.ndarray) -> np.ndarray:
    """Argmax over classes; ties go to the lowest class index (numpy's argmax).

    Args:
        similarity: [n_clips, n_classes].
    Returns:
        predictions: [n_clips] int.
    """
    return np.argmax(similarity, axis=1)


def _validate(similarity: np.ndarray, targets: np.ndarray, folds: np.ndarray | None) -> None:
    """Check shapes and target range."""
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be [n_clips, n_classes], got shape {similarity.shape}")
    n_clips, n_classes = similarity.shape
    if n_clips == 0:
        raise ValueError("similarity has no clips (shape [0, n_classes]); nothing to evaluate")
    if targets.shape != (n_clips,):
        raise ValueError(f"targets must have shape [n_clips] = [{n_clips}], got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or targets.max() >= n_classes:
        raise ValueError(f"targets must be integer class indices in [0, {n_classes}), got dtype "
                         f"{targets.dtype} and range [{targets.min()}, {targets.max()}]")
    if folds is not None and folds.shape != (n_clips,):
        raise ValueError(f"folds must have shape [n_clips] = [{n_clips}], got {folds.shape}")


def _python_scalar(value: Any) -> Any:
    """numpy scalar -> python scalar (so fold keys print and serialise cleanly)."""
    return value.item() if hasattr(value, "item") else value


def classification_accuracy(similarity: Any, targets: Any, folds: Any | None = None) -> dict[str, Any]:
    """Accuracy of argmax predictions, averaged over folds when folds are given.

    Args:
        similarity: [n_clips, n_classes] numpy array or torch tensor.
        targets: [n_clips] int class indices.
        folds: [n_clips] fold id per clip, or None.
    Returns:
        accuracy_percent: 0..100; with folds the unweighted mean of the per-fold accuracies (the ESC-50 /
            UrbanSound8K protocol), without folds the accuracy over all clips.
        per_fold_accuracy_percent: {fold id: accuracy in %}, sorted by fold id; empty without folds.
        num_clips: n_clips.
    """
    similarity = to_numpy(similarity)
    targets = to_numpy(targets)
    folds = None if folds is None else to_numpy(folds)
    _validate(similarity, targets, folds)

    correct = predict_classes(similarity) == targets
    per_fold: dict[Any, float] = {}
    if folds is None:
        accuracy = float(100.0 * correct.mean())
    else:
        for fold in np.unique(folds):
            per_fold[_python_scalar(fold)] = float(100.0 * correct[folds == fold].mean())
        accuracy = float(np.mean(list(per_fold.values())))
    return {"accuracy_percent": accuracy, "per_fold_accuracy_percent": per_fold, "num_clips": int(similarity.shape[0])}


def classification_score(metrics: dict[str, Any]) -> float:
    """The selection score of a classification set during training: its accuracy in percent."""
    return float(metrics["accuracy_percent"])
