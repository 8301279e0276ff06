"""Scoring detect.py's written outputs against strong labels, with sed_scores_eval, from the files alone.

The score files (OUT/scores/*.tsv) are read back with sed_scores_eval's `read_sed_scores` and scored as
the SED protocol scores a model (`tools.eval.sed_metrics.sed_metrics`: PSDS1, PSDS2, best collar and
segment F1, on the clips with at least one event); the collar F1 of the detections themselves is that of
the score files at the thresholds recorded in OUT/detections.json.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from tools.detect.calibration import LabelledSet, collar_f1, scored_truth
from tools.eval.common import file_coverage, require_complete
from tools.eval.sed_metrics import sed_metrics

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from sed_scores_eval.base_modules.io import read_sed_scores


def score_detections(out_dir: str | Path, labelled: LabelledSet, strict: bool = False) -> dict[str, Any]:
    """PSDS1, PSDS2, best collar F1, segment F1 of OUT/scores and the collar F1 of the detections.

    Every class of the labelled set must be a query of the run (a column of the score files); other
    queries are ignored. Clips of the labelled set with an event but without a score file (skipped by the
    detection run), or whose audio header could not be read, are left out and listed; with `strict` they
    raise IncompleteEvaluationError naming the files instead.
    Returns:
        psds1, psds2, collar_f1 (best threshold per class), segment_f1, collar_f1_at_thresholds (macro),
        collar_f1_at_thresholds_per_class, num_clips (scored), num_classes, and
        `tools.eval.common.file_coverage`'s complete, num_files, num_scored, num_skipped, skipped (over the
        clips with an event).
    """
    out_dir = Path(out_dir)
    summary_path = out_dir / "detections.json"
    if not summary_path.is_file() or not (out_dir / "scores").is_dir():
        raise FileNotFoundError(f"{out_dir} holds no detect.py outputs (scores/ and detections.json); run detect.py "
                                f"with --out-dir {out_dir} first")
    thresholds = json.loads(summary_path.read_text(encoding="utf-8"))["thresholds"]
    scores = read_sed_scores(out_dir / "scores")
    with_events = [(clip, path) for clip, path in zip(labelled.clip_ids, labelled.paths, strict=True)
                   if labelled.ground_truth.get(clip)]
    unscored = [(str(path), "no score file: the detection run skipped it") for clip, path in with_events
                if clip not in scores]
    unreadable = [(entry["path"], entry["reason"]) for entry in labelled.skipped]
    coverage = file_coverage(len(with_events) + len(unreadable), unreadable + unscored)
    require_complete(coverage, labelled.tsv, strict)
    clips = sorted(clip for clip in scores if labelled.ground_truth.get(clip))
    if not clips:
        raise ValueError(f"no scored file of {out_dir} has an event in {labelled.tsv}; clip ids are file names "
                         f"without extension")
    truth = scored_truth(labelled, clips)
    classes = sorted({label for events in truth.values() for *_, label in events})
    missing = [label for label in classes if label not in thresholds]
    if missing:
        raise ValueError(f"classes {missing[:10]} of {labelled.tsv} were not queries of the run; query every class "
                         f"(detect.py --classes-from {labelled.tsv})")
    columns = ["onset", "offset", *classes]
    scores = {clip: scores[clip][columns] for clip in clips}
    result: dict[str, Any] = sed_metrics(scores, truth, {clip: labelled.durations[clip] for clip in clips})
    at_thresholds = collar_f1(scores, truth, {label: thresholds[label] for label in classes})
    result.update(collar_f1_at_thresholds=at_thresholds["macro"],
                  collar_f1_at_thresholds_per_class=at_thresholds["per_class"], num_classes=len(classes), **coverage)
    return result


def score_search(hits: dict[str, list], labelled: LabelledSet) -> dict[str, Any]:
    """Search results against strong labels: per class query, precision of its hits (a hit is relevant when
    its file has an event of the class) and, of the relevant hits, the fraction whose best span overlaps
    one of those events.

    Args:
        hits: class name -> [Hit, ...] (tools.detect.index.Hit), best first; hit paths are matched to the
            labelled set's clips by file name without extension.
    Returns:
        precision_at_k (mean over queries), span_overlap (over all relevant hits), k, per_query
        {class: {precision, span_overlap}}.
    """
    per_query, overlaps_all, k = {}, [], 0
    for label, query_hits in hits.items():
        k = max(k, len(query_hits))
        relevant, overlaps = 0, []
        for hit in query_hits:
            events = [(on, off) for on, off, event_label in labelled.ground_truth.get(Path(hit.path).stem, [])
                      if event_label == label]
            if events:
                relevant += 1
                overlaps.append(any(hit.onset < off and on < hit.offset for on, off in events))
        per_query[label] = {"precision": relevant / max(1, len(query_hits)),
                            "span_overlap": sum(overlaps) / len(overlaps) if overlaps else None}
        overlaps_all += overlaps
    return {"precision_at_k": sum(entry["precision"] for entry in per_query.values()) / max(1, len(per_query)),
            "span_overlap": sum(overlaps_all) / len(overlaps_all) if overlaps_all else None, "k": k,
            "per_query": per_query}
