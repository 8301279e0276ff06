"""Writing detections: score files (sed_scores_eval), an events table (DESED tsv), a JSON summary, figures.

    OUT/scores/<clip_id>.tsv   onset, offset, one column per query: the decision curves, one row per frame
                               (sed_scores_eval.io.write_sed_scores; read the folder back with read_sed_scores)
    OUT/events.tsv             filename, onset, offset, event_label, score (peak of the smoothed score);
                               thresholding OUT/scores at the thresholds of detections.json gives these events
    OUT/detections.json        settings, queries, thresholds, per file its events; skipped files listed
    OUT/plots/<clip_id>.png    with --plot: log-mel above the smoothed scores, detections shaded
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data_handling.audio_io import load_audio
from models.runtime import unwrap
from models.windowing import FRAME_HOP_SECONDS
from tools.detect.detector import FileDetection
from tools.detect.streaming import SkippedFile
from tools.eval.embedding import log_mel_spectrogram
from tools.eval.plots import plot_frame_similarities

EVENTS_HEADER = "filename\tonset\toffset\tevent_label\tscore\n"
PLOT_MAX_SECONDS = 600.0
"""A figure shows at most the first 10 minutes of a file (its spectrogram is computed from the samples)."""
PLOT_MAX_QUERIES = 8


class DetectionWriter:
    """Writes each file's outputs as soon as it is detected, so that memory does not grow with the files."""

    def __init__(self, out_dir: str | Path, queries: Sequence[str], thresholds: Sequence[float],
                 run_info: Mapping[str, Any], plot_model: nn.Module | None = None):
        self.out_dir = Path(out_dir)
        (self.out_dir / "scores").mkdir(parents=True, exist_ok=True)
        self.queries, self.thresholds = list(queries), list(thresholds)
        self.run_info = dict(run_info)
        self.plot_model = plot_model
        self.files: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.events_file = (self.out_dir / "events.tsv").open("w", encoding="utf-8")
        self.events_file.write(EVENTS_HEADER)

    def add(self, result: FileDetection | SkippedFile) -> None:
        if isinstance(result, SkippedFile):
            self.skipped.append({"path": str(result.path), "reason": result.reason})
            return
        from sed_scores_eval.base_modules.io import write_sed_scores

        write_sed_scores(result.score_frame(), self.out_dir / "scores" / f"{result.clip_id}.tsv")
        filename = result.clip_id + result.path.suffix
        for event in result.events:
            self.events_file.write(f"{filename}\t{event.onset:.4f}\t{event.offset:.4f}\t{event.label}\t"
                                   f"{event.peak:.4f}\n")
        entry: dict[str, Any] = {
            "path": str(result.path), "clip_id": result.clip_id, "filename": filename,
            "duration": round(result.duration, 6), "num_frames": int(result.smoothed.shape[0]),
            "events": [{"onset": event.onset, "offset": event.offset, "label": event.label,
                        "score": round(event.peak, 6)} for event in result.events]}
        if self.plot_model is not None:
            entry["plot"] = str(plot_detection(self.plot_model, result, self.out_dir / "plots" / f"{result.clip_id}.png"))
        self.files.append(entry)

    def close(self) -> dict[str, Any]:
        """Finish events.tsv, write detections.json; returns the summary (without the per-file list)."""
        self.events_file.close()
        summary = {
            "num_files": len(self.files), "num_events": sum(len(entry["events"]) for entry in self.files),
            "num_skipped": len(self.skipped), "skipped": self.skipped,
            "queries": self.queries, "thresholds": dict(zip(self.queries, self.thresholds, strict=True)),
            "outputs": {"events": str(self.out_dir / "events.tsv"), "scores": str(self.out_dir / "scores"),
                        "json": str(self.out_dir / "detections.json")},
        }
        content = {**summary, "run": self.run_info, "files": self.files}
        (self.out_dir / "detections.json").write_text(json.dumps(content, indent=2, default=str) + "\n",
                                                      encoding="utf-8")
        return summary


def plot_detection(model: nn.Module, result: FileDetection, out_path: Path) -> Path:
    """Figure of one file (its first PLOT_MAX_SECONDS): log-mel, smoothed scores of the queries with
    detections (at most PLOT_MAX_QUERIES, those with the highest peaks), detections shaded."""
    ase = unwrap(model)
    seconds = min(result.duration, PLOT_MAX_SECONDS)
    waveform = torch.from_numpy(load_audio(result.path, sample_rate=ase.sample_rate, max_seconds=seconds))
    num_frames = min(result.smoothed.shape[0], int(round(seconds / FRAME_HOP_SECONDS + 0.4999)))
    peaks = result.smoothed[:num_frames].max(axis=0)
    columns = sorted(range(len(result.labels)), key=lambda column: -peaks[column])[:PLOT_MAX_QUERIES]
    labels = [result.labels[column] for column in columns]
    events = [(event.onset, event.offset, event.label) for event in result.events
              if event.label in labels and event.onset < seconds]
    return plot_frame_similarities(
        log_mel_spectrogram(model, waveform), result.smoothed[:num_frames, columns], labels, out_path,
        sample_rate=ase.sample_rate, hop_length=ase.config.audio_args.hop_length, frame_hop=FRAME_HOP_SECONDS,
        duration=seconds, ground_truth=events, ylabel="score (median filtered)",
        title=f"{result.path.name} ({result.duration:.1f} s): detections shaded")
