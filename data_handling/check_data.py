"""The report on the training data before a run, read exactly as training does (`python -m tools.check_data`).

Per json file it counts the clips and captions kept (and the empty captions among them, which training
keeps as the reference does), the clips the blacklist removed (and which list
applied), the audio files missing (found neither at the json's path nor under audio_root, where a file of
another dataset is never taken: data_handling/audio_paths.py's AudioPathResolver) and, with decode=True,
the files whose header soundfile cannot read; it gives the captions per duration bucket (those whose
audio was found) and the batches of one epoch on one process. `build_report(DataSettings)` makes the
report (a JSON-ready dict, which lists every missing clip with the reason); `format_table` prints it.
"""

from __future__ import annotations

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
    """What the report needs of a training config: its data keys, as plain values."""

    json_files: list[str]
    blacklist: str | list[str] | None
    audio_root: str | None
    bucket_edges: list[float]
    batch_size: int
    drop_last: bool
    default_out: Path
    options: SourceOptions | None = None  # tables, class folders, datasets: templates, strict, audio cache


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
