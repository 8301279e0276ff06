"""What every zero-shot protocol shares: skipped-file reports, dataset checks, prompts, long-audio modes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.windowing import LONG_AUDIO_MODES
from tools.eval.embedding import AudioEmbeddings

DEFAULT_LONG_AUDIO = {"retrieval": "crop", "sed": "cut", "grounding": "window"}
"""Audio longer than 10 s when eval.long_audio is null: the reference's handling (retrieval: a random crop;
SED: the first 10 s); grounding, where the reference's branch fails on such audio: every 10 s window.
Classification datasets carry their own (tools.eval.classification.CLASSIFICATION_PROTOCOLS)."""


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


def make_prompts(class_names: Sequence[str], prompt_template: str) -> list[str]:
    """One prompt per class: prompt_template with '{}' replaced by the class name."""
    if prompt_template.count("{}") != 1:
        raise ValueError(f"prompt_template must contain '{{}}' once (where the class name goes), "
                         f"got {prompt_template!r}")
    return [prompt_template.replace("{}", name) for name in class_names]


def long_audio_mode(task: str, long_audio: str | None, default: str | None = None) -> str:
    """The long-audio handling of a task: `long_audio` when given, else `default`, else DEFAULT_LONG_AUDIO[task].

    A crop is refused for SED and grounding, whose timestamps count from the file's start.
    """
    mode = long_audio or default or DEFAULT_LONG_AUDIO[task]
    if mode not in LONG_AUDIO_MODES:
        raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES} (or None: the task's default), got {mode!r}")
    if mode == "crop" and task in ("sed", "grounding"):
        raise ValueError(f"long_audio 'crop' does not suit {task}: its timestamps count from the start of the file; "
                         f"use 'cut' (the first 10 s) or 'window' (every 10 s window)")
    return mode


