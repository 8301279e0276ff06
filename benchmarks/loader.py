"""Loader benchmark: training clips/s one data-loader worker process delivers, and the workers a GPU needs.

    python -m benchmarks.loader                                   # WavCaps-like files, all four ways
    python -m benchmarks.loader --clips 12 --batches 4 --quiet    # a quick look
    python -m benchmarks.loader --table run.json                  # the markdown tables of a saved run

WavCaps-like files (`wavcaps_like_durations`; 44.1 kHz FLAC and WAV, one in four stereo) are written into
`--workdir` (kept) and as shards; duration-bucketed batches are read in this one process (one worker's work)
three ways (WAYS: decoded whole as the reference does, decoded partially, indexed shards), with the page cache
warm. Also one window of files of SINGLE_FILE_SECONDS whole and partially, and of a 60 s file per resampler.
What each way is and the figures: docs/shards.md#loader-benchmark; STEP_CLIPS_PER_SECOND: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

if __package__ in (None, ""):  # python benchmarks/loader.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import machine_info, time_calls, write_json  # noqa: E402
from data_handling.audio_io import RESAMPLERS  # noqa: E402
from data_handling.caption_dataset import CaptionAudioDataset, collate_captions  # noqa: E402
from data_handling.caption_rows import CaptionItem  # noqa: E402
from data_handling.samplers import DurationBucketBatchSampler  # noqa: E402
from data_handling.shards.reader import open_shard_dataset  # noqa: E402
from data_handling.shards.writer import group_clips, write_shards  # noqa: E402

FILE_RATE = 44100
STEP_CLIPS_PER_SECOND = {"paper size, bf16, eager (H200)": 516.0, "paper size, bf16, compiled (H200)": 1810.0}
"""What a training step consumes (benchmarks/RESULTS.md): the rates the workers must deliver."""
SINGLE_FILE_SECONDS = (10.0, 60.0, 300.0, 600.0)
WAYS = ("files, whole", "files, partial", "shards, indexed")


def wavcaps_like_durations(count: int, seed: int = 0) -> list[float]:
    """Seconds per clip, mixed as WavCaps's sources: 27 % AudioSet-like 10 s clips, 65 % FreeSound-like
    log-normal durations of median 30 s within 1-600 s, 8 % BBC-like 30-600 s."""
    rng = np.random.default_rng(seed)
    durations = []
    for _ in range(count):
        source = rng.random()
        if source < 0.27:
            seconds = 10.0
        elif source < 0.92:
            seconds = float(np.clip(rng.lognormal(np.log(30.0), 1.2), 1.0, 600.0))
        else:
            seconds = float(rng.uniform(30.0, 600.0))
        durations.append(round(seconds, 2))
    return durations


def write_clip(path: Path, seconds: float, channels: int, seed: int) -> None:
    if path.is_file() and abs(sf.info(str(path)).duration - seconds) < 0.01:
        return  # kept from an earlier run
    rng = np.random.default_rng(seed)
    samples = (0.2 * rng.standard_normal((round(seconds * FILE_RATE), channels))).astype(np.float32)
    sf.write(path, samples, FILE_RATE, subtype="PCM_16")


def make_files(workdir: Path, durations: Sequence[float], prefix: str = "clip") -> list[CaptionItem]:
    """One file per duration (FLAC and WAV alternating, every fourth stereo) and its caption row."""
    audio = workdir / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    items = []
    for k, seconds in enumerate(durations):
        path = audio / f"{prefix}{k:04d}.{'flac' if k % 2 == 0 else 'wav'}"
        write_clip(path, seconds, channels=2 if k % 4 == 3 else 1, seed=k)
        items.append(CaptionItem(path, f"caption of clip {k}", k, seconds, f"{prefix}{k}", "bench.json", path.name))
    return items


def warm_page_cache(paths: Sequence[Path]) -> None:
    for path in paths:
        with open(path, "rb") as stream:
            while stream.read(1 << 24):  # 16 MB at a time: shards may not fit in memory
                pass


def measure_ways(workdir: Path, items: list[CaptionItem], batch_size: int, num_batches: int,
                 seed: int, resampler: str) -> dict[str, dict[str, float]]:
    """Each way's clips/s over the same batches (each read once, after one untimed read) and median s per batch."""
    shard_dir = workdir / f"shards_{resampler}"
    write_shards(group_clips(items), shard_dir, clips_per_shard=max(1, len(items) // 4), resampler=resampler)
    warm_page_cache([item.audio_path for item in items] + sorted(shard_dir.glob("shard-*.tar")))
    datasets = {"files, whole": CaptionAudioDataset(items, partial_decoding=False, resampler=resampler),
                "files, partial": CaptionAudioDataset(items, partial_decoding=True, resampler=resampler),
                "shards, indexed": open_shard_dataset(str(shard_dir))}
    sampler = DurationBucketBatchSampler([item.duration for item in items], batch_size, seed=seed, drop_last=False)
    order = [index for batch in sampler for index in batch]
    wanted = num_batches * batch_size
    order = (order * math.ceil(wanted / len(order)))[:wanted]
    batches = [order[k:k + batch_size] for k in range(0, wanted, batch_size)]
    results = {}
    for way, dataset in datasets.items():
        torch.manual_seed(seed)
        seconds, _ = time_calls(lambda batch, dataset=dataset: collate_captions([dataset[index] for index in batch]),
                                [batches[0], *batches], warm_up=1)  # the untimed read: imports, first shard opened
        results[way] = {"clips": wanted, "seconds": sum(seconds), "clips_per_s": wanted / sum(seconds),
                        "median_batch_s": statistics.median(seconds)}
    return results


def measure_resamplers(workdir: Path, repeats: int) -> dict[str, float]:
    """Median seconds to read one 10 s training window of a 60 s 44.1 kHz mono FLAC, per resampler."""
    item = make_files(workdir / "resampler", [60.0], prefix="resampler")[0]
    warm_page_cache([item.audio_path])
    return {resampler: median_read_seconds(CaptionAudioDataset([item], resampler=resampler), repeats)
            for resampler in RESAMPLERS}


def median_read_seconds(dataset: CaptionAudioDataset, repeats: int) -> float:
    """Median seconds of `dataset[0]` after one warm-up read (resampy compiles its kernel on first use)."""
    return statistics.median(time_calls(lambda _: dataset[0], range(repeats + 1), warm_up=1)[0])


def measure_single_lengths(workdir: Path, repeats: int, resampler: str) -> list[dict[str, float]]:
    """Seconds to read one 10 s training window of a file of each length, whole and partially."""
    items, rows = make_files(workdir / "single", SINGLE_FILE_SECONDS, prefix="single"), []
    warm_page_cache([item.audio_path for item in items])
    for item in items:
        whole, partial = (median_read_seconds(CaptionAudioDataset([item], partial_decoding=part,
                                                                  resampler=resampler), repeats)
                          for part in (False, True))
        rows.append({"file_seconds": item.duration, "format": item.audio_path.suffix.lstrip("."), "whole_s": whole,
                     "partial_s": partial, "gain": whole / partial})
    return rows


def workers_needed(clips_per_s: float) -> dict[str, int]:
    return {name: math.ceil(rate / clips_per_s) for name, rate in STEP_CLIPS_PER_SECOND.items()}


def markdown_tables(report: dict[str, Any]) -> str:
    names = list(STEP_CLIPS_PER_SECOND)
    lines = ["| way | clips/s per worker | median s per batch of "
             f"{report['settings']['batch_size']} | " + " | ".join(f"workers for {name}" for name in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for way, figures in report["ways"].items():
        needed = workers_needed(figures["clips_per_s"])
        lines.append(f"| {way} | {figures['clips_per_s']:.1f} | {figures['median_batch_s']:.3f} | "
                     + " | ".join(str(needed[name]) for name in names) + " |")
    lines += ["", "| file length (s) | format | whole: s per clip | partial: s per clip | gain |", "|---|---|---|---|---|"]
    for row in report["single_files"]:
        lines.append(f"| {row['file_seconds']:g} | {row['format']} | {row['whole_s']:.4f} | {row['partial_s']:.4f} | "
                     f"{row['gain']:.1f}x |")
    if "resamplers" in report:
        lines += ["", "| resampler | s per 10 s window of a 60 s 44.1 kHz FLAC |", "|---|---|"]
        lines += [f"| {name} | {seconds:.4f} |" for name, seconds in report["resamplers"].items()]
    return "\n".join(lines)


def run(workdir: Path, clips: int, batch_size: int, batches: int, repeats: int, seed: int,
        resampler: str = "soxr_hq") -> dict[str, Any]:
    torch.set_num_threads(1)  # a DataLoader worker runs with one thread
    durations = wavcaps_like_durations(clips, seed)
    items = make_files(workdir, durations)
    return {"machine": machine_info("cpu"),
            "settings": {"clips": clips, "batch_size": batch_size, "batches": batches, "seed": seed,
                         "hours": sum(durations) / 3600, "median_clip_s": statistics.median(durations),
                         "workdir": str(workdir), "resampler": resampler},
            "ways": measure_ways(workdir, items, batch_size, batches, seed, resampler),
            "single_files": measure_single_lengths(workdir, repeats, resampler),
            "resamplers": measure_resamplers(workdir, repeats),
            "step_clips_per_s": STEP_CLIPS_PER_SECOND}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mga_clap_loader",
                        help="where the audio files and shards are written (kept between runs)")
    parser.add_argument("--clips", type=int, default=48, help="WavCaps-like files to make")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8, help="batches timed per way")
    parser.add_argument("--repeats", type=int, default=5, help="reads per file in the single-file table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resampler", choices=RESAMPLERS, default="soxr_hq",
                        help="resampler of the 44.1 kHz files (default: %(default)s, the README's table)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="print only the tables")
    parser.add_argument("--table", type=Path, help="print the tables of a saved report and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_tables(json.loads(args.table.read_text())))
        return 0
    if args.clips < 1 or args.batch_size < 1 or args.batches < 1 or args.repeats < 1:
        parser.error("--clips, --batch-size, --batches and --repeats must be >= 1")
    report = run(args.workdir, args.clips, args.batch_size, args.batches, args.repeats, args.seed, args.resampler)
    write_json(report, args.out)
    settings = report["settings"]
    print(("" if args.quiet else f"{settings['clips']} files, {settings['hours']:.2f} h, median "
           f"{settings['median_clip_s']:.0f} s; {report['machine']['cpu_model']}\n") + markdown_tables(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
