"""Audio-text retrieval metrics (Clotho / AudioCaps protocol).

Ranks are 0-based. Sorting is by descending similarity with a STABLE sort, so among candidates with
exactly equal similarity the one with the lower index is ranked first (e.g. if caption j scores
audio 2 and audio 5 identically, audio 2 gets the better rank).

- T2A: for each caption, the rank of its audio among all audios.
- A2T: for each audio, the rank of the best-ranked of its captions among all captions.
- R@k = percentage (0..100) of ranks < k; medR = floor(median(ranks)) + 1; meanR = mean(ranks) + 1.
- t2a mAP@10 (DCASE language-based audio retrieval): one relevant audio per caption, so
  AP@10 = 1 / (rank + 1) if rank < 10 else 0, averaged over captions, in percent.
- a2t mAP@10: an audio has several relevant captions (n_rel of them); with the relevant captions at
  0-based positions r_1 < r_2 < ..., AP@10 = (1 / n_rel) * sum_{k: r_k < 10} k / (r_k + 1), i.e. the
  precision at each relevant position within the top 10, divided by the number of relevant captions.
  Averaged over audios, in percent.
Units are in the keys, as everywhere in the evaluation results: `t2a_R1_percent`, `a2t_mAP10_percent`
(percent, as the reference prints them), `t2a_medR`, `t2a_meanR` (ranks, 1-based).
"""

from __future__ import annotations

from typing import Any

import numpy as np

RECALL_CUTOFFS = (1, 5, 10, 50)
MAP_CUTOFF = 10


def to_numpy(array: Any) -> np.ndarray:
    """numpy array, torch tensor (any device; floating dtypes become float32) or nested list -> numpy."""
    if hasattr(array, "detach"):
        array = array.detach().cpu()
        array = (array.float() if array.is_floating_point() else array).numpy()
    return np.asarray(array)


def _validate_inputs(similarity: np.ndarray, text_to_audio: np.ndarray) -> None:
    """Check shapes, index range, finiteness and that every audio has a caption."""
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be [n_audio, n_text], got shape {similarity.shape}")
    n_audio, n_text = similarity.shape
    if text_to_audio.shape != (n_text,):
        raise ValueError(
            f"text_to_audio must have shape [n_text] = [{n_text}] (one audio index per caption, i.e. per "
            f"similarity column), got shape {text_to_audio.shape}"
        )
    if not np.issubdtype(text_to_audio.dtype, np.integer):
        raise ValueError(f"text_to_audio must hold integer audio indices, got dtype {text_to_audio.dtype}")
    if n_text and (text_to_audio.min() < 0 or text_to_audio.max() >= n_audio):
        raise ValueError(f"text_to_audio values must lie in [0, {n_audio}), found "
                         f"[{text_to_audio.min()}, {text_to_audio.max()}]")
    if not np.all(np.isfinite(similarity)):
        raise ValueError("similarity contains NaN or infinite values")
    captions_per_audio = np.bincount(text_to_audio, minlength=n_audio)
    without_caption = np.flatnonzero(captions_per_audio == 0)
    if without_caption.size:
        raise ValueError(
            f"{without_caption.size} audio(s) have no caption (e.g. audio indices "
            f"{without_caption[:10].tolist()}); every row of similarity needs at least one caption"
        )


def rank_matrix(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every candidate within its row, by descending score, stable on ties.

    Args:
        scores: [n_queries, n_candidates].
    Returns:
        ranks: [n_queries, n_candidates] int, ranks[q, c] = position of candidate c for query q.
    """
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(scores.shape[1])[None, :]
    return ranks


def _rank_summary(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    """R@k, medR and meanR of 0-based ranks [n_queries], keys prefixed with `prefix`."""
    metrics = {f"{prefix}_R{k}_percent": float(100.0 * np.mean(ranks < k)) for k in RECALL_CUTOFFS}
    metrics[f"{prefix}_medR"] = float(np.floor(np.median(ranks)) + 1)
    metrics[f"{prefix}_meanR"] = float(np.mean(ranks) + 1)
    return metrics


def average_precision_at_k(relevant_ranks: np.ndarray, k: int = MAP_CUTOFF) -> float:
    """AP@k of one query: (1 / n_relevant) * sum of precision at each relevant rank < k.

    Args:
        relevant_ranks: [n_relevant] 0-based ranks of the relevant items (any order).
    """
    sorted_ranks = np.sort(relevant_ranks)
    hits_so_far = np.arange(1, sorted_ranks.size + 1)
    precisions = hits_so_far / (sorted_ranks + 1)
    return float(precisions[sorted_ranks < k].sum() / sorted_ranks.size)


def text_to_audio_ranks(similarity: np.ndarray, text_to_audio: np.ndarray) -> np.ndarray:
    """[n_text] 0-based rank of each caption's audio among all audios (similarity [n_audio, n_text])."""
    ranks = rank_matrix(similarity.T)
    return ranks[np.arange(similarity.shape[1]), text_to_audio]


def audio_to_text_ranks(similarity: np.ndarray, text_to_audio: np.ndarray) -> list[np.ndarray]:
    """Per audio, the 0-based ranks of its own captions among all captions.

    Returns:
        a list of n_audio arrays, item i of shape [n_captions_of_audio_i].
    """
    ranks = rank_matrix(similarity)
    return [ranks[audio, text_to_audio == audio] for audio in range(similarity.shape[0])]


def retrieval_metrics(similarity: Any, text_to_audio: Any) -> dict[str, float]:
    """Text-to-audio and audio-to-text retrieval metrics.

    Args:
        similarity: [n_audio, n_text] numpy array or torch tensor (e.g. cosine similarities).
        text_to_audio: [n_text] int, the index of the audio (row) that caption (column) j describes.
            Any number of captions per audio; an audio without caption raises ValueError.
    Returns:
        {t2a,a2t}_{R1,R5,R10,R50}_percent, {t2a,a2t}_mAP10_percent (0..100), {t2a,a2t}_medR,
        {t2a,a2t}_meanR (1-based ranks).
    """
    similarity = to_numpy(similarity).astype(np.float64, copy=False)
    text_to_audio = to_numpy(text_to_audio)
    _validate_inputs(similarity, text_to_audio)

    t2a_ranks = text_to_audio_ranks(similarity, text_to_audio)
    metrics = _rank_summary(t2a_ranks, "t2a")
    t2a_precisions = np.where(t2a_ranks < MAP_CUTOFF, 1.0 / (t2a_ranks + 1), 0.0)
    metrics["t2a_mAP10_percent"] = float(100.0 * np.mean(t2a_precisions))

    a2t_caption_ranks = audio_to_text_ranks(similarity, text_to_audio)
    a2t_best_ranks = np.array([ranks.min() for ranks in a2t_caption_ranks])
    metrics.update(_rank_summary(a2t_best_ranks, "a2t"))
    metrics["a2t_mAP10_percent"] = float(100.0 * np.mean([average_precision_at_k(ranks)
                                                          for ranks in a2t_caption_ranks]))
    return metrics


def retrieval_score(metrics: dict[str, float]) -> float:
    """Model-selection criterion, in percent points: T2A R@1 + T2A R@5 + A2T R@1 + A2T R@5."""
    return sum(metrics[f"{direction}_R{k}_percent"] for direction in ("t2a", "a2t") for k in (1, 5))
