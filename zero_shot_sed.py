"""Zero-shot sound event detection (AudioSet-strong, DESED, UrbanSED, or the synthetic corpus).

    python zero_shot_sed.py                                   # quickstart checkpoint, synthetic corpus
    python zero_shot_sed.py --ckpt pretrained_models/model.pt --data-root data/ --plot 5 --out sed.json
    python zero_shot_sed.py --ckpt pretrained_models/model.pt --data-root data/audioset_strong \\
        --label-map data/audioset_strong/metadata/mid_to_display_name.tsv

Dataset folder (detected): the reference's parent folder (<root>/AudioSet_SL/metadata/audioset_eval_strong.tsv,
..._durations.tsv, <root>/AudioSet_SL/audio/AudioSet_SL_eval/), an AudioSet_SL folder, or a SED folder
(<root>/audio/, <root>/metadata/eval.tsv, <root>/metadata/eval_durations.tsv); --tsv, --durations-tsv and
--audio-dir point elsewhere. Classes = the distinct event labels, each scored with its text ('_' -> ' ',
lower case); frame scores = cosine(frame, class). Protocol (the reference's): audio tiled to 10 s or cut to its first 10 s (--long-audio
window scores every 10 s window), all 32 frames scored up to 10 s also past a short clip's end
(--drop-tiled-tail drops them). PSDS1, PSDS2, collar F1, segment F1, as fractions (docs/protocols.md).
"""

from __future__ import annotations

from pathlib import Path

from data_handling.eval_sets.layouts import find_eval_files
from data_handling.eval_sets.sed import load_label_map
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
from tools.eval.sed import evaluate_sed


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__)
    parser.add_argument("--tsv", help="events tsv (default: found under the data root)")
    parser.add_argument("--durations-tsv", help="durations tsv (default: found under the data root)")
    parser.add_argument("--audio-dir", help="audio folder (default: found under the data root)")
    parser.add_argument("--label-map", help="raw label -> name (ontology.json or a mid,name csv/tsv), e.g. for "
                                            "AudioSet MIDs")
    parser.add_argument("--plot", type=int, default=0, metavar="N", help="save N figures with ground truth")
    parser.add_argument("--plot-dir", help="folder of the figures (default: next to --out, else outputs/sed_plots)")
    add_protocol_options(parser, tiled_tail=True)
    return parser.parse_args(argv)


def plot_folder(args) -> Path:
    if args.plot_dir:
        return Path(args.plot_dir)
    if args.out:
        return Path(args.out).parent / f"{Path(args.out).stem}_plots"
    return Path("outputs") / "sed_plots"


def sed_inputs(args, config) -> tuple[Path, Path, Path]:
    """(audio folder, events tsv, durations tsv): the explicit flags, else the data root's layout."""
    if args.audio_dir and args.tsv and args.durations_tsv:
        return resolve_path(args.audio_dir), resolve_path(args.tsv), resolve_path(args.durations_tsv)
    files = find_eval_files(data_root(config, "sed"), "sed").paths
    return (resolve_path(args.audio_dir) or files["audio"], resolve_path(args.tsv) or files["events"],
            resolve_path(args.durations_tsv) or files["durations"])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    audio_dir, tsv, durations = sed_inputs(args, config)
    label_map = load_label_map(resolve_path(args.label_map)) if args.label_map else None
    model, device = load_script_model(args, config)
    result = evaluate_sed(model, audio_dir, tsv, durations, device, config.eval.batch_size,
                          config.eval.num_workers, label_map=label_map, plot_dir=plot_folder(args),
                          num_plots=args.plot, long_audio=config.eval.long_audio,
                          score_tiled_tail=config.eval.score_tiled_tail, precision=config.eval.precision,
                          strict=config.eval.strict)
    report("Zero-shot sound event detection", result, args.out,
           {"checkpoint": str(config.eval.ckpt), "tsv": str(tsv), "audio_dir": str(audio_dir), "device": str(device)})
    return result


if __name__ == "__main__":
    exit_script(run_script(main))
