"""The approximate clip index at scale: per-query time and recall@10 against exact scoring.

    python -m benchmarks.search_scale                       # 1,000,000 random unit rows, 256-d
    python -m benchmarks.search_scale --rows 200000 --embed-size 1024

Rows are random unit vectors written to a clip.f16 file (as an index folder holds them), queries random unit
vectors. It trains and fills tools/detect/approximate.py's index as `search.py build` does above its
threshold, then for each query: candidates from the lists (NPROBE lists, CANDIDATES rows) re-ranked exactly
from clip.f16 -> the top 10 (`SearchIndex.top_files`' path), timed; recall@10 = the share of the exact top
10 (every row scored) found. Uniformly random vectors have no neighbourhood structure, the hardest case for
inverted lists: their recall is a floor; `--clustered` draws rows and queries around 2,000 centres, as
embeddings of sounds cluster by what sounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tests.random_index import unit_rows
from tools.detect import approximate

WARM_UP = 3


CLUSTERS = 2000
SPREAD = 0.08
"""Clustered rows: a random centre plus SPREAD x N(0, 1) per dimension, normalised (cosine about 0.5 to 0.6
with its centre at 256-d); queries the same around a random centre."""


def sample_rows(rng: np.random.Generator, count: int, embed_size: int, centres: np.ndarray | None) -> np.ndarray:
    if centres is None:
        return unit_rows(rng, count, embed_size)
    rows = centres[rng.integers(0, len(centres), count)] + SPREAD * rng.standard_normal((count, embed_size),
                                                                                       dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def write_rows(path: Path, rows: int, embed_size: int, centres: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """clip.f16 of `rows` unit vectors, written in chunks; returns its read-only memory map."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as stream:
        for start in range(0, rows, 100_000):
            stream.write(sample_rows(rng, min(100_000, rows - start), embed_size, centres).astype(np.float16)
                         .tobytes())
    return np.memmap(path, dtype=np.float16, mode="r", shape=(rows, embed_size))


def exact_top(clips: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """[Q, k] exact top rows by cosine (float32 products in chunks)."""
    scores = np.concatenate([queries @ np.asarray(clips[start:start + 65536], dtype=np.float32).T
                             for start in range(0, len(clips), 65536)], axis=1)
    return np.argsort(-scores, axis=1)[:, :k]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--embed-size", type=int, default=256)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[approximate.NPROBE])
    parser.add_argument("--threads", type=int, default=1, help="faiss (OpenMP) threads (default: %(default)s)")
    parser.add_argument("--clustered", action="store_true", help=f"rows and queries around {CLUSTERS} random "
                                                                  f"centres instead of uniformly random")
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    centres = unit_rows(np.random.default_rng(2), CLUSTERS, args.embed_size) if args.clustered else None
    queries = sample_rows(np.random.default_rng(1), args.queries + WARM_UP, args.embed_size, centres)
    result: dict = {"rows": args.rows, "clustered": args.clustered, "embed_size": args.embed_size, "threads": args.threads,
                    "lists": approximate.number_of_lists(args.rows), "candidates": approximate.CANDIDATES}
    with tempfile.TemporaryDirectory() as folder:
        clips = write_rows(Path(folder) / "clip.f16", args.rows, args.embed_size, centres)
        started = time.perf_counter()
        index = approximate.ApproximateClipIndex.train(Path(folder), clips)
        result["train_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        index.add_rows(clips)
        result["add_seconds"] = round(time.perf_counter() - started, 1)
        truth = exact_top(clips, queries[WARM_UP:])
        for nprobe in args.nprobe:
            times, found = [], []
            for query in queries:
                started = time.perf_counter()
                candidates = index.candidates(torch.from_numpy(query[None]), approximate.CANDIDATES, nprobe)[0]
                rows, _ = approximate.rerank(clips, candidates, torch.from_numpy(query), 10)
                times.append(1000 * (time.perf_counter() - started))
                found.append(rows)
            recall = statistics.mean(len(set(rows.tolist()) & set(expected.tolist())) / 10
                                     for rows, expected in zip(found[WARM_UP:], truth, strict=True))
            result[f"nprobe_{nprobe}"] = {"median_ms": round(statistics.median(times[WARM_UP:]), 2),
                                          "recall_at_10": round(recall, 3)}
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
