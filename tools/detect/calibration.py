"""Thresholds per query from a labelled development set: the best collar-based F1 of each class.

The development set is in the DESED / AudioSet-strong layout (events tsv filename, onset, offset,
event_label; optional durations tsv; an audio folder). The detector runs on it with the classes as queries,
and sed_scores_eval's `collar_based.best_fscore` (collar 0.2 s, offset rate 0.2: the SED protocol's) on the
decision curves gives each class the threshold of its best F1. Since the decision curves already include the
median filter, gap joining and minimum length (tools/detect/events.py), that threshold is the best one for
the detector as configured; the file stores those settings, and detect.py refuses other ones with it.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from data_handling.audio_io import AudioReadError, audio_duration
from data_handling.audio_paths import find_audio_files
from data_handling.eval_sets.sed import SED_EVENT_COLUMNS, SED_EVENTS_LAYOUT, read_sed_tsv
from data_handling.metadata_files import METADATA_ENCODING, read_tsv_columns
from tools.detect.detector import StreamOptions, detect_files, resolve_thresholds
from tools.detect.events import DecisionSettings
from tools.detect.streaming import SkippedFile
from tools.eval.cli import write_json
from tools.eval.common import file_coverage, require_complete
from tools.eval.sed_metrics import COLLAR_ARGS, merge_same_class_events

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from sed_scores_eval import collar_based

CALIBRATION_FORMAT = "mga-clap-detection-calibration"
CALIBRATION_VERSION = 1
AVERAGES = ("macro_average", "micro_average")
"""Entries of sed_scores_eval's per-class results that are not classes."""


@dataclass
class LabelledSet:
    """A labelled set in the DESED layout: audio paths in clip order, strong labels, durations, classes."""

    tsv: Path
    clip_ids: list[str]
    paths: list[Path]
    ground_truth: dict[str, list[tuple[float, float, str]]]
    durations: dict[str, float]
    class_names: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def num_events(self) -> int:
        return sum(len(events) for events in self.ground_truth.values())


def default_audio_dir(tsv: Path) -> Path:
    """<root>/audio for <root>/metadata/x.tsv (the SED layout), else audio/ beside the tsv."""
    return tsv.parent.parent / "audio" if tsv.parent.name == "metadata" else tsv.parent / "audio"


def default_durations_tsv(tsv: Path) -> Path | None:
    """<stem>_durations.tsv beside the tsv (eval.tsv -> eval_durations.tsv), when it exists."""
    candidate = tsv.with_name(f"{tsv.stem}_durations.tsv")
    return candidate if candidate.is_file() else None


def _durations_from_headers(tsv: Path, audio_dir: Path, folder: Path) -> tuple[Path, list[dict[str, str]]]:
    """Write a durations tsv for the clips of `tsv` from their audio headers; unreadable files are listed."""
    names = list(dict.fromkeys(row[0] for row in read_tsv_columns(tsv, "SED tsv", SED_EVENT_COLUMNS,
                                                                  SED_EVENTS_LAYOUT)))
    rows, skipped = [], []
    for name, path in zip(names, find_audio_files(audio_dir, names), strict=True):
        try:
            rows.append(f"{name}\t{audio_duration(path)}")
        except AudioReadError as error:
            skipped.append({"path": str(path), "reason": error.reason})
    durations = folder / "durations.tsv"
    durations.write_text("filename\tduration\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return durations, skipped


def _drop_rows_of(tsv: Path, missing: set[str], folder: Path) -> Path:
    """A copy of the events tsv without the rows of the given file names."""
    lines = tsv.read_text(encoding=METADATA_ENCODING).splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split("\t", 1)[0] not in missing]
    copy = folder / "events.tsv"
    copy.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return copy


def read_labelled_set(tsv: str | Path, audio_dir: str | Path | None = None,
                      durations_tsv: str | Path | None = None) -> LabelledSet:
    """A labelled development or test set (DESED / AudioSet-strong tsv, as the SED protocol reads it).

    audio_dir defaults to `default_audio_dir(tsv)`; durations to `default_durations_tsv(tsv)`, else the
    audio headers (files whose header cannot be read are left out and listed in `skipped`). Every clip
    listed is kept, also those without events (their detections are false positives).
    Raises:
        FileNotFoundError / ValueError: missing files or folders, or a set without any event.
    """
    tsv = Path(tsv)
    audio_dir = Path(audio_dir) if audio_dir is not None else default_audio_dir(tsv)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"audio folder {audio_dir} of {tsv} not found; pass --audio-dir (the SED layout is "
                                f"<root>/audio/ beside <root>/metadata/<name>.tsv)")
    durations_tsv = Path(durations_tsv) if durations_tsv is not None else default_durations_tsv(tsv)
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        if durations_tsv is None:
            durations_tsv, skipped = _durations_from_headers(tsv, audio_dir, Path(folder))
            tsv_read = _drop_rows_of(tsv, {Path(entry["path"]).name for entry in skipped}, Path(folder))
        else:
            tsv_read = tsv
        annotations = read_sed_tsv(tsv_read, durations_tsv)
    if not any(annotations.ground_truth.values()):
        raise ValueError(f"{tsv} has no event (rows filename<TAB>onset<TAB>offset<TAB>event_label); a labelled "
                         f"set needs at least one event to calibrate or score against")
    clip_ids = sorted(annotations.ground_truth)
    paths = find_audio_files(audio_dir, [annotations.audio_files.get(clip, clip) for clip in clip_ids])
    return LabelledSet(tsv, clip_ids, paths, annotations.ground_truth, annotations.durations,
                       annotations.class_names, skipped)


