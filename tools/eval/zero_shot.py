"""Zero-shot evaluation protocols of MGA-CLAP, shared by the zero_shot_*.py scripts, the trainer and the
quickstart's report card.

Protocols (REFERENCE.md, "Evaluation protocols"); the audio handling of each is set here once, its defaults
the reference's, our extensions switches (tools.config.EvalArgs):
- retrieval: one row per caption, captions preprocessed as in training
  (data_handling.text_preprocess.preprocess_caption); clips numbered by their json position. A clip longer
  than 10 s is evaluated on one random 10 s crop, seeded (eval.crop_seed; eval.long_audio: window encodes
  every window instead); a shorter clip is zero-padded to the longest clip of its first caption's 32-caption
  batch, as the reference's batches are (`reference_padding_spans`; eval.retrieval_padding: fixed pads
  every clip to 10 s).
- classification: mono, 32 kHz, zero-padded to 10 s; VGGSound cut to 10 s (longer ESC-50 / UrbanSound8K
  audio windowed); prompts "<class> can be heard" (ESC-50, VGGSound) or the bare class name
  (UrbanSound8K), '_' -> ' '; prediction = argmax cosine(clip, prompt); ESC-50 / UrbanSound8K averaged
  over folds.
- sound event detection: classes = sorted event labels ('_' -> ' ', lower case), the class name itself is
  the text; audio tiled up to 10 s, longer audio cut to its first 10 s (eval.long_audio: window scores
  every window); score = cosine(frame, class) per frame, median filter of 3 frames, all 32 frames scored
  with timestamps i * 10 / 32, also the tiled tail of a short clip (eval.score_tiled_tail: false drops
  it); durations and ground truth from the tsv files; PSDS1, PSDS2, collar and segment F1 over the clips
  with at least one event.
- grounding: per phrase, sigmoid(cosine(phrase, frame)) per frame; audio tiled to 10 s (longer audio
  windowed: the reference cannot run it); durations from the dataset's duration file when it has one,
  else the audio's; detections not clipped to the duration (eval.score_tiled_tail: false clips them);
  PSDS at 0.7 / 0.5 / 0.1 (tools.eval.sed_metrics.grounding_psds).
Files that cannot be read (missing, undecodable, empty) are skipped: every result has `num_skipped` and
`skipped`. Silent files are scored like any other. Units: keys ending in `_percent` are percentages
(0..100); PSDS and F1 are fractions (0..1); medR and meanR are ranks.
The scripts' command-line helpers are in tools/eval/cli.py.
"""

from __future__ import annotations

import warnings
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_handling.audio_io import load_audio
from data_handling.eval_datasets import (
    AUDIO_EXTENSIONS,
    ClassificationItem,
    clip_id_from_filename,
    find_eval_files,
    read_esc50,
    read_grounding_durations,
    read_grounding_json,
    read_retrieval_json,
    read_sed_tsv,
    read_urbansound8k,
    read_vggsound,
    read_vggsound_test_csv,
)
from data_handling.synthetic import corpus_exists
from data_handling.text_preprocess import preprocess_caption
from models.inference import (
    LONG_AUDIO_MODES,
    AudioEmbeddings,
    embed_audio_files,
    embed_phrases,
    embed_texts,
    log_mel_spectrogram,
    unwrap,
)
from tools.eval.classification_metrics import classification_accuracy
from tools.eval.plots import plot_frame_similarities
from tools.eval.retrieval_metrics import retrieval_metrics
from tools.eval.sed_metrics import FRAME_HOP, grounding_psds, sed_metrics, sed_scores_from_frames

REPO_ROOT = Path(__file__).resolve().parents[2]
SED_LAYOUT = ("SED layout: <root>/audio/<file> and <root>/metadata/eval.tsv (filename<TAB>onset<TAB>offset<TAB>"
              "event_label, or AudioSet-strong segment_id<TAB>start_time_seconds<TAB>end_time_seconds<TAB>"
              "label) with <root>/metadata/eval_durations.tsv (filename<TAB>duration)")
GROUNDING_LAYOUT = "AudioGrounding layout: <root>/test.json and <root>/audio/<audio_id>"
SYNTHETIC_SPLITS = {"retrieval": "retrieval", "sed": "sed", "grounding": "grounding", "esc50": "esc50"}

