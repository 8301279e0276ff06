"""Zero-shot sound event detection (AudioSet-strong, DESED, UrbanSED): frame scores, PSDS, figures."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_handling.audio_io import load_audio
from data_handling.audio_paths import find_audio_files
from data_handling.eval_sets.sed import (
    SED_FOLDER_LAYOUT,
    read_sed_tsv,
)
from models.runtime import unwrap
from models.similarity import frame_text_similarity
from models.windowing import FRAME_HOP_SECONDS
from tools.eval.common import (
    long_audio_mode,
    require_complete,
    require_dir,
    require_embeddings,
    skipped_summary,
)
from tools.eval.embedding import embed_audio_files, embed_texts, log_mel_spectrogram
from tools.eval.plots import plot_frame_similarities
from tools.eval.sed_metrics import sed_metrics, sed_scores_from_frames


def _classes_with_events(class_names: Sequence[str], truth: Mapping[str, list]) -> list[str]:
    """The classes that still have an event once skipped clips are gone (all of them, normally)."""
    present = {label for events in truth.values() for *_, label in events}
    kept = [name for name in class_names if name in present]
    if len(kept) < len(class_names):
        warnings.warn(f"{len(class_names) - len(kept)} class(es) lost every event with the skipped audio files "
                      f"and are not scored: {sorted(set(class_names) - present)[:10]}", UserWarning, stacklevel=3)
    return kept


def evaluate_sed(model: nn.Module, audio_dir: str | Path, tsv: str | Path, durations_tsv: str | Path,
                 device: str | torch.device | None = None, batch_size: int | str = "auto",
                 num_workers: int | str = "auto",
                 label_map: Mapping[str, str] | None = None, plot_dir: str | Path | None = None,
                 num_plots: int = 0, long_audio: str | None = None, score_tiled_tail: bool = True,
                 precision: str = "float32", strict: bool = False) -> dict[str, Any]:
    """Zero-shot sound event detection (AudioSet-strong / DESED / UrbanSED protocol).

    Scores: cosine(frame embedding, class text embedding), [T, C] per clip, median filter 3, hop 10 / 32 s.
    Audio tiled up to 10 s; longer audio cut to its first 10 s ('cut', the reference's) or windowed
    ('window': every frame of the file scored). With `score_tiled_tail` (the reference) every frame of the
    tiled 10 s input is scored, timestamps i * 10 / 32 up to 10 s, also past a short clip's duration (its
    detections there count as false positives); without it frames starting at or after the duration are
    dropped and the last ends at it. Durations come from the durations tsv. Only clips with at least one
    event are embedded and scored.
    Args:
        label_map: raw label (e.g. AudioSet MID) -> class name, applied before the normalisation.
        plot_dir, num_plots: save that many figures (spectrogram, scores, ground truth) of scored clips.
        strict: raise IncompleteEvaluationError naming the files when any is missing or unreadable.
    Returns:
        psds1, psds2, collar_f1, segment_f1 (fractions 0..1), num_clips, num_classes,
        `tools.eval.common.file_coverage`'s complete, num_files, num_scored, num_skipped, skipped, and
        protocol {long_audio, score_tiled_tail}, plots.
    """
    long_audio = long_audio_mode("sed", long_audio)
    audio_dir = require_dir(audio_dir, SED_FOLDER_LAYOUT)
    annotations = read_sed_tsv(tsv, durations_tsv, label_map)
    clip_ids = sorted(clip for clip, events in annotations.ground_truth.items() if events)
    if not clip_ids:
        raise ValueError(f"{tsv} has no clip with an event; nothing to evaluate")
    paths = find_audio_files(audio_dir, [annotations.audio_files.get(clip, clip) for clip in clip_ids])
    audio = embed_audio_files(model, paths, device, batch_size, num_workers, pad_mode="tile", long_audio=long_audio,
                              precision=precision)
    coverage = skipped_summary(audio)
    require_complete(coverage, tsv, strict)
    require_embeddings(audio, tsv)
    clip_ids = [clip_ids[index] for index in audio.indices]
    truth = {clip: annotations.ground_truth[clip] for clip in clip_ids}
    class_names = _classes_with_events(annotations.class_names, truth)
    class_embeds = embed_texts(model, [annotations.text_of(name) for name in class_names], device,
                               precision=precision)
    frame_scores = {clip: frame_text_similarity(frames, class_embeds).numpy() for clip, frames in zip(clip_ids, audio.frames,
                                                                                      strict=True)}
    durations = {clip: annotations.durations[clip] for clip in clip_ids}
    scores = sed_scores_from_frames(frame_scores, class_names, hop=FRAME_HOP_SECONDS, median_size=3,
                                    durations=None if score_tiled_tail else durations)
    result: dict[str, Any] = sed_metrics(scores, truth, durations)
    result.update(num_classes=len(class_names), **coverage,
                  protocol={"long_audio": long_audio, "score_tiled_tail": score_tiled_tail})
    if num_plots > 0 and plot_dir is not None:
        plotted = list(zip(clip_ids, audio.indices, strict=True))[:num_plots]
        result["plots"] = [str(plot_sed_clip(model, paths[index], scores[clip], truth[clip], durations[clip],
                                             Path(plot_dir) / f"{clip}.png")) for clip, index in plotted]
    return result


def _plotted_classes(scores: np.ndarray, class_names: Sequence[str], events: Sequence[tuple], limit: int = 6
                     ) -> list[int]:
    """Columns to draw: the clip's ground-truth classes, then the highest-scoring others, `limit` in all."""
    truth = list(dict.fromkeys(label for *_, label in events))
    columns = [class_names.index(label) for label in truth if label in class_names]
    for column in np.argsort(-scores.max(axis=0)):
        if len(columns) >= max(limit, len(truth)):
            break
        if column not in columns:
            columns.append(int(column))
    return columns


def plot_sed_clip(model: nn.Module, audio_path: Path, clip_scores, events: Sequence[tuple], duration: float,
                  out_path: Path) -> Path:
    """Figure of one SED clip: its log-mel, the smoothed class scores, the ground-truth events shaded.

    clip_scores: the sed_scores_eval DataFrame of the clip (onset, offset, one column per class).
    """
    class_names = [column for column in clip_scores.columns if column not in ("onset", "offset")]
    values = clip_scores[class_names].to_numpy()
    columns = _plotted_classes(values, class_names, events)
    waveform = torch.from_numpy(load_audio(audio_path, sample_rate=unwrap(model).sample_rate))
    return plot_frame_similarities(
        log_mel_spectrogram(model, waveform), values[:, columns], [class_names[c] for c in columns], out_path,
        sample_rate=unwrap(model).sample_rate, hop_length=unwrap(model).config.audio_args.hop_length,
        frame_hop=FRAME_HOP_SECONDS, duration=duration, ground_truth=events,
        title=f"{audio_path.name}: frame-class cosine (median filtered), ground truth shaded")


