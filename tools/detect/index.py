"""A searchable index of audio files: clip and frame embeddings on disk, text queries -> clips and spans.

    DIR/index.json   format, version, model (fingerprint, checkpoint, embed_size), overlap, row counts
    DIR/files.tsv    path, size, mtime_ns, duration, clip_row, frame_offset, num_frames (one line per file)
    DIR/clip.f16     float16 [clip rows, E]: L2-normalised clip embeddings, appended row by row
    DIR/frames.f16   float16 [frame rows, E]: L2-normalised frame embeddings (10 / 32 s each), all files
                     concatenated; a file's frames are rows frame_offset .. frame_offset + num_frames - 1
    DIR/clip.ivf     from APPROXIMATE_FROM_FILES files on: the approximate index of clip.f16's rows
                     (tools/detect/approximate.py; its candidates are re-ranked exactly)

Adding files appends rows and never recomputes the others; a file whose size or modification time changed
is embedded again (its old rows become unused; the files are rewritten without them once unused rows
outnumber used ones). Embeddings come from `tools.detect.streaming.embed_files` (any length, streamed);
queries are `embed_texts`' sentence embeddings, scored by plain matrix products: the listed clip rows are
kept in memory as float32 after the first query (or, in large indexes, the approximate index's candidates
are scored), frame rows are read through numpy memory maps in chunks. The model is checked (once per model
object) by a fingerprint of its codebook: an index answers only queries embedded by the model that built it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.runtime import unwrap
from models.windowing import FRAME_HOP_SECONDS
from tools.detect.approximate import APPROXIMATE_FROM_FILES, CANDIDATES, ApproximateClipIndex, rerank
from tools.detect.approximate import FILE_NAME as APPROXIMATE_FILE
from tools.detect.detector import StreamOptions
from tools.detect.streaming import DEFAULT_OVERLAP, EmbeddedFile, SkippedFile, embed_files
from tools.eval.embedding import embed_texts
from tools.eval.sed_metrics import median_filter_time

INDEX_FORMAT = "mga-clap-search-index"
INDEX_VERSION = 1
FILE_COLUMNS = ("path", "size", "mtime_ns", "duration", "clip_row", "frame_offset", "num_frames")
ROWS_PER_CHUNK = 65536
"""Embedding rows multiplied at once (float32 copies of [65536, E])."""
SPAN_LEVEL = 0.5
"""The best span of a hit: the frames around its peak whose smoothed score stays above baseline + 0.5 x
(peak - baseline), baseline = the file's median smoothed score (a half-maximum width)."""


@dataclass
class IndexedFile:
    """One line of files.tsv."""

    path: str
    size: int
    mtime_ns: int
    duration: float
    clip_row: int
    frame_offset: int
    num_frames: int


@dataclass(frozen=True)
class Hit:
    """A search result: the file, its score (clip cosine, or peak frame cosine with rank 'frame'), and the
    best-matching span in seconds with the peak smoothed frame score."""

    path: str
    score: float
    onset: float
    offset: float
    span_score: float


def model_fingerprint(model: nn.Module) -> str:
    """sha256 (16 hex digits) of the model's codebook: the same weights give the same fingerprint."""
    codebook = unwrap(model).codebook.detach().float().cpu().contiguous().numpy()
    return hashlib.sha256(codebook.tobytes()).hexdigest()[:16]