REFERENCE_ROWS_PER_BATCH = 32
"""Caption rows per batch of the reference's retrieval evaluation; each batch is zero-padded to its longest clip."""
DEFAULT_LONG_AUDIO = {"retrieval": "crop", "sed": "cut", "vggsound": "cut",
                      "esc50": "window", "urbansound8k": "window", "grounding": "window"}
"""Audio longer than 10 s when eval.long_audio is null: the reference's handling (retrieval: a random crop;
SED, VGGSound: the first 10 s); where the reference cannot run such audio (ESC-50 and UrbanSound8K reject
it, grounding's branch fails), every 10 s window."""
RETRIEVAL_PADDINGS = ("batch", "fixed")


# ----------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------
def skipped_summary(audio: AudioEmbeddings) -> dict[str, Any]:
    """num_skipped and skipped [{"path", "reason"}] of an embedding run."""
    return {"num_skipped": audio.num_skipped,
            "skipped": [{"path": path, "reason": reason} for path, reason in audio.skipped]}


def require_embeddings(audio: AudioEmbeddings, source: str | Path) -> None:
    """Raise when no file of `source` could be embedded."""
    if audio.clip.shape[0] == 0:
        first = f" (first: {audio.skipped[0][0]}: {audio.skipped[0][1]})" if audio.skipped else ""
        raise FileNotFoundError(f"no audio file of {source} could be read: {audio.num_skipped} skipped{first}; "
                                f"check the audio folder and the file names in the metadata")


def require_dir(path: str | Path, layout: str) -> Path:
    """Path of an existing folder, else FileNotFoundError naming it and the expected layout."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {path} not found; expected {layout}")
    return path


def resolve_audio_paths(audio_dir: Path, names: Sequence[str]) -> list[Path]:
    """Paths of audio files named as in metadata; a name without (or with another) extension is looked
    up by its stem among the folder's .wav/.flac/.mp3/.ogg files. Unresolved names keep their direct
    path (the loader then reports them as missing and they are skipped)."""
    stems: dict[str, Path] | None = None
    paths = []
    for name in names:
        direct = audio_dir / name
        if not direct.is_file():
            if stems is None:
                stems = {path.stem: path for path in sorted(audio_dir.iterdir(), reverse=True)
                         if path.suffix.lower() in AUDIO_EXTENSIONS}
            direct = stems.get(clip_id_from_filename(name), direct)
        paths.append(direct)
    return paths


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """'_' -> ' ' and whitespace collapsed; empty or duplicate names (after that) raise ValueError."""
    names = [" ".join(str(name).replace("_", " ").split()) for name in class_names]
    empty = [position for position, name in enumerate(names) if not name]
    if empty:
        raise ValueError(f"class names at positions {empty[:10]} are empty; every class needs a name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"class names {duplicates[:10]} appear more than once (after '_' -> ' '); merge the "
                         f"classes or rename them so that every prompt is distinct")
    return names


def make_prompts(class_names: Sequence[str], prompt_template: str) -> list[str]:
    """One prompt per class: prompt_template with '{}' replaced by the class name."""
    if prompt_template.count("{}") != 1:
        raise ValueError(f"prompt_template must contain '{{}}' once (where the class name goes), "
                         f"got {prompt_template!r}")
    return [prompt_template.replace("{}", name) for name in class_names]


def long_audio_mode(task: str, long_audio: str | None) -> str:
    """The long-audio handling of a task: `long_audio` when given, else DEFAULT_LONG_AUDIO[task].

    A crop is refused for SED and grounding, whose timestamps count from the file's start.
    """
    mode = long_audio or DEFAULT_LONG_AUDIO[task]
    if mode not in LONG_AUDIO_MODES:
        raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES} (or None: the task's default), got {mode!r}")
    if mode == "crop" and task in ("sed", "grounding"):
        raise ValueError(f"long_audio 'crop' does not suit {task}: its timestamps count from the start of the file; "
                         f"use 'cut' (the first 10 s) or 'window' (every 10 s window)")
    return mode


# ----------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------
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
                       batch_size: int = 32, num_workers: int = 0, audio_root: str | Path | None = None,
                       long_audio: str | None = None, crop_seed: int = 0, padding: str = "batch",
                       search_roots: Sequence[str | Path] = ()) -> dict[str, Any]:
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
    Returns:
        retrieval_metrics keys ({t2a,a2t}_{R1,R5,R10,R50,mAP10}_percent, {t2a,a2t}_{medR,meanR}), num_audio,
        num_captions, num_skipped, skipped, protocol {long_audio, crop_seed, padding}.
    """
    if padding not in RETRIEVAL_PADDINGS:
        raise ValueError(f"padding must be one of {RETRIEVAL_PADDINGS}, got {padding!r}")
    long_audio = long_audio_mode("retrieval", long_audio)
    items = read_retrieval_json(json_path, audio_root, check_audio=False, search_roots=search_roots)
    spans = reference_padding_spans([len(item.captions) for item in items]) if padding == "batch" else None
    audio = embed_audio_files(model, [item.audio_path for item in items], device, batch_size, num_workers,
                              pad_mode="zero", long_audio=long_audio, crop_seed=crop_seed, padding_spans=spans)
    require_embeddings(audio, json_path)
    kept = [items[index] for index in audio.indices]
    captions = [preprocess_caption(caption) for item in kept for caption in item.captions]
    text_to_audio = np.array([row for row, item in enumerate(kept) for _ in item.captions])
    text_embeds = embed_texts(model, captions, device)
    metrics: dict[str, Any] = retrieval_metrics(audio.clip @ text_embeds.T, text_to_audio)
    metrics.update(num_audio=len(kept), num_captions=len(captions), **skipped_summary(audio),
                   protocol={"long_audio": long_audio, "crop_seed": crop_seed, "padding": padding})
    return metrics


