"""Dataset roots of the synthetic corpus and the quickstart's report card over its four test splits."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data_handling.eval_sets.layouts import find_eval_files, task_root
from data_handling.synthetic import corpus_exists
from tools.eval.classification import evaluate_classification_dataset
from tools.eval.grounding import evaluate_grounding
from tools.eval.retrieval import evaluate_retrieval
from tools.eval.sed import evaluate_sed

SYNTHETIC_TASKS = ("retrieval", "classification", "sed", "grounding")
"""The report card's tasks, in its order; classification is the ESC-50 protocol on the esc50/ split."""


def synthetic_report_card(model: nn.Module, synthetic_root: str | Path, device: str | torch.device | None = None,
                          batch_size: int | str = "auto", num_workers: int | str = "auto", precision: str = "float32"
                          ) -> dict[str, dict[str, Any]]:
    """Zero-shot results on the synthetic corpus's test splits, with the scripts' protocols and defaults.

    Returns:
        {"retrieval": evaluate_retrieval, "classification": ESC-50 protocol on esc50/, "sed": evaluate_sed,
         "grounding": evaluate_grounding}.
    """
    require_synthetic_corpus(synthetic_root)
    return {task: evaluate_synthetic_task(model, synthetic_root, task, device, batch_size, num_workers, precision)
            for task in SYNTHETIC_TASKS}


def require_synthetic_corpus(root: str | Path) -> Path:
    """`root` as a Path; FileNotFoundError (saying how to generate it) unless it holds a complete corpus."""
    root = Path(root)
    if not corpus_exists(root):
        raise FileNotFoundError(f"no complete synthetic corpus at {root} (its DONE marker is missing); "
                                f"generate it with: python -m data_handling.synthetic --out {root}")
    return root


def evaluate_synthetic_task(model: nn.Module, synthetic_root: str | Path, task: str,
                            device: str | torch.device | None = None, batch_size: int | str = "auto",
                            num_workers: int | str = "auto", precision: str = "float32",
                            protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One task of the report card (`SYNTHETIC_TASKS`) on its split of the synthetic corpus.

    protocol: extra keyword arguments of the task's evaluate function (e.g. long_audio); default: the
        reference's protocol, as the report card.
    """
    root = require_synthetic_corpus(synthetic_root)
    options = {"device": device, "batch_size": batch_size, "num_workers": num_workers, "precision": precision,
               **(protocol or {})}
    if task == "retrieval":
        return evaluate_retrieval(model, find_eval_files(task_root(root, "retrieval"), "retrieval").paths["json"],
                                  **options)
    if task == "classification":
        return evaluate_classification_dataset(model, "esc50", task_root(root, "esc50"), **options)
    if task == "sed":
        sed = find_eval_files(task_root(root, "sed"), "sed").paths
        return evaluate_sed(model, sed["audio"], sed["events"], sed["durations"], **options)
    if task == "grounding":
        grounding = find_eval_files(task_root(root, "grounding"), "grounding").paths
        return evaluate_grounding(model, grounding["json"], grounding["audio"],
                                  durations_file=grounding.get("durations"), **options)
    raise ValueError(f"unknown report card task {task!r}; expected one of {list(SYNTHETIC_TASKS)}")