def scored_truth(labelled: LabelledSet, clip_ids: Sequence[str]) -> dict[str, list[tuple[float, float, str]]]:
    """Ground truth of the scored clips (same-class overlaps merged, as sed_scores_eval needs them)."""
    return {clip: merge_same_class_events(labelled.ground_truth[clip]) for clip in clip_ids}


def collar_f1(scores: Mapping[str, pd.DataFrame], truth: Mapping[str, list], thresholds: Mapping[str, float]
              ) -> dict[str, Any]:
    """Collar-based F1 (sed_scores_eval, collar 0.2 s, offset rate 0.2) at the given thresholds:
    macro average and per class (fractions 0..1)."""
    f_scores = collar_based.fscore(scores, truth, dict(thresholds), **COLLAR_ARGS)[0]
    return {"macro": float(f_scores["macro_average"]),
            "per_class": {label: float(value) for label, value in f_scores.items() if label not in AVERAGES}}


def best_collar_thresholds(scores: Mapping[str, pd.DataFrame], truth: Mapping[str, list]
                           ) -> tuple[dict[str, float], dict[str, float]]:
    """Per class, the threshold of the best collar-based F1 and that F1 (sed_scores_eval.best_fscore)."""
    f_best, _, _, thresholds, _ = collar_based.best_fscore(scores, truth, **COLLAR_ARGS)
    return ({label: float(value) for label, value in thresholds.items() if label not in AVERAGES},
            {label: float(value) for label, value in f_best.items() if label not in AVERAGES})


def calibrate(model: nn.Module, labelled: LabelledSet, settings: DecisionSettings | None = None,
              default_threshold: float | None = None, device=None, options: StreamOptions | None = None,
              strict: bool = False) -> dict[str, Any]:
    """Thresholds per class of the labelled set maximising the collar-based F1 on it.

    Returns:
        thresholds {class: threshold}, default_threshold, settings, collar_f1 {before: at the default
        threshold, after: at the calibrated ones} with macro and per-class values, not_calibrated (classes
        whose best F1 is 0: they keep the default), num_clips, num_events, and `tools.eval.common.file_coverage`'s
        complete, num_files, num_scored, num_skipped, skipped (with `strict`, a missing or unreadable file
        raises IncompleteEvaluationError naming the files instead).
    """
    settings = settings or DecisionSettings()
    labels = labelled.class_names
    default = resolve_thresholds(labels[:1], None, settings, default_threshold)[0]
    scores: dict[str, pd.DataFrame] = {}
    skipped = list(labelled.skipped)
    clip_of = dict(zip(labelled.paths, labelled.clip_ids, strict=True))
    for result in detect_files(model, labelled.paths, labels, settings, None, default, device, options):
        if isinstance(result, SkippedFile):
            skipped.append({"path": str(result.path), "reason": result.reason})
        else:
            scores[clip_of[result.path]] = result.score_frame()
    coverage = file_coverage(len(labelled.paths) + len(labelled.skipped),
                             [(entry["path"], entry["reason"]) for entry in skipped])
    require_complete(coverage, labelled.tsv, strict)
    truth = scored_truth(labelled, list(scores))
    if not any(truth.values()):
        raise ValueError(f"no event of {labelled.tsv} is in a readable audio file ({len(skipped)} skipped); "
                         f"nothing to calibrate on")
    best, best_f1 = best_collar_thresholds(scores, truth)
    thresholds, not_calibrated = {}, []
    for label in labels:
        if label in best and math.isfinite(best[label]) and best_f1.get(label, 0.0) > 0:
            thresholds[label] = best[label]
        else:
            thresholds[label] = default
            not_calibrated.append(label)
    return {
        "thresholds": thresholds, "default_threshold": default, "settings": settings.to_dict(),
        "collar_f1": {"before": {"threshold": default, **collar_f1(scores, truth, dict.fromkeys(labels, default))},
                      "after": collar_f1(scores, truth, thresholds)},
        "not_calibrated": not_calibrated, "num_clips": len(scores),
        "num_events": sum(len(events) for events in truth.values()),
        **coverage,
    }


def save_calibration(path: str | Path, calibration: Mapping[str, Any], run_info: Mapping[str, Any]) -> Path:
    """Write a calibration file (JSON): thresholds, the settings they hold for, the F1 before and after."""
    return write_json(path, {"format": CALIBRATION_FORMAT, "version": CALIBRATION_VERSION, **calibration,
                             "run": dict(run_info)})


def load_calibration(path: str | Path) -> dict[str, Any]:
    """A calibration file written by `save_calibration` (checked): thresholds, settings, default_threshold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {path} not found; write one with detect.py --calibrate DEV_TSV "
                                f"--calibration-out {path}")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"calibration file {path} is not valid JSON ({error})") from error
    if not isinstance(content, dict) or content.get("format") != CALIBRATION_FORMAT or \
            not isinstance(content.get("thresholds"), dict) or not isinstance(content.get("settings"), dict):
        raise ValueError(f"{path} is not a calibration file of detect.py (expected format {CALIBRATION_FORMAT!r} "
                         f"with thresholds and settings)")
    return content
