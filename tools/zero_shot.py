"""Zero-shot evaluation protocols of MGA-CLAP, shared by the zero_shot_*.py scripts, the trainer and the
quickstart's report card.

Protocols (REFERENCE.md, "Evaluation protocols"); the audio handling of each is set here once:
- retrieval: captions preprocessed as in training (lower case, punctuation removed); audio zero-padded
  to 10 s; longer audio windowed (10 s windows, clip embedding = msc over all frames).
- classification: mono, 32 kHz, zero-padded to 10 s; VGGSound also cut to 10 s; prompts
  "<class> can be heard" (ESC-50, VGGSound) or the bare class name (UrbanSound8K), '_' -> ' ';
  prediction = argmax cosine(clip, prompt); ESC-50 / UrbanSound8K averaged over folds.
- sound event detection: classes = sorted event labels ('_' -> ' ', lower case), the class name itself is
  the text; audio tiled up to 10 s; audio longer than 10 s is NOT cut (the reference cuts it): it is
  encoded in 10 s windows and every frame is scored; score = cosine(frame, class) per frame, median
  filter of 3 frames, frames beyond the clip's duration (tiled audio) dropped; PSDS1, PSDS2, collar and
  segment F1 over the clips with at least one event.
- grounding: per phrase, sigmoid(cosine(phrase, frame)) per frame; audio tiled to 10 s (longer audio
  windowed); PSDS at 0.7 / 0.5 / 0.1 (tools.sed_metrics.grounding_psds).
Unreadable, empty or silent audio files are skipped: every result has `num_skipped` and `skipped`.
The scripts' command-line helpers are in tools/script_cli.py.
"""

from __future__ import annotations

import warnings
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
    read_esc50,
    read_grounding_json,
    read_retrieval_json,
    read_sed_tsv,
    read_urbansound8k,
    read_vggsound,
)
from data_handling.synthetic import corpus_exists
from data_handling.text_preprocess import preprocess_caption
from models.inference import (
    AudioEmbeddings,
    embed_audio_files,
    embed_phrases,
    embed_texts,
    log_mel_spectrogram,
    unwrap,
)
from tools.classification_metrics import classification_accuracy
from tools.plots import plot_frame_similarities
from tools.retrieval_metrics import retrieval_metrics
from tools.sed_metrics import FRAME_HOP, grounding_psds, sed_metrics, sed_scores_from_frames

REPO_ROOT = Path(__file__).resolve().parent.parent
SED_LAYOUT = ("SED layout: <root>/audio/<file> and <root>/metadata/eval.tsv (filename<TAB>onset<TAB>offset<TAB>"
              "event_label, or AudioSet-strong segment_id<TAB>start_time_seconds<TAB>end_time_seconds<TAB>"
              "label) with <root>/metadata/eval_durations.tsv (filename<TAB>duration)")
GROUNDING_LAYOUT = "AudioGrounding layout: <root>/test.json and <root>/audio/<audio_id>"
RETRIEVAL_LAYOUT = ("retrieval layout: <root>/test.json ({\"data\": [{\"audio\": path relative to the json, "
                    "\"caption_1\"..\"caption_5\"}]})")
VGGSOUND_LAYOUT = ("VGGSound layout: <root>/vggsound.csv (no header: youtube_id,start_seconds,label,split) and "
                   "<root>/audio/<youtube_id>_<start_seconds:06d>.wav|flac|mp3")
SYNTHETIC_SPLITS = {"retrieval": "retrieval", "sed": "sed", "grounding": "grounding", "esc50": "esc50"}


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


# ----------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------
def evaluate_retrieval(model: nn.Module, json_path: str | Path, device: str | torch.device | None = None,
                       batch_size: int = 32, num_workers: int = 0,
                       audio_root: str | Path | None = None) -> dict[str, Any]:
    """Text-to-audio and audio-to-text retrieval on a Clotho/AudioCaps-style json.

    Audio zero-padded to 10 s (longer audio windowed); captions preprocessed as in training. Listed
    audio files that are missing or unreadable are skipped with their captions (counted).
    Returns:
        retrieval_metrics keys ({t2a,a2t}_{R1,R5,R10,R50,medR,meanR,mAP10}), num_audio, num_captions,
        num_skipped, skipped.
    """
    items = read_retrieval_json(json_path, audio_root, check_audio=False)
    audio = embed_audio_files(model, [item.audio_path for item in items], device, batch_size, num_workers,
                              pad_mode="zero")
    require_embeddings(audio, json_path)
    kept = [items[index] for index in audio.indices]
    captions = [preprocess_caption(caption) for item in kept for caption in item.captions]
    text_to_audio = np.array([row for row, item in enumerate(kept) for _ in item.captions])
    text_embeds = embed_texts(model, captions, device)
    metrics: dict[str, Any] = retrieval_metrics(audio.clip @ text_embeds.T, text_to_audio)
    metrics.update(num_audio=len(kept), num_captions=len(captions), **skipped_summary(audio))
    return metrics


