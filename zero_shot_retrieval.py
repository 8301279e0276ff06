"""Zero-shot audio-text retrieval (AudioCaps / Clotho test json, or the synthetic corpus).

    python zero_shot_retrieval.py                             # quickstart checkpoint, synthetic corpus
    python zero_shot_retrieval.py --ckpt pretrained_models/model.pt \\
        --json data/waveforms/json_files/AudioCaps/test.json --out audiocaps.json

Dataset folder: <root>/test.json with audio paths relative to it (--json points at any such json, and
--audio-root resolves its relative paths elsewhere). R@1/5/10/50, medR, meanR, mAP@10 in both directions.
"""

from __future__ import annotations

import sys

from tools.script_cli import (
    data_root,
    load_script_config,
    load_script_model,
    report,
    resolve_path,
    run_script,
    script_parser,
)
from tools.zero_shot import RETRIEVAL_LAYOUT, evaluate_retrieval, require_dir

DEFAULT_CONFIG = "settings/inference_retrieval.yaml"


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__, DEFAULT_CONFIG)
    parser.add_argument("--json", help="retrieval json (default: <root>/test.json)")
    parser.add_argument("--audio-root", help="folder the json's relative audio paths start from "
                                             "(default: the json's folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    json_path = resolve_path(args.json) or require_dir(data_root(config, "retrieval"), RETRIEVAL_LAYOUT) / "test.json"
    model, device = load_script_model(args, config)
    result = evaluate_retrieval(model, json_path, device, config.eval.batch_size, config.data_args.num_workers,
                                audio_root=resolve_path(args.audio_root))
    report("Zero-shot retrieval", result, args.out,
           {"checkpoint": str(config.eval.ckpt), "json": str(json_path), "device": str(device)})
    return result


if __name__ == "__main__":
    sys.exit(run_script(main))
