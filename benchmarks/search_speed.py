"""Per-query time of the search page and of search.py query: the model and a 10,000-file index loaded once.

    python -m benchmarks.search_speed                          # quickstart model, 10,000 files
    python -m benchmarks.search_speed --model paper            # the paper's model size (BERT-base, 1024-d)
    python -m benchmarks.search_speed --ckpt outputs/quickstart/best.pt --files 10000 --queries 40

Without --ckpt the model is built from settings/quickstart.yaml or settings/pretrain.yaml with random
weights (the quickstart's text tower keeps its MiniLM weights): a query's time depends on the architecture
and the index's size, not on the weights. The index holds random unit vectors: a clip row and 32 frame rows
(10 s) per file, written straight to an index folder (tests/random_index.py). Every query is a different
phrase; the first 3 are warm-up. Medians in milliseconds, wall clock and CPU time (the process's, all its
threads: what a query takes on cores that nothing else uses):

    text_embedding      embed_texts of one phrase
    page_data           tools.detect.search_results.text_results: embedding, ranking, curves and spans (the
                        page's data), rank clip and rank frame
    http                GET /api/search through FastAPI's test client (page_data + JSON)
    search_query        SearchIndex.search: what search.py query does per query once the model is loaded
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data_handling.synthetic.events import EVENT_TYPES
from models.ase_model import ASE
from models.factory import model_from_checkpoint
from tests.random_index import unit_rows, write_index
from tools.config import load_config
from tools.detect.index import model_fingerprint
from tools.detect.search_results import text_results
from tools.eval.embedding import embed_texts

MODEL_SETTINGS = {"quickstart": ("settings/quickstart.yaml", []),
                  "paper": ("settings/pretrain.yaml", ["audio_encoder_args.pretrained=false",
                                                       "text_encoder_args.pretrained=false"])}
FRAMES_PER_FILE = 32
WARM_UP = 3


def build_model(name: str, ckpt: str | None):
    if ckpt:
        return model_from_checkpoint(ckpt, None, "cpu")
    settings, overrides = MODEL_SETTINGS[name]
    torch.manual_seed(0)
    return ASE(load_config(settings, overrides).model_config()).eval()


def phrases(count: int) -> list[str]:
    """`count` different phrases made of the synthetic corpus's event names."""
    templates = ("{}", "a {} sound", "{} in the distance", "a loud {}", "{} then silence", "a soft {} nearby")
    names = list(EVENT_TYPES)
    return [templates[number // len(names) % len(templates)].format(names[number % len(names)])
            + ("" if number < len(names) * len(templates) else f" {number}") for number in range(count)]


def random_index(model, folder: Path, num_files: int):
    rng = np.random.default_rng(0)
    embed_size = model.config.embed_size
    clips = unit_rows(rng, num_files, embed_size)
    frames = [unit_rows(rng, FRAMES_PER_FILE, embed_size) for _ in range(num_files)]
    return write_index(folder, model_fingerprint(model), clips, frames,
                       [folder / "audio" / f"file_{number:06d}.wav" for number in range(num_files)])


def median_ms(run, texts: list[str]) -> dict[str, float]:
    """Median wall-clock and CPU (this process, all threads) milliseconds of run(text), warm-up excluded."""
    wall, cpu = [], []
    for text in texts:
        started, started_cpu = time.perf_counter(), time.process_time()
        run(text)
        wall.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - started_cpu))
    return {"wall": round(statistics.median(wall[WARM_UP:]), 1), "cpu": round(statistics.median(cpu[WARM_UP:]), 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=tuple(MODEL_SETTINGS), default="quickstart")
    parser.add_argument("--ckpt", help="a trained checkpoint instead of random weights")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch threads (default: the server's, "
                                                    "tools.detect.server.TORCH_THREADS)")
    args = parser.parse_args(argv)
    from fastapi.testclient import TestClient

    from tools.detect.server import TORCH_THREADS, create_app

    torch.set_num_threads(args.threads or TORCH_THREADS)
    model = build_model(args.model, args.ckpt)
    texts = phrases(args.queries + WARM_UP)
    with tempfile.TemporaryDirectory() as folder:
        index = random_index(model, Path(folder) / "index", args.files)
        client = TestClient(create_app(index, model))
        result = {
            "model": args.ckpt or f"{args.model} (random weights)", "files": args.files,
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
            "text_embedding": median_ms(lambda text: embed_texts(model, [text]), texts),
            "page_data_rank_clip": median_ms(lambda text: text_results(index, model, [text], 10, "clip"), texts),
            "page_data_rank_frame": median_ms(lambda text: text_results(index, model, [text], 10, "frame"), texts),
            "http_rank_clip": median_ms(lambda text: client.get("/api/search", params={"q": text}).json(), texts),
            "search_query_rank_clip": median_ms(lambda text: index.search(model, [text], 10, "clip"), texts),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