def _file_state(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class SearchIndex:
    """An index folder (see the module docstring). `SearchIndex.open(folder)` or `SearchIndex.create(...)`."""

    def __init__(self, folder: Path, meta: dict[str, Any], files: list[IndexedFile]):
        self.folder, self.meta, self.files = folder, meta, files
        self._clips: torch.Tensor | None = None                 # the listed clip rows, float32, on first query
        self._approximate: ApproximateClipIndex | None | bool = False      # False: not loaded yet
        self._positions: dict[int, int] | None = None                       # clip row -> listed position
        self._checked_models: weakref.WeakSet[nn.Module] = weakref.WeakSet()

    # --------------------------------------------------------------------------------------------------
    # Opening, creating, saving
    # --------------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path, model: nn.Module, checkpoint: str = "",
               overlap: float = DEFAULT_OVERLAP) -> SearchIndex:
        """A new, empty index in `folder` (which must not hold one already)."""
        folder = Path(folder)
        if (folder / "index.json").exists():
            raise ValueError(f"{folder} already holds an index; add files with 'search.py add --index {folder}' or "
                             f"choose another folder")
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "overlap": overlap, "frame_hop": FRAME_HOP_SECONDS,
                "model": {"fingerprint": model_fingerprint(model), "checkpoint": str(checkpoint),
                          "embed_size": unwrap(model).config.embed_size}}
        for name in ("clip.f16", "frames.f16"):
            (folder / name).write_bytes(b"")
        index = cls(folder, meta, [])
        index.save()
        return index

    @classmethod
    def open(cls, folder: str | Path) -> SearchIndex:
        folder = Path(folder)
        meta_path = folder / "index.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no index in {folder} (index.json missing); build one with "
                                    f"'search.py build --index {folder} AUDIO...'")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != INDEX_FORMAT or meta.get("version") != INDEX_VERSION:
            raise ValueError(f"{meta_path} is not a version {INDEX_VERSION} {INDEX_FORMAT}; build the index again")
        with (folder / "files.tsv").open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream, delimiter="\t"))
        files = [IndexedFile(row["path"], int(row["size"]), int(row["mtime_ns"]), float(row["duration"]),
                             int(row["clip_row"]), int(row["frame_offset"]), int(row["num_frames"])) for row in rows]
        return cls(folder, meta, files)

    def save(self) -> None:
        """Write files.tsv and index.json (each through a temporary file and a rename)."""
        lines = ["\t".join(FILE_COLUMNS)] + ["\t".join(str(value) for value in asdict(entry).values())
                                            for entry in self.files]
        _write_atomically(self.folder / "files.tsv", "\n".join(lines) + "\n")
        meta = {**self.meta, "num_files": len(self.files), "num_clip_rows": self._rows("clip.f16"),
                "num_frame_rows": self._rows("frames.f16")}
        _write_atomically(self.folder / "index.json", json.dumps(meta, indent=2) + "\n")
        self._clips = self._positions = None

    @property
    def embed_size(self) -> int:
        return int(self.meta["model"]["embed_size"])

    def _rows(self, name: str) -> int:
        return (self.folder / name).stat().st_size // (2 * self.embed_size)

    def matrix(self, name: str) -> np.ndarray:
        """The float16 [rows, E] memory map of clip.f16 or frames.f16 (read only)."""
        rows = self._rows(name)
        if rows == 0:
            return np.zeros((0, self.embed_size), dtype=np.float16)
        return np.memmap(self.folder / name, dtype=np.float16, mode="r", shape=(rows, self.embed_size))

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model other than the one that built the index (checked once per model object)."""
        if model in self._checked_models:
            return
        expected, found = self.meta["model"]["fingerprint"], model_fingerprint(model)
        if expected != found:
            raise ValueError(f"the index in {self.folder} was built with another model (checkpoint "
                             f"{self.meta['model']['checkpoint']}, fingerprint {expected}; this one: {found}); "
                             f"pass its --ckpt or build a new index")
        self._checked_models.add(model)

    # --------------------------------------------------------------------------------------------------
    # Adding files
    # --------------------------------------------------------------------------------------------------
    def add(self, model: nn.Module, paths: Sequence[str | Path], device=None, options: StreamOptions | None = None
            ) -> dict[str, Any]:
        """Embed the new and changed files among `paths` and append them; unchanged files are not read.

        Returns: num_added, num_updated, num_unchanged, num_skipped, skipped [{path, reason}], num_files.
        """
        self.check_model(model)
        options = options or StreamOptions()
        by_path = {entry.path: entry for entry in self.files}
        todo, unchanged, skipped = [], 0, []
        for path in dict.fromkeys(Path(path).resolve() for path in paths):
            entry = by_path.get(str(path))
            if entry is not None and path.is_file() and (entry.size, entry.mtime_ns) == _file_state(path):
                unchanged += 1
            else:
                todo.append(path)
        added = updated = 0
        with (self.folder / "clip.f16").open("ab") as clip_file, (self.folder / "frames.f16").open("ab") as frame_file:
            for embedded in embed_files(model, todo, lambda frames: frames.half(), device, self.meta["overlap"],
                                        options.batch_size, options.num_workers, options.precision, need_clip=True,
                                        progress=options.progress):
                if isinstance(embedded, SkippedFile):
                    skipped.append({"path": str(embedded.path), "reason": embedded.reason})
                    continue
                entry = self._append(embedded, clip_file, frame_file)
                updated += entry.path in by_path
                added += entry.path not in by_path
                by_path[entry.path] = entry
        self.files = sorted(by_path.values(), key=lambda entry: entry.clip_row)
        self.save()
        if self._rows("frames.f16") > 2 * sum(entry.num_frames for entry in self.files):
            self.compact()
        self.update_approximate()
        return {"num_added": added, "num_updated": updated, "num_unchanged": unchanged, "num_skipped": len(skipped),
                "skipped": skipped, "num_files": len(self.files)}

    def _append(self, embedded: EmbeddedFile, clip_file, frame_file) -> IndexedFile:
        clip_file.flush()
        frame_file.flush()
        clip_row = clip_file.tell() // (2 * self.embed_size)
        frame_offset = frame_file.tell() // (2 * self.embed_size)
        clip_file.write(embedded.clip.half().numpy().tobytes())
        frame_file.write(embedded.frame_outputs.contiguous().numpy().tobytes())
        size, mtime_ns = _file_state(embedded.path)
        return IndexedFile(str(embedded.path.resolve()), size, mtime_ns, round(embedded.duration, 6), clip_row,
                           frame_offset, embedded.num_frames)

    def compact(self) -> None:
        """Rewrite the matrices with the rows of the listed files only (after re-embedded files)."""
        clips, frames = self.matrix("clip.f16"), self.matrix("frames.f16")
        new_clips = np.stack([clips[entry.clip_row] for entry in self.files]) if self.files else clips[:0]
        new_frames = [frames[entry.frame_offset:entry.frame_offset + entry.num_frames] for entry in self.files]
        offsets = np.concatenate([[0], np.cumsum([entry.num_frames for entry in self.files])]).astype(int)
        for row, entry in enumerate(self.files):
            entry.clip_row, entry.frame_offset = row, int(offsets[row])
        _write_atomically(self.folder / "clip.f16", np.ascontiguousarray(new_clips).tobytes(), binary=True)
        _write_atomically(self.folder / "frames.f16", b"".join(np.ascontiguousarray(part).tobytes()
                                                               for part in new_frames), binary=True)
        (self.folder / APPROXIMATE_FILE).unlink(missing_ok=True)           # rows renumbered: built again
        self._approximate = False
        self.save()

    def approximate(self) -> ApproximateClipIndex | None:
        """The approximate index of the clip rows (tools/detect/approximate.py), None when there is none."""
        if self._approximate is False:
            self._approximate = ApproximateClipIndex.load(self.folder)
        return self._approximate

    def update_approximate(self, from_files: int | None = None) -> None:
        """Append new clip rows to the approximate index; build it once `from_files` (default
        APPROXIMATE_FROM_FILES) files are listed."""
        threshold = APPROXIMATE_FROM_FILES if from_files is None else from_files
        approximate = self.approximate()
        if approximate is None and len(self.files) < threshold:
            return
        clips = self.matrix("clip.f16")
        if approximate is None:
            approximate = self._approximate = ApproximateClipIndex.train(self.folder, clips)
        if approximate.num_rows < len(clips):
            approximate.add_rows(clips)
            approximate.save()

    # --------------------------------------------------------------------------------------------------
    # Queries
    # --------------------------------------------------------------------------------------------------
    def search(self, model: nn.Module, queries: Sequence[str], top_k: int = 10, rank: str = "clip",
               device=None) -> list[list[Hit]]:
        """The top_k files per query with each one's best span.

        rank: 'clip' (cosine of clip and query embeddings, retrieval's score) or 'frame' (the highest
        median-filtered frame cosine of the file: better for long files whose events are short).
        Returns: one list of Hit per query, best first.
        """
        self.check_model(model)
        return self.search_embeddings(embed_texts(model, list(queries), device), top_k, rank)

    def search_embeddings(self, query_embeds: torch.Tensor, top_k: int = 10, rank: str = "clip"
                          ) -> list[list[Hit]]:
        """`search` with the queries already embedded: query_embeds [Q, E] unit vectors of this index's model."""
        hits = []
        for column in range(query_embeds.shape[0]):
            files, scores = self.top_files(query_embeds[column:column + 1], top_k, rank)
            curves = [self.frame_curves(position, query_embeds[column:column + 1])[:, 0] for position in files]
            hits.append([self.hit(position, score, curve) for position, score, curve
                         in zip(files, scores, curves, strict=True)])
        return hits

    def top_files(self, query_embed: torch.Tensor, top_k: int, rank: str = "clip") -> tuple[list[int], list[float]]:
        """(positions, scores) of the top_k listed files for one query [1, E], best first. Rank 'clip' on an
        index with an approximate part: its candidates, scored exactly."""
        approximate = self.approximate() if rank == "clip" else None
        if approximate is None or approximate.num_rows < self._rows("clip.f16"):
            top = torch.topk(self.file_scores(query_embed, rank)[:, 0], min(top_k, len(self.files)))
            return top.indices.tolist(), top.values.tolist()
        position_of_row = self._position_of_row()
        candidates = approximate.candidates(query_embed, max(CANDIDATES, 10 * top_k))[0]
        listed = np.array([row for row in candidates.tolist() if row in position_of_row], dtype=np.int64)
        rows, scores = rerank(self.matrix("clip.f16"), listed, query_embed[0], top_k)
        return [position_of_row[row] for row in rows.tolist()], scores.tolist()

    def _position_of_row(self) -> dict[int, int]:
        if self._positions is None:
            self._positions = {entry.clip_row: position for position, entry in enumerate(self.files)}
        return self._positions

    def file_scores(self, query_embeds: torch.Tensor, rank: str = "clip") -> torch.Tensor:
        """[files, Q] score of each listed file for each query (rank 'clip' or 'frame', as `search`)."""
        if not self.files:
            raise ValueError(f"the index in {self.folder} holds no file; add some with 'search.py add'")
        if rank not in ("clip", "frame"):
            raise ValueError(f"rank must be 'clip' or 'frame', got {rank!r}")
        return self.clip_scores(query_embeds) if rank == "clip" else self.peak_frame_scores(query_embeds)

    def clip_scores(self, query_embeds: torch.Tensor) -> torch.Tensor:
        """[files, Q] cosine of each listed file's clip embedding with each query."""
        return self._listed_clips() @ query_embeds.float().T

    def _listed_clips(self) -> torch.Tensor:
        """float32 [files, E] clip embeddings of the listed files, read once and kept (4 x E bytes per file)."""
        if self._clips is None:
            clips = self.matrix("clip.f16")
            rows = np.array([entry.clip_row for entry in self.files], dtype=np.int64)
            self._clips = torch.cat([torch.from_numpy(np.asarray(clips[rows[start:start + ROWS_PER_CHUNK]],
                                                                 dtype=np.float32))
                                     for start in range(0, len(rows), ROWS_PER_CHUNK)])
        return self._clips

    def peak_frame_scores(self, query_embeds: torch.Tensor) -> torch.Tensor:
        """[files, Q] highest median-filtered (3 frames, within each file) frame cosine of each listed file."""
        frames = self.matrix("frames.f16")
        starts = np.array([entry.frame_offset for entry in self.files], dtype=np.int64)
        ends = starts + np.array([entry.num_frames for entry in self.files], dtype=np.int64)
        peaks = torch.empty(len(self.files), query_embeds.shape[0])
        order = np.argsort(starts, kind="stable")
        for chosen in _groups_of_rows(order, ends - starts, ROWS_PER_CHUNK):
            low, high = int(starts[chosen].min()), int(ends[chosen].max())
            block = _scores(frames[low:high], query_embeds).numpy()                                # [rows, Q]
            smoothed = median3_within(block, starts[chosen] - low, ends[chosen] - low)
            padded = np.concatenate([smoothed, smoothed[-1:]])        # reduceat indices may equal the length
            bounds = np.stack([starts[chosen] - low, ends[chosen] - low], axis=1).reshape(-1)
            peaks[chosen] = torch.from_numpy(np.maximum.reduceat(padded, bounds, axis=0)[::2].copy())
        return peaks

    def frame_curves(self, position: int, query_embeds: torch.Tensor) -> np.ndarray:
        """float32 [T, Q]: the median-filtered (3 frames) frame cosines of listed file `position`."""
        entry = self.files[position]
        block = self.matrix("frames.f16")[entry.frame_offset:entry.frame_offset + entry.num_frames]
        return median_filter_time(_scores(block, query_embeds).numpy(), 3)

    def span_embedding(self, position: int, start: int, end: int) -> torch.Tensor:
        """[1, E] unit vector: the mean frame embedding of frames start .. end - 1 of listed file `position`
        (a query by audio: "more like this")."""
        entry = self.files[position]
        if not 0 <= start < end <= entry.num_frames:
            raise ValueError(f"frames {start}..{end} are not inside the file's {entry.num_frames} frames")
        block = self.matrix("frames.f16")[entry.frame_offset + start:entry.frame_offset + end]
        mean = torch.from_numpy(np.asarray(block, dtype=np.float32)).mean(dim=0, keepdim=True)
        return torch.nn.functional.normalize(mean, dim=-1)

    def hit(self, position: int, score: float, smoothed: np.ndarray) -> Hit:
        """The Hit of listed file `position` with its score and smoothed [T] curve (best span from it)."""
        entry = self.files[position]
        start, end = best_span(smoothed)
        return Hit(entry.path, score, start * FRAME_HOP_SECONDS, min(end * FRAME_HOP_SECONDS, entry.duration),
                   float(smoothed.max()))


