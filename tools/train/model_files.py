"""The model files of an experiment folder, and which epoch each one keeps.

- `model_<epoch>.pt` after the epochs of training.snapshot_epochs (the reference's epochs 3 to 9);
- one best file per retrieval set (`best_file_names`: clotho_best_model.pt, ac_best_model.pt, else
  `<json folder>_best_model.pt`), replaced when the set's R@1 + R@5 (both directions) is at least its best
  so far, so ties go to the later epoch, as the reference;
- one best file per classification set (`classification_best_file_names`: `<folder>_clas_best_model.pt`),
  replaced when its accuracy in percent is at least its best so far;
- `best.pt` for the best sum of the sets' scores (without evaluation sets: the last epoch), without optimiser
  state.
Each file is written atomically; the best scores travel in last.pt so that a resumed run keeps them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.checkpoint import CheckpointError, read_checkpoint
from tools.train.checkpointing import atomic_save

log = logging.getLogger(__name__)

ModelFileContent = Callable[..., dict[str, Any]]
"""content(score=None, with_optimizer=True) -> the checkpoint dict to write."""


class ModelFiles:
    def __init__(self, experiment_dir: Path, retrieval_jsons: Sequence[str], snapshot_epochs: Sequence[int],
                 last_epoch: int, classification_sets: Sequence[str] = ()):
        self.experiment_dir = Path(experiment_dir)
        self.retrieval_best_files = best_file_names(list(retrieval_jsons))
        self.classification_best_files = classification_best_file_names(list(classification_sets),
                                                                        taken=self.retrieval_best_files)
        self.best_files = self.retrieval_best_files + self.classification_best_files
        self.snapshot_epochs = set(snapshot_epochs)
        self.last_epoch = last_epoch
        self.best_metric = -math.inf  # best.pt: the sum of the sets' scores
        self.best_scores: dict[str, float] = {}  # best file name -> its set's best score

    def save_snapshot(self, epoch: int, content: ModelFileContent) -> None:
        """model_<epoch>.pt when `epoch` (1-based) is a snapshot epoch (before its evaluation)."""
        if epoch in self.snapshot_epochs:
            atomic_save(content(), self.experiment_dir / f"model_{epoch}.pt")

    def save_best(self, epoch: int, record: dict[str, Any], content: ModelFileContent) -> None:
        """The best files that epoch `epoch` improves, from its record ("scores": best file -> score, "score":
        their sum)."""
        for best_file, score in record.get("scores", {}).items():
            if score >= self.best_scores.get(best_file, -math.inf):
                self.best_scores[best_file] = score
                atomic_save(content(score), self.experiment_dir / best_file)
                what = "accuracy %" if best_file in self.classification_best_files else "R@1 + R@5 both ways"
                log.info("%s updated at epoch %d (%s: %.2f)", best_file, epoch, what, score)
        score = record.get("score")
        improved = score is not None and score >= self.best_metric
        if improved:
            self.best_metric = score
        if improved or (not self.best_files and epoch == self.last_epoch):
            atomic_save(content(score, with_optimizer=False), self.experiment_dir / "best.pt")
            log.info("best.pt updated at epoch %d (score %s)", epoch, score)

    def state_dict(self) -> dict[str, Any]:
        return {"best_metric": self.best_metric, "best_scores": dict(self.best_scores)}

    def recover_best_scores(self) -> None:
        """The best scores from the best files' 'metric' (when resuming without last.pt); a file that is
        missing or unreadable leaves its score unknown (the next evaluation replaces it)."""
        for name in [*self.best_files, "best.pt"]:
            try:
                metric = read_checkpoint(self.experiment_dir / name).get("metric")
            except CheckpointError:
                continue
            if metric is None:
                continue
            if name == "best.pt":
                self.best_metric = float(metric)
            else:
                self.best_scores[name] = float(metric)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_metric = float(state["best_metric"])
        self.best_scores = {name: float(score) for name, score in state.get("best_scores", {}).items()}


def best_file_names(json_paths: list[str]) -> list[str]:
    """The best-model file of each retrieval set: clotho_best_model.pt and ac_best_model.pt for paths
    naming Clotho and AudioCaps (the reference's names), else <json's folder>_best_model.pt; a name
    taken twice gets the set's position appended."""
    names: list[str] = []
    for position, json_path in enumerate(json_paths):
        lowered = str(json_path).lower()
        stem = "clotho" if "clotho" in lowered else "ac" if "audiocaps" in lowered else Path(json_path).parent.name
        name = f"{stem or 'retrieval'}_best_model.pt"
        names.append(name if name not in names else f"{stem}{position}_best_model.pt")
    return names


def classification_best_file_names(paths: list[str], taken: Sequence[str] = ()) -> list[str]:
    """The best-model file of each classification set: <name>_clas_best_model.pt, name = the set's folder (a
    folder of class folders) or the folder holding its table or dataset file; a name taken (also by `taken`)
    gets the set's position appended."""
    names: list[str] = []
    for position, path in enumerate(paths):
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        stem = folder.name or "classification"
        name = f"{stem}_clas_best_model.pt"
        names.append(name if name not in names and name not in taken else f"{stem}{position}_clas_best_model.pt")
    return names