# ----------------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassificationProtocol:
    """Prompt of a classification dataset (its long-audio handling: DEFAULT_LONG_AUDIO)."""

    prompt_template: str


CLASSIFICATION_PROTOCOLS = {
    "esc50": ClassificationProtocol("{} can be heard"),
    "urbansound8k": ClassificationProtocol("{}"),
    "vggsound": ClassificationProtocol("{} can be heard"),
}


def evaluate_classification(model: nn.Module, items: Sequence[ClassificationItem], class_names: Sequence[str],
                            prompt_template: str, device: str | torch.device | None = None, batch_size: int = 32,
                            num_workers: int = 0, long_audio: str = "window", crop_seed: int = 0
                            ) -> dict[str, Any]:
    """Zero-shot classification: argmax of cosine(clip embedding, prompt embedding).

    Audio zero-padded to 10 s; longer audio cut, cropped (seeded by crop_seed and the item's position) or
    windowed (`long_audio`).
    Args:
        items: clips with class_index into class_names and fold (None: no folds).
        class_names: C names; '_' -> ' '; empty or duplicate names raise ValueError.
        prompt_template: '{}' is replaced by the class name, e.g. "{} can be heard" or "{}".
    Returns:
        accuracy_percent (mean over folds when folds are given), per_fold_accuracy_percent, num_clips,
        num_classes, prompt_template, num_skipped, skipped.
    """
    prompts = make_prompts(check_class_names(class_names), prompt_template)
    if not items:
        raise ValueError("no clips to classify")
    audio = embed_audio_files(model, [item.audio_path for item in items], device, batch_size, num_workers,
                              pad_mode="zero", long_audio=long_audio, crop_seed=crop_seed)
    require_embeddings(audio, "the classification set")
    kept = [items[index] for index in audio.indices]
    prompt_embeds = embed_texts(model, prompts, device)
    targets = np.array([item.class_index for item in kept])
    folds = [item.fold for item in kept]
    result = classification_accuracy(audio.clip @ prompt_embeds.T, targets,
                                     None if any(fold is None for fold in folds) else np.array(folds))
    result.update(num_classes=len(prompts), prompt_template=prompt_template, **skipped_summary(audio))
    return result


def load_classification_set(dataset: str, root: str | Path) -> tuple[list[ClassificationItem], list[str], int]:
    """(items, class_names, number of listed clips without a file) of esc50 / urbansound8k / vggsound.

    `root` is the dataset's own folder or the reference's parent folder (`find_eval_files`).
    """
    if dataset not in CLASSIFICATION_PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(CLASSIFICATION_PROTOCOLS)}")
    files = find_eval_files(root, dataset)
    if dataset == "esc50":
        items, class_names = read_esc50(files.folder, check_audio=False)
        return items, class_names, 0
    if dataset == "urbansound8k":
        items, class_names = read_urbansound8k(files.folder, check_audio=False)
        return items, class_names, 0
    if "test_csv" in files.paths:
        vggsound = read_vggsound_test_csv(files.paths["test_csv"], files.paths["audio"])
    else:
        vggsound = read_vggsound(files.paths["csv"], files.paths["audio"])
    return vggsound.items, vggsound.class_names, vggsound.num_missing


