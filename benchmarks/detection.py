"""Measurements behind docs/detection.md and docs/search.md (what each measures, and the figures), on the CPU:

    python -m benchmarks.detection overlap       # long files made of the synthetic SED split: overlap 0 vs 0.5
    python -m benchmarks.detection throughput    # real-time factor (10-minute file), files/s indexing, queries/s
    python -m benchmarks.detection search-speed [--preset paper] [--ckpt CKPT] [--files 10000] [--queries 30]
    python -m benchmarks.detection search-scale [--rows 1000000] [--embed-size 256] [--nprobe 32 64] [--clustered]

overlap, throughput: the quickstart model (outputs/quickstart/best.pt) on data/synthetic. search-speed: median
ms per query (wall, process CPU) of the text embedding, the search page's data (text_results), GET /api/search
and SearchIndex.search, the model (random weights, or --ckpt) and a random index loaded once. search-scale:
tools/detect/approximate.py's index on random unit rows, ms per query and recall@10 against exact scoring.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from benchmarks.measure import PRESETS, machine_info, preset_config, time_calls
from data_handling.audio_io import load_audio
from data_handling.synthetic.events import EVENT_TYPES
from models.factory import model_from_checkpoint
from tests.long_recording import make_long_recording
from tests.random_index import unit_rows, write_index
from tools.detect import approximate
from tools.detect.calibration import read_labelled_set
from tools.detect.detector import StreamOptions, detect_files
from tools.detect.index import SearchIndex, model_fingerprint
from tools.eval.sed_metrics import merge_same_class_events, sed_metrics

CLIPS_PER_FILE = 10
SHIFT_SECONDS = 4.3
"""Seconds cut from the start of each long file, so that window edges do not fall on the clips' edges."""
FRAMES_PER_FILE = 32
WARM_UP = 3
CLUSTERS = 2000
SPREAD = 0.08
"""Clustered rows: a random centre plus SPREAD x N(0, 1) per dimension, normalised (cosine about 0.5 to 0.6 with
its centre at 256-d); queries the same around a random centre."""


def detect(model, paths: list[Path], queries: list[str], overlap: float = 0.5) -> list:
    return list(detect_files(model, paths, queries, options=StreamOptions(overlap=overlap, progress=False)))


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


def measure_overlap(args: argparse.Namespace) -> dict:
    model, data = model_from_checkpoint(args.ckpt, None, "cpu"), Path(args.data)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        paths, truth, durations, classes = long_files(data / "sed", Path(folder))
        for overlap in (0.0, 0.5):
            started = time.perf_counter()
            scores = {result.clip_id: result.score_frame() for result in detect(model, paths, classes, overlap)}
            seconds = time.perf_counter() - started
            results[f"overlap_{overlap}"] = {**sed_metrics(scores, truth, durations), "seconds": round(seconds, 2)}
    return results


def measure_throughput(args: argparse.Namespace) -> dict:
    model, data, results = model_from_checkpoint(args.ckpt, None, "cpu"), Path(args.data), {}
    with tempfile.TemporaryDirectory() as folder:
        path = make_long_recording(Path(folder) / "ten_minutes.wav", 600.0, [("rain", 100.0, 2.0)])
        for overlap in (0.0, 0.5):
            started = time.perf_counter()
            detect(model, [path], ["rain", "a dog barks", "a siren", "a bell rings", "hiss"], overlap)
            results[f"detect_real_time_factor_overlap_{overlap}"] = round((time.perf_counter() - started) / 600, 5)
        audio = sorted((data / "sed" / "audio").glob("*.wav"))
        index = SearchIndex.create(Path(folder) / "index", model)
        started = time.perf_counter()
        index.add(model, audio, options=StreamOptions(progress=False))
        results["index_files_per_second"] = round(len(audio) / (time.perf_counter() - started), 2)
        classes = read_labelled_set(data / "sed" / "metadata" / "eval.tsv").class_names
        for rank in ("clip", "frame"):
            walls, _ = time_calls(lambda query, rank=rank: index.search(model, [query], 10, rank), classes)
            results[f"queries_per_second_{rank}"] = round(len(classes) / sum(walls), 2)
        results["matmul_ms_per_query"] = {}
        for rows in (10_000, 100_000, 1_000_000):   # one query against N float16 rows, as exact clip ranking
            matrix = np.random.default_rng(0).standard_normal((rows, model.config.embed_size)).astype(np.float16)
            query = torch.nn.functional.normalize(torch.randn(1, model.config.embed_size), dim=-1)
            started = time.perf_counter()
            exact_top(matrix, query)
            results["matmul_ms_per_query"][str(rows)] = round(1000 * (time.perf_counter() - started), 1)
    return results


