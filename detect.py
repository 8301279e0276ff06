"""Open-vocabulary sound event detection on any recording: text queries -> events with timestamps.

    python detect.py recording.wav --query "a dog barks" --query "a siren" --plot
    python detect.py data/synthetic/sed/audio --classes-from data/synthetic/sed/metadata/eval.tsv \\
        --out-dir outputs/detect_sed --ground-truth data/synthetic/sed/metadata/eval.tsv
    python detect.py --calibrate DEV_TSV --calibration-out outputs/calibration.json   # thresholds per class
    python detect.py FOLDER --queries-file queries.txt --thresholds outputs/calibration.json

Audio: files, folders (recursive) or text files listing paths; any length, sample rate and channel count.
Files longer than 10 s are streamed window by window (memory: one batch of windows plus the scores).
Scores per frame (10 / 32 s): cosine(frame, query) as the SED protocol (--score sigmoid: the grounding
protocol's), median filter (3 frames), optional gap joining and minimum length, then a threshold per query
(--threshold, default 0.5 on the cosine, or the calibrated ones of --thresholds). Outputs in --out-dir:
scores/<file>.tsv (sed_scores_eval score files), events.tsv (filename onset offset event_label score),
detections.json, plots/ (--plot). Unreadable files are skipped and listed. Details: docs/detection.md.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tools.detect.calibration import calibrate, load_calibration, read_labelled_set, save_calibration
from tools.detect.detector import StreamOptions, detect_files, resolve_thresholds
from tools.detect.events import SCORE_KINDS, DecisionSettings
from tools.detect.inputs import classes_from_tsv, collect_audio_files, collect_queries
from tools.detect.outputs import DetectionWriter
from tools.detect.scoring import score_detections
from tools.detect.streaming import DEFAULT_OVERLAP, OVERLAPS
from tools.eval.cli import (
    add_strict_option,
    exit_script,
    load_script_config,
    load_script_model,
    report,
    resolve_path,
    run_script,
    script_parser,
)
from tools.eval.common import coverage_line, file_coverage, require_complete

DEFAULT_OUT_DIR = "outputs/detect"


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__, out_help="also write the run's summary to this JSON file")
    parser.add_argument("audio", nargs="*", help="audio files, folders or text files listing audio paths")
    queries = parser.add_argument_group("queries")
    queries.add_argument("--query", action="append", default=[], metavar="TEXT", help="a text query (repeatable)")
    queries.add_argument("--queries-file", help="text file with one query per line")
    queries.add_argument("--classes-from", metavar="TSV", help="query the classes of a DESED / AudioSet-strong tsv "
                                                               "(labels '_' -> ' ', lower case)")
    decisions = parser.add_argument_group("scores and decisions (defaults: the SED protocol, or the calibration file's)")
    decisions.add_argument("--score", choices=SCORE_KINDS, help="frame score: cosine (SED protocol, default) or "
                                                                "sigmoid of the cosine (grounding protocol)")
    decisions.add_argument("--median-filter", type=int, metavar="FRAMES", help="median filter length (default 3)")
    decisions.add_argument("--join-gap", type=float, metavar="SECONDS", help="join detections of a query separated "
                                                                             "by at most this gap (default 0)")
    decisions.add_argument("--min-length", type=float, metavar="SECONDS", help="drop shorter detections (default 0)")
    decisions.add_argument("--threshold", type=float, help="threshold of queries without a calibrated one (default "
                                                           "0.5 on the cosine scale, sigmoid(0.5) on the sigmoid one)")
    decisions.add_argument("--thresholds", metavar="CALIBRATION_JSON", help="thresholds per query from detect.py "
                                                                             "--calibrate (and the settings they hold for)")
    decisions.add_argument("--overlap", type=float, choices=OVERLAPS,
                           help=f"overlap of the 10 s windows of long files, overlapping frames averaged "
                                f"(default {DEFAULT_OVERLAP})")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--out-dir", default=DEFAULT_OUT_DIR, help="output folder (default: %(default)s)")
    outputs.add_argument("--plot", action="store_true", help="save a figure per file in <out-dir>/plots/")
    outputs.add_argument("--ground-truth", metavar="TSV", help="after detecting, score the written outputs against "
                                                               "this DESED tsv (PSDS, collar F1)")
    outputs.add_argument("--durations-tsv", help="durations of --ground-truth or --calibrate (default: "
                                                 "<tsv stem>_durations.tsv beside it, else the audio headers)")
    outputs.add_argument("--audio-dir", help="audio folder of --ground-truth or --calibrate (default: <root>/audio "
                                             "of <root>/metadata/x.tsv, else audio/ beside the tsv)")
    calibration = parser.add_argument_group("calibration")
    calibration.add_argument("--calibrate", metavar="DEV_TSV", help="pick per class of this labelled set the "
                                                                    "threshold of the best collar F1; no detection run")
    calibration.add_argument("--calibration-out", default="outputs/detect_calibration.json",
                             help="where --calibrate writes the thresholds (default: %(default)s)")
    add_strict_option(parser)
    return parser.parse_args(argv)


def decision_settings(args, calibration: dict | None) -> DecisionSettings:
    """The flags on top of the defaults, or of the calibration file's settings (a conflicting flag is an error)."""
    base = DecisionSettings.from_dict(calibration["settings"]) if calibration else DecisionSettings()
    explicit = {name: value for name, value in (("score", args.score), ("median_frames", args.median_filter),
                                                ("join_gap_seconds", args.join_gap),
                                                ("min_length_seconds", args.min_length)) if value is not None}
    if calibration:
        conflicts = {name: value for name, value in explicit.items() if getattr(base, name) != value}
        if conflicts:
            raise ValueError(f"the thresholds of {args.thresholds} hold for {base.to_dict()}, not for {conflicts}; "
                             f"drop those flags or calibrate again with them")
    return replace(base, **explicit)


