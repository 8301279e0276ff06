"""Time of the evaluation metrics on generated scores, with their values side by side (they must be equal).

    python -m benchmarks.metrics [--phrases 200] [--clips 200] [--classes 10] [--repeats 3] [--seed 0] [--out FILE]

grounding: `grounding_psds` (counts by tools.eval.psds_counts) against psds_eval alone, on `--phrases` phrases
of 32 random frames and one true segment each; sed: `sed_metrics` with processes='auto' against one process, on
`--clips` clips of 32 frames of random scores for `--classes` classes with two events each, then each SED metric
alone, once. The median of `--repeats` runs of each is reported.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from benchmarks.measure import time_calls, write_json

FRAMES = 32


def psds_eval_grounding_psds(probs: Mapping[str, np.ndarray], truth: Mapping[str, Sequence[Sequence[float]]],
                             durations: Mapping[str, float], clip_to_duration: bool = False) -> dict[str, float]:
    """The grounding PSDS computed by psds_eval alone: the detection table of every threshold (the protocol's
    median filter and gap joining, `grounding_detections`) added as an operating point, at each criterion."""
    from models.windowing import FRAME_HOP_SECONDS
    from tools.eval import grounding_metrics as protocol

    gt_table, metadata, curves, _ = protocol._grounding_tables(probs, truth, durations)
    max_gap = int(np.ceil(protocol.GROUNDING_JOIN_SECONDS / FRAME_HOP_SECONDS))
    tables = [protocol.grounding_detections(curves, durations, threshold, max_gap=max_gap,
                                            median_size=protocol.GROUNDING_MEDIAN_FRAMES,
                                            clip_to_duration=clip_to_duration)
              for threshold in protocol.GROUNDING_THRESHOLDS]
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # single-class NaN means, repeated tables, pandas 2
        for criterion in protocol.GROUNDING_DTC_GTC:
            evaluator = protocol._PSDSEval(dtc_threshold=criterion, gtc_threshold=criterion, cttc_threshold=0.0,
                                           ground_truth=gt_table, metadata=metadata)
            for table in tables:
                evaluator.add_operating_point(table)
            results[f"psds_{criterion}"] = float(evaluator.psds(0.0, 0.0, protocol.GROUNDING_MAX_EFPR).value)
    return results


def grounding_input(num_phrases: int, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """phrase -> [32] probabilities, [(onset, offset)], 10 s."""
    probs = {f"phrase{index:05d}": rng.random(FRAMES) for index in range(num_phrases)}
    truth = {}
    for phrase in probs:
        onset = float(rng.uniform(0.0, 8.0))
        truth[phrase] = [[onset, onset + float(rng.uniform(0.3, 2.0))]]
    return probs, truth, dict.fromkeys(probs, 10.0)


def sed_input(num_clips: int, num_classes: int, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """clip -> score DataFrame, [(onset, offset, label)] (every class has events), 10 s."""
    from tools.eval.sed_metrics import sed_scores_from_frames

    classes = [f"class{index:03d}" for index in range(num_classes)]
    frames = {f"clip{index:05d}": rng.random((FRAMES, num_classes)) for index in range(num_clips)}
    truth = {}
    for index, clip in enumerate(frames):
        labels = [classes[index % num_classes], classes[int(rng.integers(num_classes))]]
        truth[clip] = [(onset, onset + float(rng.uniform(0.5, 3.0)), label)
                       for onset, label in zip((float(rng.uniform(0, 3)), float(rng.uniform(5, 7))), labels,
                                               strict=True)]
    return sed_scores_from_frames(frames, classes), truth, dict.fromkeys(frames, 10.0)


def timed(function: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    values: list[Any] = []
    seconds, _ = time_calls(lambda _: values.append(function()), range(repeats))
    return values[-1], seconds


def compare(name: str, ours: Callable[[], Any], theirs: Callable[[], Any], repeats: int,
            labels: tuple[str, str]) -> dict[str, Any]:
    (ours_value, ours_s), (theirs_value, theirs_s) = timed(ours, repeats), timed(theirs, repeats)
    return {"metric": name, "labels": list(labels),
            "seconds": {labels[0]: statistics.median(ours_s), labels[1]: statistics.median(theirs_s)},
            "seconds_all": {labels[0]: ours_s, labels[1]: theirs_s},
            "values": {labels[0]: ours_value, labels[1]: theirs_value}, "equal": ours_value == theirs_value}


def measure(num_phrases: int, num_clips: int, num_classes: int, repeats: int, seed: int) -> dict[str, Any]:
    from tools.eval import sed_metrics as protocol
    from tools.eval.grounding_metrics import grounding_psds
    from tools.eval.loader_defaults import usable_cpus

    rng = np.random.default_rng(seed)
    probs, truth, durations = grounding_input(num_phrases, rng)
    scores, events, clip_durations = sed_input(num_clips, num_classes, rng)
    grounding = compare(
        "grounding PSDS (0.7, 0.5, 0.1)",
        lambda: {key: value for key, value in grounding_psds(probs, truth, durations).items()
                 if key.startswith("psds_")},
        lambda: psds_eval_grounding_psds(probs, truth, durations), repeats,
        ("psds_counts", "psds_eval alone"))
    sed = compare("SED PSDS1, PSDS2, collar F1, segment F1",
                  lambda: protocol.sed_metrics(scores, events, clip_durations, processes="auto"),
                  lambda: protocol.sed_metrics(scores, events, clip_durations, processes=1), repeats,
                  (f"{protocol.metric_processes('auto')} processes (auto)", "1 process"))
    scored, scored_events, scored_durations = protocol._select_scored_clips(scores, events, clip_durations)
    each = {name: timed(lambda name=name: protocol._one_sed_metric(name, scored, scored_events, scored_durations,
                                                                   1), 1)[1][0] for name in protocol.SED_METRICS}
    return {"settings": {"phrases": num_phrases, "clips": num_clips, "classes": num_classes, "repeats": repeats,
                         "seed": seed, "usable_cpus": usable_cpus()},
            "results": [grounding, sed], "sed_each_metric_s": each}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| metrics | input | way | s (median) | way | s (median) | same values |", "|---|---|---|---|---|---|---|"]
    settings = report["settings"]
    inputs = [f"{settings['phrases']} phrases", f"{settings['clips']} clips, {settings['classes']} classes"]
    for result, inputs_text in zip(report["results"], inputs, strict=True):
        first, second = result["labels"]
        lines.append(f"| {result['metric']} | {inputs_text} | {first} | {result['seconds'][first]:.3f} | {second} | "
                     f"{result['seconds'][second]:.3f} | {result['equal']} |")
    each = ", ".join(f"{name} {seconds:.3f}" for name, seconds in report["sed_each_metric_s"].items())
    lines.append(f"\nSED, each metric alone in this process (s, one run): {each}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phrases", type=int, default=200, help="grounding phrases")
    parser.add_argument("--clips", type=int, default=200, help="SED clips")
    parser.add_argument("--classes", type=int, default=10, help="SED classes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the JSON report here")
    args = parser.parse_args(argv)
    if min(args.phrases, args.clips, args.classes, args.repeats) < 1:
        parser.error("--phrases, --clips, --classes and --repeats must be at least 1")
    report = measure(args.phrases, args.clips, args.classes, args.repeats, args.seed)
    print(markdown(report))
    write_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
