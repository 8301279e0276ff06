"""Linear probe: logistic regression on the frozen clip embeddings of your own labelled clips.

    python linear_probe.py --ckpt pretrained_models/model.pt --data my_clips/ --out probe.json
    python linear_probe.py --ckpt outputs/quickstart/best.pt --data clips.csv --folds 10

--data: a folder of class folders, a CSV/TSV with the columns audio,label[,fold], or a Hugging Face dataset
with an audio and a label column (docs/own_data.md). Clip embeddings as zero-shot classification computes
them (batched, audio zero-padded to 10 s, longer audio windowed; --long-audio cut takes its first 10 s).
Folds: the data's `fold` column, each fold held out once, unless --folds K draws K stratified folds (the
default without a fold column: 5, seeded by --seed). Accuracy in percent per fold and their mean, and a
per-class report (precision, recall, F1) over the held-out predictions.
"""

from __future__ import annotations

from tools.eval.cli import (
    add_protocol_options,
    exit_script,
    load_script_config,
    load_script_model,
    report,
    resolve_path,
    run_script,
    script_parser,
)
from tools.eval.linear_probe import evaluate_linear_probe


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__)
    parser.add_argument("--data", required=True, help="labelled clips: a folder of class folders, a CSV/TSV "
                                                      "audio,label[,fold] or a Hugging Face dataset")
    parser.add_argument("--folds", type=int, help="K stratified folds (default: the data's folds, else 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn folds (default: %(default)s)")
    add_protocol_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    data = resolve_path(args.data)
    model, device = load_script_model(args, config)
    result = evaluate_linear_probe(model, data, device, args.folds, config.eval.batch_size, config.eval.num_workers,
                                   long_audio=config.eval.long_audio or "window", seed=args.seed,
                                   precision=config.eval.precision)
    report("Linear probe", result, args.out, {"checkpoint": str(config.eval.ckpt), "data": str(data),
                                              "device": str(device)})
    return result


if __name__ == "__main__":
    exit_script(run_script(main))
