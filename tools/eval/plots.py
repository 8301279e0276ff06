"""Figures (matplotlib, Agg backend): a log-mel spectrogram above frame-level similarity curves.

Used by example.py (one curve per text) and zero_shot_sed.py --plot (one curve per class, with the
ground-truth events drawn as shaded spans in the class's colour). Both panels share one time axis in
seconds: spectrogram frame k is at k * hop_length / sample_rate, model frame i covers
[i * frame_hop, (i + 1) * frame_hop).

`plot_training_curves` draws a training run's per-epoch records (loss, learning rate, retrieval scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tools.eval.retrieval_metrics import to_numpy

FIGURE_WIDTH_INCHES = 10.0
FIGURE_DPI = 100


def _draw_spectrogram(axis, log_mel: np.ndarray, seconds_per_frame: float, duration: float) -> None:
    """log_mel [frames, n_mels] as an image, time on x (seconds), mel bin on y."""
    extent = (0.0, log_mel.shape[0] * seconds_per_frame, 0, log_mel.shape[1])
    axis.imshow(log_mel.T, origin="lower", aspect="auto", extent=extent, cmap="magma", interpolation="nearest")
    axis.set_ylabel("mel bin")
    axis.set_xlim(0.0, duration)


def _draw_curves(axis, scores: np.ndarray, labels: Sequence[str], frame_hop: float, colors: list,
                 ylabel: str) -> None:
    """scores [T, K] as step curves, one per label."""
    edges = np.arange(scores.shape[0] + 1) * frame_hop
    for column, (label, color) in enumerate(zip(labels, colors, strict=True)):
        values = np.append(scores[:, column], scores[-1, column])
        axis.step(edges, values, where="post", color=color, label=label, linewidth=1.5)
    axis.set_ylabel(ylabel)
    axis.set_xlabel("time (s)")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize="small", ncol=max(1, len(labels) // 4))


def _draw_ground_truth(axis, events: Sequence[tuple[float, float, str]], labels: Sequence[str],
                       colors: list) -> None:
    """Shade each (onset, offset, label) span in the colour of its label's curve (others in grey)."""
    color_of = dict(zip(labels, colors, strict=True))
    for onset, offset, label in events:
        axis.axvspan(onset, offset, color=color_of.get(label, "grey"), alpha=0.18, linewidth=0)
        axis.annotate(label, xy=(onset, 1.0), xycoords=("data", "axes fraction"), va="top", fontsize=7,
                      color=color_of.get(label, "grey"))


def _save_png(figure, out_path: str | Path) -> Path:
    """Lay out and write a figure as PNG (parent folders created); returns the path."""
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=FIGURE_DPI, format="png")
    return out_path


def plot_frame_similarities(
    log_mel,
    frame_scores,
    labels: Sequence[str],
    out_path: str | Path,
    sample_rate: int = 32000,
    hop_length: int = 320,
    frame_hop: float = 10.0 / 32,
    duration: float | None = None,
    ground_truth: Sequence[tuple[float, float, str]] = (),
    title: str | None = None,
    ylabel: str = "cosine similarity",
) -> Path:
    """Save a PNG: log-mel spectrogram on top, each label's frame score over time below, shared x axis.

    Args:
        log_mel: [spectrogram frames, n_mels] (numpy or torch), e.g. tools.eval.embedding.log_mel_spectrogram.
        frame_scores: [T, K] scores of K labels per model frame (numpy or torch).
        labels: K names (texts or classes).
        out_path: PNG path; parent folders are created.
        duration: seconds shown (default: the spectrogram's length).
        ground_truth: (onset, offset, label) events, shaded on the score panel.
    Returns:
        out_path as a Path.
    """
    log_mel, scores = to_numpy(log_mel).astype(float), to_numpy(frame_scores).astype(float)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"frame_scores must be [frames, {len(labels)}] (one column per label), got {scores.shape}")
    seconds_per_frame = hop_length / sample_rate
    duration = duration if duration is not None else log_mel.shape[0] * seconds_per_frame
    colors = [plt.get_cmap("tab10")(index % 10) for index in range(len(labels))]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(FIGURE_WIDTH_INCHES, 6.0),
                                         gridspec_kw={"height_ratios": [1, 1.2]})
    try:
        _draw_spectrogram(top, log_mel, seconds_per_frame, duration)
        _draw_curves(bottom, scores, labels, frame_hop, colors, ylabel)
        _draw_ground_truth(bottom, ground_truth, labels, colors)
        bottom.set_xlim(0.0, duration)
        if title:
            top.set_title(title)
        out_path = _save_png(figure, out_path)
    finally:
        plt.close(figure)
    return out_path


def plot_training_curves(history: Sequence[Mapping[str, Any]], out_path: str | Path) -> Path:
    """Save a PNG of a training run, one point per epoch: mean loss, learning rate at the epoch's end, and
    each retrieval set's score (R@1 + R@5, both directions, in percent points).

    Args:
        history: the trainer's epoch records: "epoch", "loss", optionally "lr" and "scores" ({set: score});
            an epoch whose evaluation failed has no score for that set (a gap in its curve).
        out_path: PNG path; parent folders are created.
    """
    epochs = [int(record["epoch"]) for record in history]
    set_names = list(dict.fromkeys(name for record in history for name in record.get("scores", {})))
    figure, axes = plt.subplots(1, 3, figsize=(FIGURE_WIDTH_INCHES * 1.4, 4.0))
    try:
        panels = [("mean training loss", [record.get("loss", math.nan) for record in history]),
                  ("learning rate", [record.get("lr", math.nan) for record in history])]
        for axis, (title, values) in zip(axes[:2], panels, strict=True):
            axis.plot(epochs, values, marker="o")
            axis.set_title(title)
        axes[1].ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        for name in set_names:
            axes[2].plot(epochs, [record.get("scores", {}).get(name, math.nan) for record in history], marker="o",
                         label=name.removesuffix("_best_model.pt"))
        axes[2].set_title("retrieval R@1 + R@5, both ways (%)")
        if set_names:
            axes[2].legend(fontsize="small")
        for axis in axes:
            axis.set_xlabel("epoch")
            axis.grid(alpha=0.3)
        out_path = _save_png(figure, out_path)
    finally:
        plt.close(figure)
    return out_path


def spectrogram_png(log_mel, max_columns: int = 1000) -> bytes:
    """A log-mel [frames, n_mels] as a bare PNG image (low frequencies at the bottom, magma colours, no axes),
    at most `max_columns` wide: longer spectrograms are averaged over blocks of frames."""
    import io

    log_mel = to_numpy(log_mel).astype(np.float32)
    block = max(1, math.ceil(log_mel.shape[0] / max_columns))
    usable = log_mel.shape[0] // block * block or log_mel.shape[0]
    if block > 1:
        log_mel = log_mel[:usable].reshape(-1, block, log_mel.shape[1]).mean(axis=1)
    buffer = io.BytesIO()
    plt.imsave(buffer, log_mel.T, cmap="magma", origin="lower", format="png")
    return buffer.getvalue()
