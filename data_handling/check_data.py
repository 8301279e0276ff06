"""Check the training data before a run, reading it exactly as training does.

    python -m data_handling.check_data -c settings/pretrain.yaml            # json_files, blacklist, data_args
    python -m data_handling.check_data --json a.json b.json --blacklist bl.json --audio-root DIR
    python -m data_handling.check_data -c settings/pretrain.yaml --decode --strict --out report.json

Per json file it counts the clips and captions kept (and the empty captions among them, which training
keeps as the reference does), the clips the blacklist removed (and which list
applied), the audio files missing (found neither at the json's path nor under audio_root, where a file of
another dataset is never taken: data_handling/audio_paths.py's AudioPathResolver) and, with --decode,
the files whose header soundfile cannot read; it gives the captions per duration bucket (those whose
audio was found) and the batches of one epoch on one process. It prints a table and writes a JSON
report (--out; default <output_dir>/check_data.json, the path is printed), which lists every missing
clip with the reason.

Exit status: 0; 1 with --strict when a file is missing or unreadable; 2 when the configuration, a json
file or the blacklist is missing or malformed (one line "error: ...").
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_handling.audio_io import AudioReadError, audio_duration
from data_handling.audio_paths import MAX_REPORTED, AudioPathResolver
from data_handling.caption_rows import JsonFileContents
from data_handling.caption_sources import read_json_files
from data_handling.samplers import DurationBucketBatchSampler, bucket_labels, duration_histogram
from data_handling.source_records import SourceOptions
from data_handling.training_items import describe_clip, fill_missing_durations, resolve_audio_paths


@dataclass
class DataSettings:
    """What check_data needs of a training config."""

    json_files: list[str]
    blacklist: str | list[str] | None
    audio_root: str | None
    bucket_edges: list[float]
    batch_size: int
    drop_last: bool
    default_out: Path
    options: SourceOptions | None = None  # tables, class folders, datasets: templates, strict, audio cache


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_handling.check_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="training YAML (json_files, blacklist, data_args)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. --set data_args.audio_root=/data (repeatable)")
    parser.add_argument("--json", nargs="+", metavar="FILE", help="training json files (instead of json_files)")
    parser.add_argument("--blacklist", nargs="+", metavar="PATH",
                        help="blacklist file(s) or folder (instead of the YAML's blacklist)")
    parser.add_argument("--audio-root", help="where missing audio is looked up (instead of data_args.audio_root)")
    parser.add_argument("--decode", action="store_true",
                        help="open every audio file's header (soundfile.info) and count unreadable ones")
    parser.add_argument("--workers", type=int, default=8, help="threads for --decode (default: %(default)s)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if a file is missing or unreadable")
    parser.add_argument("--out", type=Path, help="JSON report (default: <output_dir>/check_data.json)")
    return parser.parse_args(argv)


def data_settings(args: argparse.Namespace) -> DataSettings:
    """The YAML's data keys (or the defaults without -c), with --json, --blacklist, --audio-root on top."""
    from data_handling.synthetic.corpus import corpus_paths
    from tools.config import load_config

    if args.config is None and not args.json:
        raise ValueError("give a training YAML (-c settings/pretrain.yaml) or json files (--json FILE ...)")
    config = load_config(args.config, args.overrides)
    json_files = list(args.json) if args.json else list(config.json_files)
    if not json_files and config.synthetic is not None:  # the quickstart: its corpus's training split
        json_files = [corpus_paths(Path(config.synthetic.root))["train_json"]]
    if not json_files:
        raise ValueError(f"{args.config}: json_files is empty; list the training json files there or pass --json")
    blacklist = args.blacklist if args.blacklist else config.blacklist
    if isinstance(blacklist, list) and len(blacklist) == 1:
        blacklist = blacklist[0]
    data_args = config.data_args
    return DataSettings(json_files, blacklist, args.audio_root or data_args.audio_root,
                        list(data_args.duration_bucket_edges), data_args.batch_size, data_args.drop_last,
                        Path(config.output_dir) / "check_data.json",
                        SourceOptions(tuple(data_args.caption_templates), data_args.strict, data_args.audio_cache))


def unreadable_files(paths: Sequence[Path], workers: int) -> dict[Path, str]:
    """{path: reason} for the files whose header soundfile cannot read."""

    def reason(path: Path) -> str | None:
        try:
            audio_duration(path)
        except AudioReadError as error:
            return error.reason
        return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(reason, paths))
    return {path: why for path, why in zip(paths, reasons, strict=True) if why is not None}


