"""Zero-shot classification (ESC-50, UrbanSound8K, VGGSound): prompts, readers and accuracy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from data_handling.class_names import CLASSIFICATION_PROMPT, normalize_class_names
from data_handling.eval_sets.classification import (
    ClassificationItem,
    read_custom_classification,
    read_esc50,
    read_urbansound8k,
    read_vggsound,
    read_vggsound_test_csv,
)
from data_handling.eval_sets.layouts import find_eval_files
from models.similarity import clip_text_similarity
from tools.eval.classification_metrics import classification_accuracy
from tools.eval.common import (
    check_evaluation_sets,
    long_audio_mode,
    make_prompts,
    missing_audio,
    require_complete,
    require_embeddings,
    skipped_summary,
)
from tools.eval.embedding import embed_audio_files, embed_texts


class LabelledClips(NamedTuple):
    """A classification set as read: clips, class names (index = class_index), listed clips without a file
    (their number and names)."""

    items: list[ClassificationItem]
    class_names: list[str]
    num_missing: int = 0
    missing: Sequence[str] = ()


def _read_esc50(root: str | Path) -> LabelledClips:
    return LabelledClips(*read_esc50(find_eval_files(root, "esc50").folder, check_audio=False))


def _read_urbansound8k(root: str | Path) -> LabelledClips:
    return LabelledClips(*read_urbansound8k(find_eval_files(root, "urbansound8k").folder, check_audio=False))


def _read_vggsound(root: str | Path) -> LabelledClips:
    files = find_eval_files(root, "vggsound")
    if "test_csv" in files.paths:
        return LabelledClips(*read_vggsound_test_csv(files.paths["test_csv"], files.paths["audio"]))
    return LabelledClips(*read_vggsound(files.paths["csv"], files.paths["audio"]))


def _read_custom(root: str | Path) -> LabelledClips:
    return LabelledClips(*read_custom_classification(root))


def check_classification_set(path: str | Path) -> dict[str, Any]:
    """Whether a labelled set of eval.classification_sets can be evaluated whole, without embedding anything: it
    must read (else FileNotFoundError / ValueError, as read_custom_classification) and every clip's audio file
    should exist. Returns set (the path), num_files (clips listed), missing (paths of the clips without audio)."""
    return missing_audio(path, [item.audio_path for item in read_custom_classification(path).items])


def check_classification_sets(paths: Sequence[str | Path], strict: bool = False, report: bool = True
                              ) -> list[dict[str, Any]]:
    """`check_classification_set` of each of eval.classification_sets (tools.eval.common.check_evaluation_sets)."""
    return check_evaluation_sets(paths, check_classification_set, "eval.classification_sets", strict, report)


@dataclass(frozen=True)
class ClassificationProtocol:
    """A classification dataset: its prompt, its handling of audio longer than 10 s when eval.long_audio is
    null, and its reader (the dataset's own folder or the reference's parent folder -> LabelledClips)."""

    prompt_template: str
    default_long_audio: str
    read: Callable[[str | Path], LabelledClips]


CLASSIFICATION_PROTOCOLS = {
    # ESC-50 and UrbanSound8K clips are at most 5 s / 4 s: the reference rejects longer audio; we window it.
    "esc50": ClassificationProtocol(CLASSIFICATION_PROMPT, "window", _read_esc50),
    "urbansound8k": ClassificationProtocol("{}", "window", _read_urbansound8k),
    "vggsound": ClassificationProtocol(CLASSIFICATION_PROMPT, "cut", _read_vggsound),
    # your own labelled clips (data_handling.eval_sets.classification.read_custom_classification), as ESC-50
    "custom": ClassificationProtocol(CLASSIFICATION_PROMPT, "window", _read_custom),
}
"""--dataset -> protocol; adding a dataset is a reader and one entry here (plus its layout in EVAL_LAYOUTS)."""


def evaluate_classification(model: nn.Module, items: Sequence[ClassificationItem], class_names: Sequence[str],
                            prompt_template: str, device: str | torch.device | None = None,
                            batch_size: int | str = "auto", num_workers: int | str = "auto",
                            long_audio: str = "window", crop_seed: int = 0, precision: str = "float32",
                            missing: Sequence[str] = (), strict: bool = False) -> dict[str, Any]:
    """Zero-shot classification: argmax of cosine(clip embedding, prompt embedding).

    Audio zero-padded to 10 s; longer audio cut, cropped (seeded by crop_seed and the item's position) or
    windowed (`long_audio`).
    Args:
        items: clips with class_index into class_names and fold (None: no folds).
        class_names: C names; '_' -> ' '; empty or duplicate names raise ValueError.
        prompt_template: '{}' is replaced by the class name, e.g. "{} can be heard" or "{}".
        missing: clips the set lists whose file was not found (not in `items`); they count as skipped.
        strict: raise IncompleteEvaluationError naming the files when any is missing or unreadable.
    Returns:
        accuracy_percent (mean over folds when folds are given), per_fold_accuracy_percent, num_clips,
        num_classes, prompt_template, and `tools.eval.common.file_coverage`'s complete, num_files,
        num_scored, num_skipped, skipped.
    """
    prompts = make_prompts(normalize_class_names(class_names), prompt_template)
    if not items:
        raise ValueError("no clips to classify")
    audio = embed_audio_files(model, [item.audio_path for item in items], device, batch_size, num_workers,
                              pad_mode="zero", long_audio=long_audio, crop_seed=crop_seed, precision=precision)
    coverage = skipped_summary(audio, missing)
    require_complete(coverage, "the classification set", strict)
    require_embeddings(audio, "the classification set")
    kept = [items[index] for index in audio.indices]
    prompt_embeds = embed_texts(model, prompts, device, precision=precision)
    targets = np.array([item.class_index for item in kept])
    folds = [item.fold for item in kept]
    result = classification_accuracy(clip_text_similarity(audio.clip, prompt_embeds), targets,
                                     None if any(fold is None for fold in folds) else np.array(folds))
    result.update(num_classes=len(prompts), prompt_template=prompt_template, **coverage)
    return result


def evaluate_classification_dataset(model: nn.Module, dataset: str, root: str | Path,
                                    device: str | torch.device | None = None, batch_size: int | str = "auto",
                                    num_workers: int | str = "auto", long_audio: str | None = None, crop_seed: int = 0,
                                    precision: str = "float32", strict: bool = False,
                                    prompt_template: str | None = None) -> dict[str, Any]:
    """Read a dataset (`CLASSIFICATION_PROTOCOLS`; `root`: its own folder or the reference's parent folder; for
    "custom" the folder, table or dataset of labelled clips) and evaluate it with its published protocol
    (prompt_template: another prompt than the protocol's)."""
    if dataset not in CLASSIFICATION_PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(CLASSIFICATION_PROTOCOLS)}")
    protocol = CLASSIFICATION_PROTOCOLS[dataset]
    clips = protocol.read(root)
    long_audio = long_audio_mode(dataset, long_audio, protocol.default_long_audio)
    result = evaluate_classification(model, clips.items, clips.class_names, prompt_template or protocol.prompt_template,
                                     device, batch_size, num_workers, long_audio, crop_seed, precision, clips.missing,
                                     strict)
    result.update(dataset=dataset, num_listed_without_file=clips.num_missing, protocol={"long_audio": long_audio})
    return result