# ----------------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassificationProtocol:
    """Prompt and audio length of a classification dataset."""

    prompt_template: str
    max_seconds: float | None
    layout: str


CLASSIFICATION_PROTOCOLS = {
    "esc50": ClassificationProtocol("{} can be heard", None,
                                    "ESC-50 layout: <root>/meta/esc50.csv and <root>/audio/<filename>"),
    "urbansound8k": ClassificationProtocol("{}", None, "UrbanSound8K layout: <root>/metadata/UrbanSound8K.csv "
                                                       "and <root>/audio/fold<fold>/<slice_file_name>"),
    "vggsound": ClassificationProtocol("{} can be heard", 10.0, VGGSOUND_LAYOUT),
}


def evaluate_classification(model: nn.Module, items: Sequence[ClassificationItem], class_names: Sequence[str],
                            prompt_template: str, device: str | torch.device | None = None, batch_size: int = 32,
                            num_workers: int = 0, max_seconds: float | None = None) -> dict[str, Any]:
    """Zero-shot classification: argmax of cosine(clip embedding, prompt embedding).

    Audio zero-padded to 10 s, cut to `max_seconds` when given (VGGSound: 10), else longer audio windowed.
    Args:
        items: clips with class_index into class_names and fold (None: no folds).
        class_names: C names; '_' -> ' '; empty or duplicate names raise ValueError.
        prompt_template: '{}' is replaced by the class name, e.g. "{} can be heard" or "{}".
    Returns:
        accuracy (%, mean over folds when folds are given), per_fold, num_clips, num_classes,
        prompt_template, num_skipped, skipped.
    """
    prompts = make_prompts(check_class_names(class_names), prompt_template)
    if not items:
        raise ValueError("no clips to classify")
    audio = embed_audio_files(model, [item.audio_path for item in items], device, batch_size, num_workers,
                              pad_mode="zero", max_seconds=max_seconds)
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
    """(items, class_names, number of listed clips without a file) of esc50 / urbansound8k / vggsound."""
    if dataset not in CLASSIFICATION_PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(CLASSIFICATION_PROTOCOLS)}")
    root = require_dir(root, CLASSIFICATION_PROTOCOLS[dataset].layout)
    if dataset == "esc50":
        items, class_names = read_esc50(root, check_audio=False)
        return items, class_names, 0
    if dataset == "urbansound8k":
        items, class_names = read_urbansound8k(root, check_audio=False)
        return items, class_names, 0
    vggsound = read_vggsound(root / "vggsound.csv", require_dir(root / "audio", VGGSOUND_LAYOUT))
    return vggsound.items, vggsound.class_names, vggsound.num_missing


