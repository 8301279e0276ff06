"""Linear probe: logistic regression (scikit-learn) on frozen clip embeddings of labelled clips.

    clip embeddings [N, E], class indices [N] -> accuracy per fold and mean, per-class report   `probe_accuracy`
    a folder/table/dataset of labelled clips + model -> the same, embeddings from embed_audio_files
                                                                                          `evaluate_linear_probe`

Folds: the data's own (`fold` column: each fold held out once, as ESC-50's protocol), else K stratified
folds drawn with a fixed seed. Embeddings are standardised on each training split, then a multinomial
logistic regression (lbfgs) is fitted; accuracies are in percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_handling.eval_sets.classification import read_custom_classification
from tools.eval.common import require_embeddings, skipped_summary
from tools.eval.embedding import embed_audio_files

DEFAULT_FOLDS = 5
MAX_ITERATIONS = 2000


def probe_splits(targets: np.ndarray, folds: np.ndarray | None, num_folds: int | None, seed: int
                 ) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """(fold name, train indices, test indices) per fold: the data's folds when given and num_folds is None,
    else num_folds stratified folds (shuffled with `seed`)."""
    from sklearn.model_selection import StratifiedKFold

    if folds is not None and num_folds is None:
        names = sorted(set(folds.tolist()))
        if len(names) < 2:
            raise ValueError(f"the data has a single fold {names}; give --folds K to draw K folds instead")
        return [(name, np.flatnonzero(folds != name), np.flatnonzero(folds == name)) for name in names]
    num_folds = num_folds or DEFAULT_FOLDS
    smallest = int(np.unique(targets, return_counts=True)[1].min()) if targets.size else 0
    if num_folds < 2 or smallest < num_folds:
        raise ValueError(f"{num_folds} folds need at least {max(num_folds, 2)} clips of every class and at least "
                         f"2 folds; the smallest class has {smallest} clips: lower --folds")
    splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    return [(number + 1, train, test) for number, (train, test) in enumerate(splitter.split(targets, targets))]


def probe_accuracy(embeddings: Any, targets: Any, class_names: Sequence[str], folds: Any | None = None,
                   num_folds: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Logistic regression on embeddings, evaluated per fold.

    Args:
        embeddings: [N, E] clip embeddings (numpy or torch). targets: [N] class indices into class_names.
        folds: [N] fold per clip (used when num_folds is None), or None.
        num_folds: K stratified folds (default 5 without folds).
    Returns:
        accuracy_percent (mean over folds), per_fold_accuracy_percent {fold: %}, per_class {name: {precision,
        recall, f1 in percent, support}} over all held-out predictions, num_clips, num_classes, num_folds.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(embeddings.cpu() if isinstance(embeddings, torch.Tensor) else embeddings, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if features.ndim != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(f"embeddings must be [N, E] with N = {targets.shape[0]} targets, got {features.shape}")
    folds = None if folds is None else np.asarray(folds)
    per_fold: dict[Any, float] = {}
    predictions = np.full(targets.shape, -1)
    for name, train, test in probe_splits(targets, folds, num_folds, seed):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITERATIONS))
        classifier.fit(features[train], targets[train])
        predictions[test] = classifier.predict(features[test])
        per_fold[name] = 100.0 * float(np.mean(predictions[test] == targets[test]))
    held_out = predictions >= 0
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets[held_out], predictions[held_out], labels=labels, zero_division=0)
    per_class = {name: {"precision_percent": 100.0 * float(precision[index]),
                        "recall_percent": 100.0 * float(recall[index]), "f1_percent": 100.0 * float(f1[index]),
                        "support": int(support[index])} for index, name in enumerate(class_names)}
    return {"accuracy_percent": float(np.mean(list(per_fold.values()))),
            "per_fold_accuracy_percent": {str(name): value for name, value in per_fold.items()},
            "per_class": per_class, "num_clips": int(targets.shape[0]), "num_classes": len(class_names),
            "num_folds": len(per_fold)}


def evaluate_linear_probe(model: nn.Module, data: str | Path, device: str | torch.device | None = None,
                          num_folds: int | None = None, batch_size: int | str = "auto",
                          num_workers: int | str = "auto", long_audio: str = "window", seed: int = 0,
                          precision: str = "float32") -> dict[str, Any]:
    """Linear probe on labelled clips (a folder of class folders, a CSV/TSV audio,label[,fold] or a Hugging Face
    dataset; data_handling.eval_sets.classification.read_custom_classification): clip embeddings as zero-shot
    classification computes them (zero-padded to 10 s, longer audio windowed by default), then probe_accuracy."""
    clips = read_custom_classification(data)
    audio = embed_audio_files(model, [item.audio_path for item in clips.items], device, batch_size, num_workers,
                              pad_mode="zero", long_audio=long_audio, precision=precision)
    require_embeddings(audio, data)
    kept = [clips.items[index] for index in audio.indices]
    folds = [item.fold for item in kept]
    result = probe_accuracy(audio.clip, [item.class_index for item in kept], clips.class_names,
                            None if any(fold is None for fold in folds) else folds, num_folds, seed)
    result.update(protocol={"long_audio": long_audio, "seed": seed}, **skipped_summary(audio))
    return result
