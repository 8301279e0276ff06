"""Measurements behind docs/detection.md: window overlap on long recordings, and throughput.

    python -m benchmarks.detection overlap      # long files made of the synthetic SED split: overlap 0 vs 0.5
    python -m benchmarks.detection throughput   # real-time factor (10-minute file), files/s indexing, queries/s

Both use the quickstart model (outputs/quickstart/best.pt) and data/synthetic on the CPU by default.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from data_handling.audio_io import load_audio
from models.factory import model_from_checkpoint
from tools.detect.calibration import read_labelled_set
from tools.detect.detector import StreamOptions, detect_files
from tools.detect.index import SearchIndex
from tools.eval.sed_metrics import merge_same_class_events, sed_metrics

CLIPS_PER_FILE = 10
SHIFT_SECONDS = 4.3
"""Seconds cut from the start of each long file, so that window edges do not fall on the clips' edges."""


def long_files(sed_root: Path, folder: Path) -> tuple[list[Path], dict, dict, list[str]]:
    """Concatenate the SED split's clips 10 at a time, drop the first 4.3 s: paths, truth, durations, classes."""
    labelled = read_labelled_set(sed_root / "metadata" / "eval.tsv")
    paths, truth, durations = [], {}, {}
    for first in range(0, len(labelled.clip_ids) - CLIPS_PER_FILE + 1, CLIPS_PER_FILE):
        clips = labelled.clip_ids[first:first + CLIPS_PER_FILE]
        audio = np.concatenate([load_audio(labelled.paths[first + k], 32000) for k in range(len(clips))])
        audio = audio[round(SHIFT_SECONDS * 32000):]
        name = f"long_{first // CLIPS_PER_FILE:03d}"
        sf.write(str(folder / f"{name}.wav"), audio, 32000, subtype="FLOAT")
        events = [(max(0.0, on + 10.0 * k - SHIFT_SECONDS), off + 10.0 * k - SHIFT_SECONDS, label)
                  for k, clip in enumerate(clips) for on, off, label in labelled.ground_truth[clip]
                  if off + 10.0 * k - SHIFT_SECONDS > 0]
        paths.append(folder / f"{name}.wav")
        truth[name] = merge_same_class_events(events)
        durations[name] = len(audio) / 32000
    return paths, truth, durations, labelled.class_names


def measure_overlap(model, data: Path) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        paths, truth, durations, classes = long_files(data / "sed", Path(folder))
        for overlap in (0.0, 0.5):
            started = time.perf_counter()
            scores = {result.clip_id: result.score_frame() for result in
                      detect_files(model, paths, classes, options=StreamOptions(overlap=overlap, progress=False))}
            seconds = time.perf_counter() - started
            results[f"overlap_{overlap}"] = {**sed_metrics(scores, truth, durations), "seconds": round(seconds, 2)}
    return results


def measure_throughput(model, data: Path) -> dict:
    from tests.long_recording import make_long_recording

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        path = make_long_recording(Path(folder) / "ten_minutes.wav", 600.0, [("rain", 100.0, 2.0)])
        queries = ["rain", "a dog barks", "a siren", "a bell rings", "hiss"]
        for overlap in (0.0, 0.5):
            started = time.perf_counter()
            list(detect_files(model, [path], queries, options=StreamOptions(overlap=overlap, progress=False)))
            seconds = time.perf_counter() - started
            results[f"detect_real_time_factor_overlap_{overlap}"] = round(seconds / 600.0, 5)
        audio = sorted((data / "sed" / "audio").glob("*.wav"))
        index = SearchIndex.create(Path(folder) / "index", model)
        started = time.perf_counter()
        index.add(model, audio, options=StreamOptions(progress=False))
        results["index_files_per_second"] = round(len(audio) / (time.perf_counter() - started), 2)
        classes = read_labelled_set(data / "sed" / "metadata" / "eval.tsv").class_names
        for rank in ("clip", "frame"):
            started = time.perf_counter()
            for query in classes:
                index.search(model, [query], 10, rank)
            results[f"queries_per_second_{rank}"] = round(len(classes) / (time.perf_counter() - started), 2)
        results["matmul_ms_per_query"] = matmul_timings(model.config.embed_size)
    return results


def matmul_timings(embed_size: int) -> dict:
    """Milliseconds to score one query against N float16 rows (read as float32 in 65536-row chunks)."""
    timings = {}
    for rows in (10_000, 100_000, 1_000_000):
        matrix = np.random.default_rng(0).standard_normal((rows, embed_size)).astype(np.float16)
        query = torch.nn.functional.normalize(torch.randn(1, embed_size), dim=-1)
        started = time.perf_counter()
        scores = torch.cat([torch.from_numpy(matrix[start:start + 65536].astype(np.float32)) @ query.T
                            for start in range(0, rows, 65536)])
        torch.topk(scores[:, 0], 10)
        timings[str(rows)] = round(1000 * (time.perf_counter() - started), 1)
    return timings


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("overlap", "throughput"))
    parser.add_argument("--ckpt", default="outputs/quickstart/best.pt")
    parser.add_argument("--data", default="data/synthetic")
    args = parser.parse_args(argv)
    model = model_from_checkpoint(args.ckpt, None, "cpu")
    measure = measure_overlap if args.what == "overlap" else measure_throughput
    result = measure(model, Path(args.data))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