def exact_top(rows: np.ndarray, queries: torch.Tensor, k: int = 10) -> torch.Tensor:
    """[Q, k] the top rows of [N, E] float16 `rows` by dot product with [Q, E] queries (float32, 65536-row chunks)."""
    scores = torch.cat([torch.from_numpy(np.asarray(rows[start:start + 65536], dtype=np.float32)) @ queries.T
                        for start in range(0, len(rows), 65536)])
    return torch.topk(scores.T, k).indices


def phrases(count: int) -> list[str]:
    """`count` different phrases made of the synthetic corpus's event names."""
    templates = ("{}", "a {} sound", "{} in the distance", "a loud {}", "{} then silence", "a soft {} nearby")
    names = list(EVENT_TYPES)
    return [templates[number // len(names) % len(templates)].format(names[number % len(names)])
            + ("" if number < len(names) * len(templates) else f" {number}") for number in range(count)]


def median_ms(run, inputs: list) -> dict[str, float]:
    """Median wall-clock and CPU (this process, all threads) ms of run(x) over `inputs`, WARM_UP calls left out."""
    walls, cpus = time_calls(run, inputs, WARM_UP)
    return {"wall": round(1000 * statistics.median(walls), 1), "cpu": round(1000 * statistics.median(cpus), 1)}


def measure_search_speed(args: argparse.Namespace) -> dict:
    from fastapi.testclient import TestClient

    from models.ase_model import ASE
    from tools.detect.search_results import text_results
    from tools.detect.server import TORCH_THREADS, create_app
    from tools.eval.embedding import embed_texts

    torch.set_num_threads(args.threads or TORCH_THREADS)
    torch.manual_seed(0)
    model = (model_from_checkpoint(args.ckpt, None, "cpu") if args.ckpt
             else ASE(preset_config(args.preset)).eval())
    texts, rng, size = phrases(args.queries + WARM_UP), np.random.default_rng(0), model.config.embed_size
    with tempfile.TemporaryDirectory() as folder:
        clips = unit_rows(rng, args.files, size)
        frames = [unit_rows(rng, FRAMES_PER_FILE, size) for _ in range(args.files)]
        index = write_index(Path(folder) / "index", model_fingerprint(model), clips, frames,
                            [Path(folder) / "audio" / f"file_{number:06d}.wav" for number in range(args.files)])
        client = TestClient(create_app(index, model))
        return {
            "model": args.ckpt or f"{args.preset} (random weights)", "files": args.files,
            "text_embedding": median_ms(lambda text: embed_texts(model, [text]), texts),
            "page_data_rank_clip": median_ms(lambda text: text_results(index, model, [text], 10, "clip"), texts),
            "page_data_rank_frame": median_ms(lambda text: text_results(index, model, [text], 10, "frame"), texts),
            "http_rank_clip": median_ms(lambda text: client.get("/api/search", params={"q": text}).json(), texts),
            "search_query_rank_clip": median_ms(lambda text: index.search(model, [text], 10, "clip"), texts),
        }


def sample_rows(rng: np.random.Generator, count: int, embed_size: int, centres: np.ndarray | None) -> np.ndarray:
    if centres is None:
        return unit_rows(rng, count, embed_size)
    rows = centres[rng.integers(0, len(centres), count)] + SPREAD * rng.standard_normal((count, embed_size),
                                                                                       dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def measure_search_scale(args: argparse.Namespace) -> dict:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    centres = sample_rows(np.random.default_rng(2), CLUSTERS, args.embed_size, None) if args.clustered else None
    queries = sample_rows(np.random.default_rng(1), args.queries + WARM_UP, args.embed_size, centres)
    result: dict = {"rows": args.rows, "clustered": args.clustered, "embed_size": args.embed_size,
                    "threads": args.threads, "lists": approximate.number_of_lists(args.rows),
                    "candidates": approximate.CANDIDATES}
    with tempfile.TemporaryDirectory() as folder:
        rng, path = np.random.default_rng(0), Path(folder) / "clip.f16"
        with path.open("wb") as stream:   # written in chunks, as an index folder holds them
            for start in range(0, args.rows, 100_000):
                stream.write(sample_rows(rng, min(100_000, args.rows - start), args.embed_size, centres)
                             .astype(np.float16).tobytes())
        clips = np.memmap(path, dtype=np.float16, mode="r", shape=(args.rows, args.embed_size))
        started = time.perf_counter()
        index = approximate.ApproximateClipIndex.train(Path(folder), clips)
        result["train_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        index.add_rows(clips)
        result["add_seconds"] = round(time.perf_counter() - started, 1)
        truth = exact_top(clips, torch.from_numpy(queries[WARM_UP:])).numpy()
        for nprobe in args.nprobe:
            found = []

            def query_once(query: np.ndarray, nprobe: int = nprobe, found: list = found) -> None:
                candidates = index.candidates(torch.from_numpy(query[None]), approximate.CANDIDATES, nprobe)[0]
                found.append(approximate.rerank(clips, candidates, torch.from_numpy(query), 10)[0])

            walls, _ = time_calls(query_once, list(queries), WARM_UP)
            recall = statistics.mean(len(set(rows.tolist()) & set(expected.tolist())) / 10
                                     for rows, expected in zip(found[WARM_UP:], truth, strict=True))
            result[f"nprobe_{nprobe}"] = {"median_ms": round(1000 * statistics.median(walls), 2),
                                          "recall_at_10": round(recall, 3)}
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="what", required=True)
    for name in ("overlap", "throughput"):
        command = commands.add_parser(name)
        command.add_argument("--ckpt", default="outputs/quickstart/best.pt")
        command.add_argument("--data", default="data/synthetic")
    speed = commands.add_parser("search-speed", help="per-query time of the search page and of search.py query")
    speed.add_argument("--preset", choices=PRESETS, default="quickstart", help="the model's size")
    speed.add_argument("--ckpt", help="a trained checkpoint instead of random weights")
    speed.add_argument("--files", type=int, default=10_000)
    speed.add_argument("--queries", type=int, default=30)
    speed.add_argument("--threads", type=int, help="torch threads (default: tools.detect.server.TORCH_THREADS)")
    scale = commands.add_parser("search-scale", help="the approximate clip index: ms/query and recall@10")
    scale.add_argument("--queries", type=int, default=50)
    scale.add_argument("--rows", type=int, default=1_000_000)
    scale.add_argument("--embed-size", type=int, default=256)
    scale.add_argument("--nprobe", type=int, nargs="+", default=[approximate.NPROBE], help="lists scanned")
    scale.add_argument("--threads", type=int, default=1, help="faiss (OpenMP) threads (default: %(default)s)")
    scale.add_argument("--clustered", action="store_true", help=f"rows and queries around {CLUSTERS} centres")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    measure = {"overlap": measure_overlap, "throughput": measure_throughput, "search-speed": measure_search_speed,
               "search-scale": measure_search_scale}[args.what]
    result = {**measure(args), "machine": machine_info()}  # the load average and torch threads after the run
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