def check_json_file(contents: JsonFileContents, resolver: AudioPathResolver, settings: DataSettings,
                    decode: bool, workers: int) -> tuple[dict[str, Any], list[float]]:
    """The report record of one json file, and the durations of its captions whose audio was found."""
    resolution = resolve_audio_paths(contents.items, resolver)
    found = fill_missing_durations(resolution.found)
    missing = resolution.unresolved_clips
    missing_records = resolution.missing_records()
    record: dict[str, Any] = {
        "path": contents.path, "blacklist_list": contents.blacklist_key,
        "clips_blacklisted": contents.num_blacklisted, "clips": contents.num_clips,
        "captions": len(contents.items), "empty_captions": contents.num_empty_captions,
        "missing_files": len(missing),
        "missing_examples": [f"{describe_clip(item, with_source=False)}: {record['reason']}"
                             for item, record in zip(missing[:MAX_REPORTED], missing_records, strict=False)],
        "missing": [{key: record[key] for key in ("id", "audio", "reason")} for record in missing_records],
        "skipped": contents.skipped,  # tables, class folders, datasets: reason -> clips or captions left out
    }
    if decode:
        broken = unreadable_files(list(dict.fromkeys(item.audio_path for item in found)), workers)
        record["unreadable_files"] = len(broken)
        record["unreadable_examples"] = [f"{path}: {why}" for path, why in list(broken.items())[:MAX_REPORTED]]
    record["duration_histogram"] = duration_histogram([item.duration for item in found], settings.bucket_edges)
    return record, [item.duration for item in found]


def build_report(settings: DataSettings, decode: bool = False, workers: int = 8) -> dict[str, Any]:
    """Read, filter and resolve as training does; the per-file records and their totals."""
    resolver = AudioPathResolver(settings.audio_root)
    files: list[dict[str, Any]] = []
    durations: list[float] = []
    for contents in read_json_files(settings.json_files, settings.audio_root, settings.blacklist, settings.options):
        record, found_durations = check_json_file(contents, resolver, settings, decode, workers)
        files.append(record)
        durations += found_durations
    labels = bucket_labels(settings.bucket_edges)
    totals: dict[str, Any] = {key: sum(record[key] for record in files)
                              for key in ("clips", "captions", "empty_captions", "clips_blacklisted", "missing_files")}
    if decode:
        totals["unreadable_files"] = sum(record["unreadable_files"] for record in files)
    totals["duration_histogram"] = {label: sum(record["duration_histogram"][label] for record in files)
                                    for label in labels}
    sampler = DurationBucketBatchSampler(durations, settings.batch_size, settings.bucket_edges,
                                         drop_last=settings.drop_last, num_replicas=1, rank=0)
    totals["batches_per_epoch"] = sampler.total_batches
    return {"json_files": files, "totals": totals, "blacklist": settings.blacklist,
            "audio_root": settings.audio_root, "bucket_edges": settings.bucket_edges,
            "batch_size": settings.batch_size, "drop_last": settings.drop_last, "decoded": decode,
            "ambiguous_file_names": resolver.ambiguous_lookups,
            "refused_other_dataset": resolver.other_dataset_refusals,
            "refused_ambiguous": resolver.ambiguous_refusals}


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width table: one row per json file, then the totals."""
    labels = list(report["totals"]["duration_histogram"])
    decoded = report["decoded"]
    header = ["json file", "list", "clips", "captions", "blacklisted", "missing"] \
        + (["unreadable"] if decoded else []) + ["empty captions"] + labels

    def row(name: str, record: dict[str, Any], list_name: str) -> list[str]:
        values = [name, list_name, record["clips"], record["captions"], record["clips_blacklisted"],
                  record["missing_files"]] + ([record["unreadable_files"]] if decoded else []) \
            + [record["empty_captions"]]
        return [str(value) for value in values + list(record["duration_histogram"].values())]

    rows = [row(record["path"], record, record["blacklist_list"] or "-") for record in report["json_files"]]
    rows.append(row("total", report["totals"], ""))
    widths = [max(len(line[column]) for line in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) if column < 2 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(line, widths, strict=True)))
             for line in [header, *rows]]
    notes = [f"duration buckets in seconds, captions whose audio was found; {report['totals']['batches_per_epoch']} "
             f"batches of {report['batch_size']} per epoch on one process ("
             + ("each bucket's incomplete batch dropped)" if report["drop_last"] else "incomplete batches kept)")]
    if not decoded:
        notes.append("audio files checked for existence only; --decode opens each header")
    if report["totals"]["empty_captions"]:
        notes.append(f"{report['totals']['empty_captions']} empty captions: kept and trained on, as the reference "
                     f"(the text tower sees [CLS] [SEP])")
    if report["refused_other_dataset"]:
        notes.append(f"{report['refused_other_dataset']} clips missing because their file name is only under "
                     f"another dataset's folders (not taken)")
    if report["refused_ambiguous"]:
        notes.append(f"{report['refused_ambiguous']} clips missing because their file name is at several paths "
                     f"and nothing names their dataset (not taken)")
    for record in report["json_files"]:
        notes += [f"missing in {record['path']}: {example}" for example in record["missing_examples"]]
        notes += [f"skipped in {record['path']}: {count} ({reason})" for reason, count in record["skipped"].items()]
        notes += [f"unreadable in {record['path']}: {example}" for example in record.get("unreadable_examples", [])]
    return "\n".join(lines + [""] + notes)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from tools.config import ConfigError

    try:
        settings = data_settings(args)
        report = build_report(settings, decode=args.decode, workers=args.workers)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or settings.default_out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_table(report))
    print(f"report: {out}")
    totals = report["totals"]
    problems = totals["missing_files"] + totals.get("unreadable_files", 0)
    if args.strict and problems:
        print(f"error: {problems} audio files missing or unreadable (--strict)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
