"""An approximate index of clip rows for large collections: faiss inverted lists with 8-bit codes, whose
candidates are re-ranked exactly.

    DIR/clip.ivf   faiss IndexIVFScalarQuantizer (inner product): the clip rows of clip.f16, id = row number

Built by `search.py build/add` once the index lists APPROXIMATE_FROM_FILES files: its coarse centroids are
trained (k-means) on a sample of the rows, then every row is added; later `add`s append the new rows to the
lists without training again (a rebuild only after compaction renumbers the rows). A query scans the
NPROBE lists nearest to it, takes the CANDIDATES best rows by their 8-bit codes, and scores those exactly
from clip.f16 (float16 -> float32 cosine, as the exact index): the scores shown are exact, only a file
outside the candidates can be missed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

APPROXIMATE_FROM_FILES = 200_000
"""Below this many files a query scores every clip row (a few ms per 100,000 rows in memory)."""
NPROBE = 64
CANDIDATES = 256
"""Rows re-ranked exactly per query (at least 10 x top_k)."""
TRAINING_ROWS_PER_LIST = 64
FILE_NAME = "clip.ivf"


def number_of_lists(rows: int) -> int:
    """sqrt(rows), at most 4096: 1,000 lists of 1,000 rows for a million rows."""
    return int(min(4096, max(1, round(math.sqrt(rows)))))


class ApproximateClipIndex:
    """The faiss index of one index folder's clip rows (see the module docstring)."""

    def __init__(self, path: Path, faiss_index):
        self.path, self.faiss_index = path, faiss_index

    @classmethod
    def load(cls, folder: Path) -> ApproximateClipIndex | None:
        path = folder / FILE_NAME
        if not path.is_file():
            return None
        import faiss

        return cls(path, faiss.read_index(str(path)))

    @classmethod
    def train(cls, folder: Path, clips: np.ndarray, seed: int = 0) -> ApproximateClipIndex:
        """A new, empty index whose lists and codes are trained on a sample of clips [rows, E] (float16)."""
        import faiss

        rows, embed_size = clips.shape
        lists = number_of_lists(rows)
        sample = np.sort(np.random.default_rng(seed).choice(rows, min(rows, lists * TRAINING_ROWS_PER_LIST),
                                                            replace=False))
        quantizer = faiss.IndexFlatIP(embed_size)
        faiss_index = faiss.IndexIVFScalarQuantizer(quantizer, embed_size, lists, faiss.ScalarQuantizer.QT_8bit,
                                                    faiss.METRIC_INNER_PRODUCT)
        faiss_index.cp.max_points_per_centroid = TRAINING_ROWS_PER_LIST
        faiss_index.train(np.ascontiguousarray(clips[sample], dtype=np.float32))
        index = cls(folder / FILE_NAME, faiss_index)
        index.quantizer = quantizer                        # kept alive as long as the index (faiss points to it)
        return index

    @property
    def num_rows(self) -> int:
        return int(self.faiss_index.ntotal)

    def add_rows(self, clips: np.ndarray, chunk: int = 65536) -> None:
        """Append clip rows num_rows .. len(clips) - 1 of the float16 matrix [rows, E] (ids = row numbers)."""
        for start in range(self.num_rows, len(clips), chunk):
            block = np.ascontiguousarray(clips[start:start + chunk], dtype=np.float32)
            self.faiss_index.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))

    def save(self) -> None:
        import faiss

        temporary = self.path.with_name(f".{self.path.name}.tmp")
        faiss.write_index(self.faiss_index, str(temporary))
        temporary.replace(self.path)

    def candidates(self, query_embeds: torch.Tensor, count: int = CANDIDATES, nprobe: int = NPROBE) -> np.ndarray:
        """int64 [Q, count] clip rows nearest each query [Q, E] by their codes (-1 where fewer were found)."""
        self.faiss_index.nprobe = nprobe
        _, rows = self.faiss_index.search(np.ascontiguousarray(query_embeds.float().numpy()), count)
        return rows


def rerank(clips: np.ndarray, candidate_rows: np.ndarray, query_embed: torch.Tensor, top_k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """The top_k of candidate clip rows [n] (-1 ignored) by exact cosine with one query [E]: (rows, scores)."""
    rows = np.unique(candidate_rows[candidate_rows >= 0])
    scores = np.asarray(clips[rows], dtype=np.float32) @ query_embed.float().numpy()
    best = np.argsort(-scores, kind="stable")[:top_k]
    return rows[best], scores[best]
