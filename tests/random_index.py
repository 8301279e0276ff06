"""Index folders written directly from given embeddings (no audio embedded): planted events for tests, random
rows at any size for benchmarks/search_speed.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.windowing import FRAME_HOP_SECONDS
from tools.detect.index import FILE_COLUMNS, INDEX_FORMAT, INDEX_VERSION, SearchIndex


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