def stream_options(args, config, calibration: dict | None = None) -> StreamOptions:
    overlap = args.overlap
    calibrated = calibration.get("overlap") if calibration else None
    if overlap is not None and calibrated is not None and overlap != calibrated:
        raise ValueError(f"the thresholds of {args.thresholds} hold for --overlap {calibrated}; drop --overlap "
                         f"{overlap} or calibrate again with it")
    overlap = overlap if overlap is not None else calibrated if calibrated is not None else DEFAULT_OVERLAP
    return StreamOptions(overlap=overlap, batch_size=config.eval.batch_size, num_workers=config.eval.num_workers,
                         precision=config.eval.precision)


def run_info(args, config, device, settings: DecisionSettings, options: StreamOptions) -> dict[str, Any]:
    return {"checkpoint": str(config.eval.ckpt), "device": str(device), "settings": settings.to_dict(),
            "overlap": options.overlap, "calibration": args.thresholds}


def run_calibration(args, config) -> dict[str, Any]:
    labelled = read_labelled_set(resolve_path(args.calibrate), resolve_path(args.audio_dir),
                                 resolve_path(args.durations_tsv))
    settings = decision_settings(args, None)
    options = stream_options(args, config)
    model, device = load_script_model(args, config)
    result = calibrate(model, labelled, settings, args.threshold, device, options, strict=config.eval.strict)
    result["overlap"] = options.overlap
    info = {**run_info(args, config, device, settings, options), "dev_tsv": str(args.calibrate)}
    path = save_calibration(resolve_path(args.calibration_out), result, info)
    summary = {"collar_f1_before": result["collar_f1"]["before"]["macro"],
               "collar_f1_after": result["collar_f1"]["after"]["macro"],
               "default_threshold": result["default_threshold"], "num_clips": result["num_clips"],
               "num_events": result["num_events"], "num_classes": len(result["thresholds"]),
               "not_calibrated": result["not_calibrated"], "complete": result["complete"],
               "num_files": result["num_files"], "num_scored": result["num_scored"],
               "num_skipped": result["num_skipped"], "skipped": result["skipped"], "calibration_file": str(path)}
    report("Detection threshold calibration (collar F1 on the development set)", summary, args.out, info)
    return summary


def run_detection(args, config) -> dict[str, Any]:
    calibration = load_calibration(resolve_path(args.thresholds)) if args.thresholds else None
    texts = list(args.query) + (classes_from_tsv(resolve_path(args.classes_from)) if args.classes_from else [])
    queries = collect_queries(texts, resolve_path(args.queries_file) if args.queries_file else None)
    paths = collect_audio_files([resolve_path(source) for source in args.audio])
    settings = decision_settings(args, calibration)
    options = stream_options(args, config, calibration)
    model, device = load_script_model(args, config)
    default = args.threshold if args.threshold is not None else (calibration or {}).get("default_threshold")
    calibrated = calibration["thresholds"] if calibration else None
    thresholds = resolve_thresholds(queries, calibrated, settings, default)
    info = run_info(args, config, device, settings, options)
    writer = DetectionWriter(resolve_path(args.out_dir), queries, thresholds, info,
                             plot_model=model if args.plot else None)
    try:
        for result in detect_files(model, paths, queries, settings, calibrated, default, device, options):
            writer.add(result)
    finally:
        summary = writer.close()
    require_complete(file_coverage(len(paths), [(entry["path"], entry["reason"]) for entry in summary["skipped"]]),
                     "the audio given", config.eval.strict)
    if summary["num_files"] == 0:
        raise FileNotFoundError(f"none of the {len(paths)} audio file(s) could be read (first: "
                                f"{summary['skipped'][0]['path']}: {summary['skipped'][0]['reason']})")
    if args.ground_truth:
        labelled = read_labelled_set(resolve_path(args.ground_truth), resolve_path(args.audio_dir),
                                     resolve_path(args.durations_tsv))
        summary["scores"] = score_detections(writer.out_dir, labelled, strict=config.eval.strict)
    summary.pop("thresholds")
    report("Open-vocabulary detection", summary, args.out, info)
    if "scores" in summary:
        print(f"ground truth: {coverage_line(summary['scores'])}")
    return summary


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    if args.calibrate:
        return run_calibration(args, config)
    if not args.audio:
        raise ValueError("no audio given; pass audio files, folders or a text file listing audio paths "
                         "(or --calibrate DEV_TSV)")
    return run_detection(args, config)


if __name__ == "__main__":
    exit_script(run_script(main))
