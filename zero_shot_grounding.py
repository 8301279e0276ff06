"""Zero-shot text-to-audio grounding (AudioGrounding / TAG test set, or the synthetic corpus).

    python zero_shot_grounding.py                             # quickstart checkpoint, synthetic corpus
    python zero_shot_grounding.py --ckpt pretrained_models/model.pt --data-root data/ --out tag.json

Dataset folder (detected): the reference's parent folder (<root>/TAG/test/metadata/test.json,
<root>/TAG/test/audio/<audio_id>, durations from <root>/TAG/test/metadata/duration.csv when present), a TAG
test folder, or an AudioGrounding folder (<root>/test.json, <root>/audio/); --json, --audio-dir and
--durations point elsewhere. Per phrase: sigmoid(cosine(phrase, frame)); audio tiled to 10 s, longer
audio windowed (--long-audio cut: its first 10 s); detections not clipped to the clip's duration, as the
reference (--drop-tiled-tail clips them). PSDS at 0.7 / 0.5 / 0.1, as fractions (docs/protocols.md).
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
from tools.eval.grounding import evaluate_grounding


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__)
    parser.add_argument("--json", help="AudioGrounding json (default: found under the data root)")
    parser.add_argument("--audio-dir", help="audio folder (default: found under the data root)")
    parser.add_argument("--durations", help="duration file, audio_id<TAB>duration (default: the layout's "
                                            "metadata/duration.csv when present, else the audio's durations)")
    add_protocol_options(parser, tiled_tail=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    json_path, audio_dir, durations = resolve_path(args.json), resolve_path(args.audio_dir), resolve_path(args.durations)
    if json_path is None or audio_dir is None:
        files = find_eval_files(data_root(config, "grounding"), "grounding").paths
        json_path, audio_dir = json_path or files["json"], audio_dir or files["audio"]
        durations = durations or files.get("durations")
    model, device = load_script_model(args, config)
    result = evaluate_grounding(model, json_path, audio_dir, device, config.eval.batch_size,
                                config.eval.num_workers, durations_file=durations,
                                long_audio=config.eval.long_audio, score_tiled_tail=config.eval.score_tiled_tail,
                                precision=config.eval.precision, strict=config.eval.strict)
    report("Zero-shot text-to-audio grounding", result, args.out,
           {"checkpoint": str(config.eval.ckpt), "json": str(json_path), "audio_dir": str(audio_dir),
            "durations": str(durations), "device": str(device)})
    return result


if __name__ == "__main__":
    exit_script(run_script(main))
