"""Zero-shot text-to-audio and audio-to-text retrieval (Clotho / AudioCaps json), the reference's protocol."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_handling.eval_sets.retrieval import (
    read_retrieval_json,
)
from data_handling.text_preprocess import preprocess_caption
from models.similarity import clip_text_similarity
from tools.eval.common import (
    check_evaluation_sets,
    long_audio_mode,
    missing_audio,
    require_complete,
    require_embeddings,
    skipped_summary,
)
from tools.eval.embedding import embed_audio_files, embed_texts
from tools.eval.retrieval_metrics import retrieval_metrics

REFERENCE_ROWS_PER_BATCH = 32
"""Caption rows per batch of the reference's retrieval evaluation; each batch is zero-padded to its longest clip."""

RETRIEVAL_PADDINGS = ("batch", "fixed")
log = logging.getLogger(__name__)


def reference_padding_spans(captions_per_clip: Sequence[int], rows_per_batch: int = REFERENCE_ROWS_PER_BATCH
                            ) -> list[tuple[int, int]]:
    """The clips whose longest clip each clip is zero-padded to in the reference's retrieval evaluation.

    The reference loads one row per caption, clips in json order, in batches of `rows_per_batch` rows
    zero-padded to their longest clip (after the 10 s crop), and embeds a clip by its first row: clip c is
    padded to the longest of the clips that have a row in the batch of its first row. With 5 captions per
    clip, clip c's first row is 5c, its batch b = floor(5c / 32), holding rows 32b .. 32b + 31.

    Args:
        captions_per_clip: N caption counts, in json order.
    Returns:
        N pairs (first clip, last clip) with a row in clip c's batch (inclusive).
    """
    first_rows = np.concatenate(([0], np.cumsum(captions_per_clip))).tolist()   # [N + 1]; last = total rows
    total_rows = first_rows[-1]
    spans = []
    for first_row in first_rows[:-1]:
        batch_start = first_row - first_row % rows_per_batch
        batch_last = min(batch_start + rows_per_batch, total_rows) - 1
        spans.append((bisect_right(first_rows, batch_start) - 1, bisect_right(first_rows, batch_last) - 1))
    return spans


def evaluate_retrieval(model: nn.Module, json_path: str | Path, device: str | torch.device | None = None,
                       batch_size: int | str = "auto", num_workers: int | str = "auto",
                       audio_root: str | Path | None = None,
                       long_audio: str | None = None, crop_seed: int = 0, padding: str = "batch",
                       search_roots: Sequence[str | Path] = (), precision: str = "float32", strict: bool = False
                       ) -> dict[str, Any]:
    """Text-to-audio and audio-to-text retrieval on a Clotho/AudioCaps-style json.

    Clips are numbered by their position in the json (ids are not used). Audio longer than 10 s: one random
    10 s crop whose start depends only on (crop_seed, position) ('crop', the default and the reference's),
    the first 10 s ('cut') or every window ('window'). Shorter audio: zero-padded to the longest clip of its
    first caption's 32-caption batch ('batch', the reference's; `reference_padding_spans`), stretched by
    the encoder when that batch is shorter than 10 s; or zero-padded to 10 s ('fixed'). Captions are
    preprocessed as in training. Audio files that cannot be found or read are skipped with their captions
    (counted); the json's "audio" path is resolved as `read_retrieval_json` describes.
    Args:
        batch_size, num_workers: audio loading only; the numbers do not depend on them.
        search_roots: further folders for the json's "wav" paths and file names (e.g. eval.data_root_dir).
        strict: raise IncompleteEvaluationError naming the files when any is missing or unreadable.
    Returns:
        retrieval_metrics keys ({t2a,a2t}_{R1,R5,R10,R50,mAP10}_percent, {t2a,a2t}_{medR,meanR}), num_audio,
        num_captions, `tools.eval.common.file_coverage`'s complete, num_files, num_scored, num_skipped,
        skipped, and protocol {long_audio, crop_seed, padding}.
    """
    if padding not in RETRIEVAL_PADDINGS:
        raise ValueError(f"padding must be one of {RETRIEVAL_PADDINGS}, got {padding!r}")
    long_audio = long_audio_mode("retrieval", long_audio)
    items = read_retrieval_json(json_path, audio_root, check_audio=False, search_roots=search_roots)
    spans = reference_padding_spans([len(item.captions) for item in items]) if padding == "batch" else None
    audio = embed_audio_files(model, [item.audio_path for item in items], device, batch_size, num_workers,
                              pad_mode="zero", long_audio=long_audio, crop_seed=crop_seed, padding_spans=spans,
                              precision=precision)
    coverage = skipped_summary(audio)
    require_complete(coverage, json_path, strict)
    require_embeddings(audio, json_path)
    kept = [items[index] for index in audio.indices]
    captions = [preprocess_caption(caption) for item in kept for caption in item.captions]
    text_to_audio = np.array([row for row, item in enumerate(kept) for _ in item.captions])
    text_embeds = embed_texts(model, captions, device, precision=precision)
    metrics: dict[str, Any] = retrieval_metrics(clip_text_similarity(audio.clip, text_embeds), text_to_audio)
    metrics.update(num_audio=len(kept), num_captions=len(captions), **coverage,
                   protocol={"long_audio": long_audio, "crop_seed": crop_seed, "padding": padding})
    return metrics




def check_retrieval_set(json_path: str | Path, audio_root: str | Path | None = None,
                        search_roots: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Whether a retrieval json can be evaluated whole, without embedding anything: it must read (else
    FileNotFoundError / ValueError, as `read_retrieval_json`) and every clip's audio file should exist, found
    as `evaluate_retrieval` finds it with the same arguments.

    Returns:
        set (the json's path), num_files (clips listed), missing (paths of the clips without an audio file).
    """
    items = read_retrieval_json(json_path, audio_root, check_audio=False, search_roots=search_roots)
    return missing_audio(json_path, [item.audio_path for item in items])


def check_retrieval_sets(json_paths: Sequence[str | Path], strict: bool = False, report: bool = True
                         ) -> list[dict[str, Any]]:
    """`check_retrieval_set` of each json of eval.retrieval_jsons (tools.eval.common.check_evaluation_sets)."""
    return check_evaluation_sets(json_paths, check_retrieval_set, "eval.retrieval_jsons", strict, report)
