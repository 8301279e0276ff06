"""Zero-shot text-to-audio grounding (AudioGrounding): phrase x frame probabilities, PSDS."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data_handling.audio_paths import find_audio_files
from data_handling.eval_sets.grounding import (
    GROUNDING_FOLDER_LAYOUT,
    read_grounding_durations,
    read_grounding_json,
)
from models.similarity import frame_text_similarity
from models.windowing import FRAME_HOP_SECONDS
from tools.eval.common import (
    long_audio_mode,
    require_complete,
    require_dir,
    require_embeddings,
    skipped_summary,
)
from tools.eval.embedding import AudioEmbeddings, embed_audio_files, embed_texts
from tools.eval.grounding_metrics import grounding_psds


def _grounding_durations(audio_ids: Sequence[str], audio: AudioEmbeddings, durations_file: str | Path | None
                         ) -> dict[str, float]:
    """audio_id -> seconds of the embedded files: the duration file's value (the reference's), else the
    audio's (for every id when there is no file, with a warning for ids the file lacks)."""
    from_audio = {audio_ids[index]: duration for index, duration in zip(audio.indices, audio.durations, strict=True)}
    if durations_file is None:
        return from_audio
    from_file = read_grounding_durations(durations_file)
    lacking = sorted(set(from_audio) - set(from_file))
    if lacking:
        warnings.warn(f"{len(lacking)} audio id(s) have no duration in {durations_file} (e.g. {lacking[:3]}); "
                      f"their audio's duration is used", UserWarning, stacklevel=3)
    return {audio_id: from_file.get(audio_id, duration) for audio_id, duration in from_audio.items()}


def evaluate_grounding(model: nn.Module, json_path: str | Path, audio_dir: str | Path,
                       device: str | torch.device | None = None, batch_size: int | str = "auto",
                       num_workers: int | str = "auto", durations_file: str | Path | None = None,
                       long_audio: str | None = None, score_tiled_tail: bool = True,
                       precision: str = "float32", strict: bool = False) -> dict[str, Any]:
    """Zero-shot text-to-audio grounding (AudioGrounding protocol).

    Per phrase: sigmoid(cosine(phrase embedding, frame embedding)) per frame; audio tiled to 10 s, longer
    audio windowed (default) or cut. Durations: `durations_file` (AudioGrounding's duration.csv, as the
    reference reads it) when given, else those of the audio files. With `score_tiled_tail` (the reference)
    detections are not clipped to the duration; without it they are. Phrases whose audio is skipped are
    left out (counted in num_phrases_skipped); with `strict` any missing or unreadable file raises
    IncompleteEvaluationError naming the files instead.
    Returns:
        psds_0.7, psds_0.5, psds_0.1 (fractions 0..1), num_phrases, num_phrases_without_segments,
        num_phrases_skipped, num_audio, `tools.eval.common.file_coverage`'s complete, num_files, num_scored,
        num_skipped, skipped, and protocol {long_audio, score_tiled_tail}.
    """
    long_audio = long_audio_mode("grounding", long_audio)
    audio_dir = require_dir(audio_dir, GROUNDING_FOLDER_LAYOUT)
    phrases = read_grounding_json(json_path)
    audio_ids = sorted({phrase.audio_id for phrase in phrases})
    audio = embed_audio_files(model, find_audio_files(audio_dir, audio_ids), device, batch_size, num_workers,
                              pad_mode="tile", long_audio=long_audio, precision=precision)
    coverage = skipped_summary(audio)
    require_complete(coverage, json_path, strict)
    require_embeddings(audio, json_path)
    row_of = {audio_ids[index]: row for row, index in enumerate(audio.indices)}
    kept = [phrase for phrase in phrases if phrase.audio_id in row_of]
    phrase_embeds = embed_texts(model, [phrase.phrase for phrase in kept], device, precision=precision)
    probs = {phrase.phrase_id: torch.sigmoid(frame_text_similarity(audio.frames[row_of[phrase.audio_id]], embed[None])[:, 0]).numpy()
             for phrase, embed in zip(kept, phrase_embeds, strict=True)}
    truth = {phrase.phrase_id: phrase.segments for phrase in kept}
    audio_durations = _grounding_durations(audio_ids, audio, durations_file)
    durations = {phrase.phrase_id: audio_durations[phrase.audio_id] for phrase in kept}
    result: dict[str, Any] = grounding_psds(probs, truth, durations, hop=FRAME_HOP_SECONDS,
                                            clip_to_duration=not score_tiled_tail)
    result.update(num_phrases_skipped=len(phrases) - len(kept), num_audio=len(row_of), **coverage,
                  protocol={"long_audio": long_audio, "score_tiled_tail": score_tiled_tail})
    return result