def evaluate_classification_dataset(model: nn.Module, dataset: str, root: str | Path,
                                    device: str | torch.device | None = None, batch_size: int = 32,
                                    num_workers: int = 0, long_audio: str | None = None, crop_seed: int = 0
                                    ) -> dict[str, Any]:
    """Read a dataset from its layout and evaluate it with its published protocol."""
    items, class_names, num_missing = load_classification_set(dataset, root)
    protocol = CLASSIFICATION_PROTOCOLS[dataset]
    long_audio = long_audio_mode(dataset, long_audio)
    result = evaluate_classification(model, items, class_names, protocol.prompt_template, device, batch_size,
                                     num_workers, long_audio, crop_seed)
    result.update(dataset=dataset, num_listed_without_file=num_missing, protocol={"long_audio": long_audio})
    return result


# ----------------------------------------------------------------------------------------------------
# Sound event detection
# ----------------------------------------------------------------------------------------------------
def _classes_with_events(class_names: Sequence[str], truth: Mapping[str, list]) -> list[str]:
    """The classes that still have an event once skipped clips are gone (all of them, normally)."""
    present = {label for events in truth.values() for *_, label in events}
    kept = [name for name in class_names if name in present]
    if len(kept) < len(class_names):
        warnings.warn(f"{len(class_names) - len(kept)} class(es) lost every event with the skipped audio files "
                      f"and are not scored: {sorted(set(class_names) - present)[:10]}", UserWarning, stacklevel=3)
    return kept


