"""Search a collection of recordings with text: an index of clip and frame embeddings, built once.

    python search.py build --index outputs/search_index data/synthetic/sed/audio     # embed a collection
    python search.py add --index outputs/search_index new_recordings/                 # only new or changed files
    python search.py query --index outputs/search_index "a dog barks" "a siren wails" --top-k 10
    python search.py query --index outputs/search_index --classes-from data/synthetic/sed/metadata/eval.tsv \\
        --ground-truth data/synthetic/sed/metadata/eval.tsv                           # precision@10, spans
    python search.py serve --index outputs/search_index                              # the page: 127.0.0.1:8765

Audio: files, folders (recursive) or text files listing paths, any length (long files streamed). The index
folder holds float16 clip and frame embeddings, the file table and the model's fingerprint (docs/search.md).
A query answers the top files (--rank clip: clip embedding cosine, retrieval's score; --rank frame: the
highest frame cosine, better for long recordings) and, for each, the best-matching time span. `serve` loads
the model and index once and serves a local page (tools/detect/server.py): type phrases, see each top file's
spectrogram with the phrases' frame scores and best spans, play them, ask for more like a span.
"""

from __future__ import annotations

from typing import Any

import torch

from tools.detect.calibration import read_labelled_set
from tools.detect.detector import StreamOptions
from tools.detect.index import SearchIndex
from tools.detect.inputs import classes_from_tsv, collect_audio_files, collect_queries
from tools.detect.scoring import score_search
from tools.detect.streaming import DEFAULT_OVERLAP, OVERLAPS
from tools.eval.cli import (
    exit_script,
    load_script_config,
    load_script_model,
    report,
    resolve_path,
    run_script,
    script_parser,
)

COMMANDS = ("build", "add", "query", "serve")
DEFAULT_PORT = 8765


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__, out_help="write the results to this JSON file")
    parser.add_argument("command", choices=COMMANDS, help="build: new index (then add); add: new or changed files; "
                                                          "query: search; serve: the search page")
    parser.add_argument("inputs", nargs="*", help="build / add: audio files, folders or file lists; query: texts")
    parser.add_argument("--index", required=True, help="index folder")
    parser.add_argument("--queries-file", help="query: text file with one query per line")
    parser.add_argument("--classes-from", metavar="TSV", help="query: the classes of a DESED tsv as queries")
    parser.add_argument("--top-k", type=int, default=10, help="query, serve: files per query (default: %(default)s)")
    parser.add_argument("--rank", choices=("clip", "frame"), default="clip",
                        help="query, serve: rank files by clip cosine (default) or by their highest frame cosine")
    parser.add_argument("--ground-truth", metavar="TSV", help="query: score the hits against this DESED tsv "
                                                              "(precision@k, best spans overlapping their events)")
    parser.add_argument("--overlap", type=float, choices=OVERLAPS, help=f"build: window overlap of long files "
                                                                        f"(default {DEFAULT_OVERLAP})")
    parser.add_argument("--host", default="127.0.0.1", help="serve: address to listen on (default: %(default)s, "
                                                             "this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="serve: port (default: %(default)s)")
    return parser.parse_intermixed_args(argv)


def index_files(args, config, model, device) -> dict[str, Any]:
    paths = collect_audio_files([resolve_path(source) for source in args.inputs])
    folder = resolve_path(args.index)
    if args.command == "build" and not (folder / "index.json").exists():
        overlap = args.overlap if args.overlap is not None else DEFAULT_OVERLAP
        index = SearchIndex.create(folder, model, str(config.eval.ckpt), overlap)
    else:
        index = SearchIndex.open(folder)
    options = StreamOptions(batch_size=config.eval.batch_size, num_workers=config.eval.num_workers,
                            precision=config.eval.precision)
    return {**index.add(model, paths, device, options), "index": str(folder)}


def query_index(args, model, device) -> dict[str, Any]:
    index = SearchIndex.open(resolve_path(args.index))
    texts = list(args.inputs) + (classes_from_tsv(resolve_path(args.classes_from)) if args.classes_from else [])
    queries = collect_queries(texts, resolve_path(args.queries_file) if args.queries_file else None)
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    hits = index.search(model, queries, args.top_k, args.rank, device)
    for query, query_hits in zip(queries, hits, strict=True):
        print(f"\n{query}")
        for rank, hit in enumerate(query_hits, start=1):
            print(f"  {rank:2d}. {hit.score:+.3f}  {hit.onset:8.2f}-{hit.offset:8.2f} s  {hit.path}")
    result: dict[str, Any] = {"queries": {query: [vars(hit) for hit in query_hits]
                                          for query, query_hits in zip(queries, hits, strict=True)},
                              "rank": args.rank, "top_k": args.top_k}
    if args.ground_truth:
        labelled = read_labelled_set(resolve_path(args.ground_truth))
        result["scores"] = score_search(dict(zip(queries, hits, strict=True)), labelled)
    return result


def serve_index(args, model, device) -> dict[str, Any]:
    import uvicorn

    from tools.detect.server import TORCH_THREADS, create_app, warn_if_public

    torch.set_num_threads(TORCH_THREADS)
    app = create_app(SearchIndex.open(resolve_path(args.index)), model, device, args.top_k, args.rank)
    warn_if_public(args.host)
    print(f"search page: http://{args.host}:{args.port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return {"served": f"http://{args.host}:{args.port}/"}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    if args.command in ("build", "add") and not args.inputs:
        raise ValueError(f"'search.py {args.command}' needs audio files, folders or file lists")
    model, device = load_script_model(args, config)
    if args.command == "query":
        result = query_index(args, model, device)
    elif args.command == "serve":
        result = serve_index(args, model, device)
    else:
        result = index_files(args, config, model, device)
    info = {"checkpoint": str(config.eval.ckpt), "device": str(device), "index": str(args.index)}
    report(f"Search index: {args.command}", result, args.out, info)
    return result


if __name__ == "__main__":
    exit_script(run_script(main))
