"""What the search page shows: phrases (or a span's audio) -> ranked files, each with its frame-score curves
and best spans. Pure functions of a loaded `SearchIndex` and model; `tools.detect.server` serves them.

    results(index, query_embeds [Q, E], labels, top_k, rank) -> {"phrases", "rank", "top_k", "results": [
        {"id", "path", "name", "duration", "missing", "score",
         "spans": [{"onset", "offset", "start_frame", "end_frame", "span_score"}] (one per phrase),
         "view_seconds", "frame_hop", "curves": [Q][T'] smoothed frame cosines of the first view_seconds}]}

Several phrases rank files by the mean of their scores (each phrase's clip cosine, or peak frame cosine with
rank 'frame'): the files where all of them sound come first; with one phrase the order, scores and spans are
those of `SearchIndex.search` (search.py query).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.windowing import FRAME_HOP_SECONDS
from tools.detect.index import SearchIndex, best_span
from tools.detect.outputs import PLOT_MAX_SECONDS
from tools.eval.embedding import embed_texts

MAX_PHRASES = 8
MAX_PHRASE_CHARS = 200
MAX_TOP_K = 50
RANKS = ("clip", "frame")


def parse_phrases(text: str) -> list[str]:
    """One phrase per line: whitespace collapsed, blank lines and repeats dropped; at most MAX_PHRASES of
    at most MAX_PHRASE_CHARS characters (ValueError otherwise)."""
    phrases = list(dict.fromkeys(" ".join(line.split()) for line in text.splitlines()))
    phrases = [phrase for phrase in phrases if phrase]
    if len(phrases) > MAX_PHRASES:
        raise ValueError(f"at most {MAX_PHRASES} phrases (one per line) are searched at once, got {len(phrases)}")
    for phrase in phrases:
        if len(phrase) > MAX_PHRASE_CHARS:
            raise ValueError(f"a phrase may hold at most {MAX_PHRASE_CHARS} characters, got {len(phrase)}: "
                             f"{phrase[:40]}...")
    return phrases


def check_top_k(top_k: int) -> int:
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"the number of files shown must be 1 to {MAX_TOP_K}, got {top_k}")
    return top_k


def text_results(index: SearchIndex, model: nn.Module, phrases: Sequence[str], top_k: int = 10,
                 rank: str = "clip", device=None) -> dict[str, Any]:
    """The page's data for text phrases (embedded by `model`, which must be the index's)."""
    index.check_model(model)
    return results(index, embed_texts(model, list(phrases), device), list(phrases), top_k, rank)


def like_results(index: SearchIndex, position: int, start: int, end: int, top_k: int = 10,
                 rank: str = "clip") -> dict[str, Any]:
    """The page's data for "more like this": the mean frame embedding of frames start .. end - 1 of listed
    file `position` as the query."""
    entry = index.files[position]
    label = f"like {Path(entry.path).name} {start * FRAME_HOP_SECONDS:.2f}-{end * FRAME_HOP_SECONDS:.2f} s"
    return {**results(index, index.span_embedding(position, start, end), [label], top_k, rank),
            "like": {"id": position, "start": start, "end": end}}


def results(index: SearchIndex, query_embeds: torch.Tensor, labels: list[str], top_k: int, rank: str
            ) -> dict[str, Any]:
    """Files ranked by the mean score over the queries [Q, E]; see the module docstring for the layout."""
    if rank == "clip":                          # the mean of the cosines is the cosine with the mean query
        files, scores = index.top_files(query_embeds.mean(dim=0, keepdim=True), top_k, rank)
    else:
        top = torch.topk(index.file_scores(query_embeds, rank).mean(dim=1), min(top_k, len(index.files)))
        files, scores = top.indices.tolist(), top.values.tolist()
    return {"phrases": labels, "rank": rank, "top_k": top_k,
            "results": [_file_result(index, position, score, query_embeds)
                        for position, score in zip(files, scores, strict=True)]}


def _file_result(index: SearchIndex, position: int, score: float, query_embeds: torch.Tensor) -> dict[str, Any]:
    entry = index.files[position]
    curves = index.frame_curves(position, query_embeds)                                             # [T, Q]
    spans = []
    for column in range(curves.shape[1]):
        start, end = best_span(curves[:, column])
        hit = index.hit(position, score, curves[:, column])
        spans.append({"onset": hit.onset, "offset": hit.offset, "start_frame": start, "end_frame": end,
                      "span_score": hit.span_score})
    view_seconds = min(entry.duration, PLOT_MAX_SECONDS)
    view_frames = max(1, min(curves.shape[0], int(round(view_seconds / FRAME_HOP_SECONDS + 0.4999))))
    return {"id": position, "path": entry.path, "name": Path(entry.path).name, "duration": entry.duration,
            "missing": not Path(entry.path).is_file(), "score": score, "spans": spans,
            "view_seconds": view_seconds, "frame_hop": FRAME_HOP_SECONDS,
            "curves": curves[:view_frames].T.round(4).tolist()}
