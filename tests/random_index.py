"""Index folders written directly from given embeddings (no audio embedded): planted events for tests, random
rows at any size for `benchmarks.detection search-speed`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.windowing import FRAME_HOP_SECONDS
from tools.detect.index import FILE_COLUMNS, INDEX_FORMAT, INDEX_VERSION, SearchIndex, model_fingerprint


def unit_rows(rng: np.random.Generator, rows: int, embed_size: int) -> np.ndarray:
    """float32 [rows, E] random unit vectors."""
    matrix = rng.standard_normal((rows, embed_size), dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def write_index(folder: Path, fingerprint: str, clips: np.ndarray, frames: Sequence[np.ndarray],
                paths: Sequence[str | Path]) -> SearchIndex:
    """An index of len(paths) files: clips [N, E] and frames (N arrays [T_i, E]), stored as float16; each
    file's duration is T_i frames. `fingerprint` is the model's (tools.detect.index.model_fingerprint)."""
    folder.mkdir(parents=True, exist_ok=True)
    embed_size = clips.shape[1]
    (folder / "clip.f16").write_bytes(np.ascontiguousarray(clips, dtype=np.float16).tobytes())
    with (folder / "frames.f16").open("wb") as stream:
        for block in frames:
            stream.write(np.ascontiguousarray(block, dtype=np.float16).tobytes())
    offsets = np.concatenate([[0], np.cumsum([len(block) for block in frames])])
    lines = ["\t".join(FILE_COLUMNS)] + [
        f"{Path(path).resolve()}\t0\t0\t{len(block) * FRAME_HOP_SECONDS}\t{row}\t{offsets[row]}\t{len(block)}"
        for row, (path, block) in enumerate(zip(paths, frames, strict=True))]
    (folder / "files.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "overlap": 0.5, "frame_hop": FRAME_HOP_SECONDS,
            "model": {"fingerprint": fingerprint, "checkpoint": "", "embed_size": embed_size}}
    (folder / "index.json").write_text(json.dumps(meta), encoding="utf-8")
    return SearchIndex.open(folder)


def class_query(label: str) -> str:
    """The query text of an event label (as the SED protocol names classes: '_' -> space, lower case)."""
    return label.replace("_", " ").lower()


def planted_event_index(model, labelled, folder: Path, noise: float = 0.0, seed: int = 0) -> SearchIndex:
    """An index of a labelled set's real audio files whose embeddings are planted from its strong labels, as
    a perfect model would give them. Each class gets a unit vector that only its own query (`class_query`'s
    text embedding) scores above 0 (the part of that embedding orthogonal to the other classes'); the frames
    of an event (those it covers at least half) are its class's vector (summed where events overlap), the other frames are orthogonal to
    every query, all plus `noise`; a file's clip embedding is the mean of its events' class vectors plus
    noise. `labelled`: tools.detect.calibration.LabelledSet."""
    from tools.eval.embedding import embed_texts

    rng = np.random.default_rng(seed)
    labels = sorted({label for events in labelled.ground_truth.values() for *_, label in events})
    queries = embed_texts(model, [class_query(label) for label in labels]).numpy().astype(np.float64)   # [C, E]
    embed_size = queries.shape[1]
    class_vectors = {}
    for row, label in enumerate(labels):
        others = np.delete(queries, row, axis=0)
        own = queries[row] - others.T @ np.linalg.lstsq(others.T, queries[row], rcond=None)[0]
        class_vectors[label] = own / np.linalg.norm(own)
    basis = np.linalg.qr(queries.T)[0]                                                # [E, C] the queries' span

    def background(rows: int) -> np.ndarray:
        random = unit_rows(rng, rows, embed_size).astype(np.float64)
        return random - (random @ basis) @ basis.T

    clips, frames = [], []
    for clip_id in labelled.clip_ids:
        num_frames = int(np.ceil(labelled.durations[clip_id] / FRAME_HOP_SECONDS - 1e-6))
        block = background(num_frames)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        sounding = np.zeros_like(block)                                    # overlapping events add up
        for onset, offset, label in labelled.ground_truth[clip_id]:
            first, last = int(round(onset / FRAME_HOP_SECONDS)), int(round(offset / FRAME_HOP_SECONDS))
            sounding[first:last] += class_vectors[label]
        has_event = np.abs(sounding).sum(axis=1) > 0
        block[has_event] = sounding[has_event]
        block += noise * unit_rows(rng, num_frames, embed_size)
        frames.append(block / np.linalg.norm(block, axis=1, keepdims=True))
        present = [class_vectors[label] for *_, label in labelled.ground_truth[clip_id]]
        clip = np.mean(present, axis=0) if present else background(1)[0]
        clip = clip / np.linalg.norm(clip) + noise * unit_rows(rng, 1, embed_size)[0]
        clips.append(clip / np.linalg.norm(clip))
    return write_index(folder, model_fingerprint(model), np.stack(clips), frames, labelled.paths)
