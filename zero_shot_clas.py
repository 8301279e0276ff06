"""Zero-shot audio classification: ESC-50, UrbanSound8K or VGGSound (or the synthetic ESC-50 split).

    python zero_shot_clas.py                                  # quickstart checkpoint, synthetic ESC-50
    python zero_shot_clas.py --dataset esc50 --ckpt pretrained_models/model.pt --data-root data/
    python zero_shot_clas.py --dataset urbansound8k --data-root data/UrbanSound8K --out us8k.json
    python zero_shot_clas.py --dataset vggsound --data-root data/vggsound
    python zero_shot_clas.py --dataset custom --data-root my_clips/ --prompt "the sound of {}"

--data-root (eval.data_root_dir) is the reference's parent folder of all datasets (ESC-50-master/,
UrbanSound8K/, VGGSound/) or a dataset's own folder; the layout is detected. Prompts: "<class> can be
heard" (ESC-50, VGGSound), the bare class name (UrbanSound8K). Audio zero-padded to 10 s; VGGSound cut to
10 s (--long-audio picks another handling of longer audio). Accuracy in percent (accuracy_percent),
averaged over the folds of ESC-50 and UrbanSound8K. --dataset custom: your own labelled clips, a folder of
class folders or a CSV/TSV with the columns audio,label[,fold] (or a Hugging Face dataset), evaluated as
ESC-50 (prompt "<class> can be heard" unless --prompt, the fold mean when folds are given). Dataset
layouts: docs/datasets.md; your own data: docs/own_data.md.
"""

from __future__ import annotations

from tools.eval.classification import CLASSIFICATION_PROTOCOLS, evaluate_classification_dataset
from tools.eval.cli import (
    add_protocol_options,
    data_root,
    exit_script,
    load_script_config,
    load_script_model,
    report,
    run_script,
    script_parser,
)


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__)
    parser.add_argument("--dataset", default="esc50", choices=sorted(CLASSIFICATION_PROTOCOLS),
                        help="which dataset layout and protocol (default: %(default)s)")
    parser.add_argument("--prompt", help="prompt template, '{}' replaced by the class name (default: the "
                                         "dataset's, '{} can be heard' for custom)")
    add_protocol_options(parser, crop=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    root = data_root(config, args.dataset)
    model, device = load_script_model(args, config)
    result = evaluate_classification_dataset(model, args.dataset, root, device, config.eval.batch_size,
                                             config.eval.num_workers, long_audio=config.eval.long_audio,
                                             crop_seed=config.eval.crop_seed, precision=config.eval.precision,
                                             strict=config.eval.strict, prompt_template=args.prompt)
    report(f"Zero-shot classification ({args.dataset})", result, args.out,
           {"checkpoint": str(config.eval.ckpt), "data_root": str(root), "device": str(device)})
    return result


if __name__ == "__main__":
    exit_script(run_script(main))
