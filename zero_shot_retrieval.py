"""Zero-shot audio-text retrieval (AudioCaps / Clotho test json, or the synthetic corpus).

    python zero_shot_retrieval.py                             # quickstart checkpoint, synthetic corpus
    python zero_shot_retrieval.py --ckpt pretrained_models/model.pt \\
        --json data/retrieval/Clotho/json_files/test.json --out clotho.json

Dataset folder: <root>/test.json, or --json with any Clotho/AudioCaps-style json (WavCaps' test files
work as they are: their "audio" paths of the authors' machine are looked up by the relative "wav" path
under --audio-root, the json's folder or a folder above it, or the data root, then by file name). --json
also takes a CSV/TSV table of your own clips (audio,caption; paths relative to the table's folder).
Protocol (the reference's): clips longer than 10 s are evaluated on one random 10 s crop, the same on
every run (--crop-seed; --long-audio window encodes every window instead); shorter clips are zero-padded
as in the reference's 32-caption batches (--fixed-padding pads each to 10 s). R@1/5/10/50 and mAP@10 in
percent, medR and meanR, both directions.
"""

from __future__ import annotations

from data_handling.eval_sets.layouts import find_eval_files
from tools.eval.cli import (
    add_protocol_options,
    data_root,
    exit_script,
    load_script_config,
    load_script_model,
    report,
    resolve_path,
    run_script,
    script_parser,
)
from tools.eval.retrieval import evaluate_retrieval


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__)
    parser.add_argument("--json", help="retrieval json, or a CSV/TSV with the columns audio,caption (more "
                                       "captions: caption_2, ... or repeated rows) (default: <root>/test.json)")
    parser.add_argument("--audio-root", help="folder the json's relative audio paths start from "
                                             "(default: the json's folder)")
    add_protocol_options(parser, crop=True, retrieval_padding=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    json_path = resolve_path(args.json)
    root = resolve_path(config.eval.data_root_dir)
    if json_path is None:
        json_path = find_eval_files(data_root(config, "retrieval"), "retrieval").paths["json"]
    model, device = load_script_model(args, config)
    result = evaluate_retrieval(model, json_path, device, config.eval.batch_size, config.eval.num_workers,
                                audio_root=resolve_path(args.audio_root), long_audio=config.eval.long_audio,
                                crop_seed=config.eval.crop_seed, padding=config.eval.retrieval_padding, precision=config.eval.precision,
                                search_roots=[root] if root is not None else [], strict=config.eval.strict)
    report("Zero-shot retrieval", result, args.out,
           {"checkpoint": str(config.eval.ckpt), "json": str(json_path), "device": str(device)})
    return result


if __name__ == "__main__":
    exit_script(run_script(main))
