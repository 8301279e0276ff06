"""Zero-shot text-to-audio grounding (AudioGrounding / TAG test set, or the synthetic corpus).

    python zero_shot_grounding.py                             # quickstart checkpoint, synthetic corpus
    python zero_shot_grounding.py --ckpt pretrained_models/model.pt --data-root data/audiogrounding --out tag.json

Dataset folder: <root>/test.json (AudioGrounding json) and <root>/audio/<audio_id> (--json and --audio-dir
point elsewhere). Per phrase: sigmoid(cosine(phrase, frame)); PSDS at 0.7 / 0.5 / 0.1 (README.md, "Zero-shot evaluation").
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
from tools.zero_shot import GROUNDING_LAYOUT, evaluate_grounding, require_dir

DEFAULT_CONFIG = "settings/inference_grounding.yaml"


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__, DEFAULT_CONFIG)
    parser.add_argument("--json", help="AudioGrounding json (default: <root>/test.json)")
    parser.add_argument("--audio-dir", help="audio folder (default: <root>/audio)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    if args.json and args.audio_dir:
        json_path, audio_dir = resolve_path(args.json), resolve_path(args.audio_dir)
    else:
        root = require_dir(data_root(config, "grounding"), GROUNDING_LAYOUT)
        json_path = resolve_path(args.json) or root / "test.json"
        audio_dir = resolve_path(args.audio_dir) or root / "audio"
    model, device = load_script_model(args, config)
    result = evaluate_grounding(model, json_path, audio_dir, device, config.eval.batch_size,
                                config.data_args.num_workers)
    report("Zero-shot text-to-audio grounding", result, args.out,
           {"checkpoint": str(config.eval.ckpt), "json": str(json_path), "audio_dir": str(audio_dir),
            "device": str(device)})
    return result


if __name__ == "__main__":
    sys.exit(run_script(main))