def evaluate_classification_dataset(model: nn.Module, dataset: str, root: str | Path,
                                    device: str | torch.device | None = None, batch_size: int = 32,
                                    num_workers: int = 0) -> dict[str, Any]:
    """Read a dataset from its layout and evaluate it with its published protocol."""
    items, class_names, num_missing = load_classification_set(dataset, root)
    protocol = CLASSIFICATION_PROTOCOLS[dataset]
    result = evaluate_classification(model, items, class_names, protocol.prompt_template, device, batch_size,
                                     num_workers, protocol.max_seconds)
    result.update(dataset=dataset, num_listed_without_file=num_missing)
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
                 num_plots: int = 0) -> dict[str, Any]:
    """Zero-shot sound event detection (AudioSet-strong / DESED / UrbanSED protocol).

    Scores: cosine(frame embedding, class text embedding), [T, C] per clip, median filter 3, hop 10 / 32 s.
    Audio tiled up to 10 s; audio longer than 10 s is windowed (every frame scored), not cut. Only clips
    with at least one event are embedded and scored.
    Args:
        label_map: raw label (e.g. AudioSet MID) -> class name, applied before the normalisation.
        plot_dir, num_plots: save that many figures (spectrogram, scores, ground truth) of scored clips.
    Returns:
        psds1, psds2, collar_f1, segment_f1 (0..1), num_clips, num_classes, num_skipped, skipped, plots.
    """
    audio_dir = require_dir(audio_dir, SED_LAYOUT)
    annotations = read_sed_tsv(tsv, durations_tsv, label_map)
    clip_ids = sorted(clip for clip, events in annotations.ground_truth.items() if events)
    if not clip_ids:
        raise ValueError(f"{tsv} has no clip with an event; nothing to evaluate")
    paths = resolve_audio_paths(audio_dir, [annotations.audio_files.get(clip, clip) for clip in clip_ids])
    audio = embed_audio_files(model, paths, device, batch_size, num_workers, pad_mode="tile")
    require_embeddings(audio, tsv)
    clip_ids = [clip_ids[index] for index in audio.indices]
    truth = {clip: annotations.ground_truth[clip] for clip in clip_ids}
    class_names = _classes_with_events(annotations.class_names, truth)
    class_embeds = embed_texts(model, class_names, device)
    frame_scores = {clip: (frames @ class_embeds.T).numpy() for clip, frames in zip(clip_ids, audio.frames,
                                                                                      strict=True)}
    durations = {clip: annotations.durations[clip] for clip in clip_ids}
    scores = sed_scores_from_frames(frame_scores, class_names, hop=FRAME_HOP, median_size=3, durations=durations)
    result: dict[str, Any] = sed_metrics(scores, truth, durations)
    result.update(num_classes=len(class_names), **skipped_summary(audio))
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
def evaluate_grounding(model: nn.Module, json_path: str | Path, audio_dir: str | Path,
                       device: str | torch.device | None = None, batch_size: int = 32,
                       num_workers: int = 0) -> dict[str, Any]:
    """Zero-shot text-to-audio grounding (AudioGrounding protocol).

    Per phrase: sigmoid(cosine(phrase embedding, frame embedding)) per frame; audio tiled to 10 s
    (longer audio windowed); durations are those of the audio files. Phrases whose audio is skipped
    are left out (counted in num_phrases_skipped).
    Returns:
        psds_0.7, psds_0.5, psds_0.1, num_phrases, num_phrases_without_segments, num_phrases_skipped,
        num_audio, num_skipped, skipped.
    """
    audio_dir = require_dir(audio_dir, GROUNDING_LAYOUT)
    phrases = read_grounding_json(json_path)
    audio_ids = sorted({phrase.audio_id for phrase in phrases})
    audio = embed_audio_files(model, resolve_audio_paths(audio_dir, audio_ids), device, batch_size, num_workers,
                              pad_mode="tile")
    require_embeddings(audio, json_path)
    row_of = {audio_ids[index]: row for row, index in enumerate(audio.indices)}
    kept = [phrase for phrase in phrases if phrase.audio_id in row_of]
    phrase_embeds = embed_phrases(model, [phrase.phrase for phrase in kept], device)
    probs = {phrase.phrase_id: torch.sigmoid(audio.frames[row_of[phrase.audio_id]] @ embed).numpy()
             for phrase, embed in zip(kept, phrase_embeds, strict=True)}
    truth = {phrase.phrase_id: phrase.segments for phrase in kept}
    durations = {phrase.phrase_id: audio.durations[row_of[phrase.audio_id]] for phrase in kept}
    result: dict[str, Any] = grounding_psds(probs, truth, durations, hop=FRAME_HOP)
    result.update(num_phrases_skipped=len(phrases) - len(kept), num_audio=len(row_of), **skipped_summary(audio))
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


def sed_files(root: str | Path) -> tuple[Path, Path, Path]:
    """(audio folder, events tsv, durations tsv) of a SED dataset folder."""
    root = require_dir(root, SED_LAYOUT)
    return root / "audio", root / "metadata" / "eval.tsv", root / "metadata" / "eval_durations.tsv"


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
    sed_audio, sed_tsv, sed_durations = sed_files(task_root(root, "sed"))
    grounding = task_root(root, "grounding")
    return {
        "retrieval": evaluate_retrieval(model, task_root(root, "retrieval") / "test.json", **options),
        "classification": evaluate_classification_dataset(model, "esc50", task_root(root, "esc50"), **options),
        "sed": evaluate_sed(model, sed_audio, sed_tsv, sed_durations, **options),
        "grounding": evaluate_grounding(model, grounding / "test.json", grounding / "audio", **options),
    }