def evaluate_sed(model: nn.Module, audio_dir: str | Path, tsv: str | Path, durations_tsv: str | Path,
                 device: str | torch.device | None = None, batch_size: int = 32, num_workers: int = 0,
                 label_map: Mapping[str, str] | None = None, plot_dir: str | Path | None = None,
                 num_plots: int = 0, long_audio: str | None = None, score_tiled_tail: bool = True
                 ) -> dict[str, Any]:
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
    Returns:
        psds1, psds2, collar_f1, segment_f1 (fractions 0..1), num_clips, num_classes, num_skipped, skipped,
        protocol {long_audio, score_tiled_tail}, plots.
    """
    long_audio = long_audio_mode("sed", long_audio)
    audio_dir = require_dir(audio_dir, SED_LAYOUT)
    annotations = read_sed_tsv(tsv, durations_tsv, label_map)
    clip_ids = sorted(clip for clip, events in annotations.ground_truth.items() if events)
    if not clip_ids:
        raise ValueError(f"{tsv} has no clip with an event; nothing to evaluate")
    paths = resolve_audio_paths(audio_dir, [annotations.audio_files.get(clip, clip) for clip in clip_ids])
    audio = embed_audio_files(model, paths, device, batch_size, num_workers, pad_mode="tile", long_audio=long_audio)
    require_embeddings(audio, tsv)
    clip_ids = [clip_ids[index] for index in audio.indices]
    truth = {clip: annotations.ground_truth[clip] for clip in clip_ids}
    class_names = _classes_with_events(annotations.class_names, truth)
    class_embeds = embed_texts(model, class_names, device)
    frame_scores = {clip: (frames @ class_embeds.T).numpy() for clip, frames in zip(clip_ids, audio.frames,
                                                                                      strict=True)}
    durations = {clip: annotations.durations[clip] for clip in clip_ids}
    scores = sed_scores_from_frames(frame_scores, class_names, hop=FRAME_HOP, median_size=3,
                                    durations=None if score_tiled_tail else durations)
    result: dict[str, Any] = sed_metrics(scores, truth, durations)
    result.update(num_classes=len(class_names), **skipped_summary(audio),
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
        frame_hop=FRAME_HOP, duration=duration, ground_truth=events,
        title=f"{audio_path.name}: frame-class cosine (median filtered), ground truth shaded")


# ----------------------------------------------------------------------------------------------------
# Text-to-audio grounding
# ----------------------------------------------------------------------------------------------------
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
                       device: str | torch.device | None = None, batch_size: int = 32,
                       num_workers: int = 0, durations_file: str | Path | None = None,
                       long_audio: str | None = None, score_tiled_tail: bool = True) -> dict[str, Any]:
    """Zero-shot text-to-audio grounding (AudioGrounding protocol).

    Per phrase: sigmoid(cosine(phrase embedding, frame embedding)) per frame; audio tiled to 10 s, longer
    audio windowed (default) or cut. Durations: `durations_file` (AudioGrounding's duration.csv, as the
    reference reads it) when given, else those of the audio files. With `score_tiled_tail` (the reference)
    detections are not clipped to the duration; without it they are. Phrases whose audio is skipped are
    left out (counted in num_phrases_skipped).
    Returns:
        psds_0.7, psds_0.5, psds_0.1 (fractions 0..1), num_phrases, num_phrases_without_segments,
        num_phrases_skipped, num_audio, num_skipped, skipped, protocol {long_audio, score_tiled_tail}.
    """
    long_audio = long_audio_mode("grounding", long_audio)
    audio_dir = require_dir(audio_dir, GROUNDING_LAYOUT)
    phrases = read_grounding_json(json_path)
    audio_ids = sorted({phrase.audio_id for phrase in phrases})
    audio = embed_audio_files(model, resolve_audio_paths(audio_dir, audio_ids), device, batch_size, num_workers,
                              pad_mode="tile", long_audio=long_audio)
    require_embeddings(audio, json_path)
    row_of = {audio_ids[index]: row for row, index in enumerate(audio.indices)}
    kept = [phrase for phrase in phrases if phrase.audio_id in row_of]
    phrase_embeds = embed_phrases(model, [phrase.phrase for phrase in kept], device)
    probs = {phrase.phrase_id: torch.sigmoid(audio.frames[row_of[phrase.audio_id]] @ embed).numpy()
             for phrase, embed in zip(kept, phrase_embeds, strict=True)}
    truth = {phrase.phrase_id: phrase.segments for phrase in kept}
    audio_durations = _grounding_durations(audio_ids, audio, durations_file)
    durations = {phrase.phrase_id: audio_durations[phrase.audio_id] for phrase in kept}
    result: dict[str, Any] = grounding_psds(probs, truth, durations, hop=FRAME_HOP,
                                            clip_to_duration=not score_tiled_tail)
    result.update(num_phrases_skipped=len(phrases) - len(kept), num_audio=len(row_of), **skipped_summary(audio),
                  protocol={"long_audio": long_audio, "score_tiled_tail": score_tiled_tail})
    return result


# ----------------------------------------------------------------------------------------------------
# Dataset roots and the synthetic corpus
# ----------------------------------------------------------------------------------------------------
def task_root(root: str | Path, task: str) -> Path:
    """The dataset folder of a task: `root` itself, or its split folder when `root` is a synthetic corpus.

    task: retrieval | sed | grounding | esc50 | urbansound8k | vggsound.
    """
    root = Path(root)
    if corpus_exists(root):
        if task not in SYNTHETIC_SPLITS:
            raise FileNotFoundError(f"{root} is the synthetic corpus, which has no {task} split (it has "
                                    f"{sorted(SYNTHETIC_SPLITS)}); pass --data-root with the {task} dataset folder")
        return root / SYNTHETIC_SPLITS[task]
    return root


def synthetic_report_card(model: nn.Module, synthetic_root: str | Path, device: str | torch.device | None = None,
                          batch_size: int = 32, num_workers: int = 0) -> dict[str, dict[str, Any]]:
    """Zero-shot results on the synthetic corpus's test splits, with the scripts' protocols and defaults.

    Returns:
        {"retrieval": evaluate_retrieval, "classification": ESC-50 protocol on esc50/, "sed": evaluate_sed,
         "grounding": evaluate_grounding}.
    """
    root = Path(synthetic_root)
    if not corpus_exists(root):
        raise FileNotFoundError(f"no complete synthetic corpus at {root} (its DONE marker is missing); "
                                f"generate it with: python -m data_handling.synthetic --out {root}")
    options = {"device": device, "batch_size": batch_size, "num_workers": num_workers}
    sed = find_eval_files(task_root(root, "sed"), "sed").paths
    grounding = find_eval_files(task_root(root, "grounding"), "grounding").paths
    return {
        "retrieval": evaluate_retrieval(model, find_eval_files(task_root(root, "retrieval"), "retrieval").paths["json"],
                                        **options),
        "classification": evaluate_classification_dataset(model, "esc50", task_root(root, "esc50"), **options),
        "sed": evaluate_sed(model, sed["audio"], sed["events"], sed["durations"], **options),
        "grounding": evaluate_grounding(model, grounding["json"], grounding["audio"],
                                        durations_file=grounding.get("durations"), **options),
    }
