"""Convert a checkpoint into a model folder (model.safetensors + config.json + the text tower's files).

    python -m models.convert pretrained_models/model.pt pretrained_models/mga-clap     # the released model
    python -m models.convert outputs/quickstart/best.pt outputs/quickstart/model      # ours: its own config
    python -m models.convert CKPT OUT --config my_model.yaml --set embed_size=512     # a checkpoint without one

A checkpoint of ours stores its model config; the reference's files and the released model.pt store
none, and the paper's model is assumed (`--config` gives another YAML's model keys). After writing, the
folder is loaded back and its clip and text embeddings of a random 10 s waveform and two captions are
compared with the checkpoint's (`--no-check` skips that); a difference is an error (exit code 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

from models.checkpoint import CheckpointError, CheckpointMismatchError
from models.config import ConfigError, ModelConfig
from models.factory import model_from_checkpoint
from models.model_folder import save_model_folder

CHECK_CAPTIONS = ["a dog barks while a car passes by", "rain falls on a metal roof"]
CHECK_TOLERANCE = 1e-6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a checkpoint file (ours, the reference's, model.pt)")
    parser.add_argument("out", type=Path, help="the model folder to write (replaced if it is one)")
    parser.add_argument("--config", type=Path, help="a YAML whose model keys describe a checkpoint that stores none "
                                                    "(default: the paper's model)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model key, e.g. --set text_encoder_args.type=PATH (repeatable)")
    parser.add_argument("--ignore-ckpt-config", action="store_true", help="use --config even if the checkpoint "
                                                                          "stores a config")
    parser.add_argument("--no-check", action="store_true", help="do not compare the folder with the checkpoint")
    return parser.parse_args(argv)


def embeddings(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip embeddings [1, E] of a seeded random 10 s waveform and text embeddings [2, E]."""
    waveform = 0.1 * torch.randn(1, 10 * model.sample_rate, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.embed_audio(waveform), model.embed_text(CHECK_CAPTIONS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = None
        if args.config is not None:
            config = ModelConfig.from_dict(yaml.safe_load(args.config.read_text()), str(args.config))
        if args.overrides:
            config = (config or ModelConfig()).replace(args.overrides, "--set")
        model = model_from_checkpoint(args.checkpoint, config, device="cpu", overrides=args.overrides,
                                      use_checkpoint_config=not args.ignore_ckpt_config)
        folder = save_model_folder(model, args.out, source=str(args.checkpoint))
    except (CheckpointError, CheckpointMismatchError, ConfigError, FileNotFoundError, FileExistsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {folder}: model.safetensors, config.json, text_encoder/")
    if args.no_check:
        return 0
    expected_audio, expected_text = embeddings(model)
    got_audio, got_text = embeddings(model_from_checkpoint(folder, device="cpu"))
    difference = max((expected_audio - got_audio).abs().max().item(), (expected_text - got_text).abs().max().item())
    if difference > CHECK_TOLERANCE:
        print(f"error: the folder's embeddings differ from the checkpoint's by {difference:.2e}", file=sys.stderr)
        return 1
    print(f"checked: the folder's clip and text embeddings equal the checkpoint's (max difference {difference:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