def _groups_of_rows(order: np.ndarray, sizes: np.ndarray, limit: int) -> list[np.ndarray]:
    """`order` cut into consecutive groups whose sizes sum to at most `limit` (a larger item alone)."""
    groups, current, total = [], [], 0
    for item in order.tolist():
        if current and total + sizes[item] > limit:
            groups.append(np.array(current))
            current, total = [], 0
        current.append(item)
        total += int(sizes[item])
    if current:
        groups.append(np.array(current))
    return groups


def median3_within(scores: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Median filter of 3 frames along axis 0 of [rows, Q], within each segment starts[i] .. ends[i] - 1
    (edges repeated, as `median_filter_time`); rows outside every segment are left as they are."""
    previous = np.concatenate([scores[:1], scores[:-1]])
    following = np.concatenate([scores[1:], scores[-1:]])
    nonempty = ends > starts
    previous[starts[nonempty]] = scores[starts[nonempty]]
    following[ends[nonempty] - 1] = scores[ends[nonempty] - 1]
    low, high = np.minimum(previous, scores), np.maximum(previous, scores)
    return np.maximum(low, np.minimum(high, following))


def best_span(smoothed: np.ndarray, level: float = SPAN_LEVEL) -> tuple[int, int]:
    """(first frame, end frame exclusive) of the run around the peak of a [T] curve that stays above
    baseline + level x (peak - baseline), baseline = the curve's median."""
    peak_frame = int(np.argmax(smoothed))
    baseline = float(np.median(smoothed))
    cut = baseline + level * (float(smoothed[peak_frame]) - baseline)
    above = smoothed >= cut
    start, end = peak_frame, peak_frame + 1
    while start > 0 and above[start - 1]:
        start -= 1
    while end < len(smoothed) and above[end]:
        end += 1
    return start, end


def _scores(rows: np.ndarray, query_embeds: torch.Tensor) -> torch.Tensor:
    """float16 rows [n, E] x queries [Q, E] -> float32 [n, Q] cosine (rows and queries are unit vectors)."""
    return torch.from_numpy(np.asarray(rows, dtype=np.float32)) @ query_embeds.float().T


def _write_atomically(path: Path, content: str | bytes, binary: bool = False) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    if binary:
        temporary.write_bytes(content)
    else:
        temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)
