"""Command-line helpers shared by the zero_shot_*.py scripts and example.py: options, config, model,
result tables and JSON, and one-line error reports."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data_handling.audio_io import AudioReadError
from data_handling.eval_sets.layouts import task_root
from models.checkpoint import CheckpointError, CheckpointMismatchError
from models.factory import model_from_checkpoint
from models.memory import reuse_freed_memory
from models.model_folder import is_model_folder
from models.runtime import resolve_device
from tools.config import Config, load_config
from tools.eval.common import STRICT_EXIT_CODE, IncompleteEvaluationError, coverage_line

REPO_ROOT = Path(__file__).resolve().parents[2]
INFERENCE_CONFIG = "settings/inference.yaml"
"""The YAML every script reads by default (-c picks another)."""

SCRIPT_ERRORS = (FileNotFoundError, ValueError, CheckpointError, CheckpointMismatchError, AudioReadError)
"""Errors a script reports as one line (no traceback): missing data, bad config, unusable checkpoint."""


def script_parser(description: str, default_config: str = INFERENCE_CONFIG, out_default: str | None = None,
                  out_help: str = "write the results to this JSON file") -> argparse.ArgumentParser:
    """The options every script takes; scripts add their own."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=default_config, help="YAML file (default: %(default)s)")
    parser.add_argument("--ckpt", help="checkpoint file or model folder (default: eval.ckpt of the YAML)")
    parser.add_argument("--data-root", help="dataset folder (default: eval.data_root_dir of the YAML)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: device of the YAML)")
    parser.add_argument("--batch-size", type=int, help="audio files per batch (default: eval.batch_size; auto = "
                                                          "4 on a CPU, 32 on a GPU)")
    parser.add_argument("--num-workers", type=int, help="audio loading processes (default: eval.num_workers; auto = "
                                                           "none on a CPU of two cores or fewer, else 1; up to 8 "
                                                           "with a GPU)")
    parser.add_argument("--precision", choices=["float32", "bf16"],
                        help="on CUDA: float32 (exact, the default of eval.precision) or bf16 autocast (faster, "
                             "numbers differ by about 1 %%); the CPU always runs float32")
    parser.add_argument("--out", default=out_default, help=out_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. --set eval.batch_size=8 (repeatable); also applied "
                             "to the checkpoint's own config")
    parser.add_argument("--ignore-ckpt-config", action="store_true",
                        help="build the model from the YAML's model keys even if the checkpoint stores a config")
    return parser


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    """--strict: score only a complete set (eval.strict)."""
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 and an error naming the files when any file of the set is missing "
                             "or unreadable, before any score (eval.strict); default: score the others and say "
                             "'scored N of M files' (the results json has complete: false and the skipped files)")


def add_protocol_options(parser: argparse.ArgumentParser, crop: bool = False, retrieval_padding: bool = False,
                         tiled_tail: bool = False) -> None:
    """The evaluation-protocol switches a script offers (defaults: the YAML's eval keys, which default to the
    reference's protocol), --strict included."""
    add_strict_option(parser)
    long_audio_choices = ["crop", "cut", "window"] if crop else ["cut", "window"]
    parser.add_argument("--long-audio", choices=long_audio_choices,
                        help="audio longer than 10 s: " + ("crop = one random 10 s crop (seeded), " if crop else "")
                             + "cut = its first 10 s, window = every 10 s window, all frames (default: "
                               "eval.long_audio, else the task's reference handling)")
    if crop:
        parser.add_argument("--crop-seed", type=int, help="seed of the 10 s crops: clip i's crop start comes from "
                                                          "(seed, i) (default: eval.crop_seed, 0)")
    if retrieval_padding:
        parser.add_argument("--fixed-padding", action="store_true",
                            help="zero-pad every short clip to 10 s, instead of to the longest clip of its "
                                 "first caption's 32-caption batch as the reference (eval.retrieval_padding)")
    if tiled_tail:
        parser.add_argument("--drop-tiled-tail", action="store_true",
                            help="drop the frames (SED) or clip the detections (grounding) beyond a short clip's "
                                 "duration, instead of scoring the tiled 10 s input whole as the reference "
                                 "(eval.score_tiled_tail: false)")


def resolve_path(path: str | Path | None) -> Path | None:
    """A relative path as given when it exists from the working directory, else under the repository."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists() or not (REPO_ROOT / path).exists():
        return path
    return REPO_ROOT / path


def load_script_config(args: argparse.Namespace) -> Config:
    """The YAML with --set overrides, then the explicit flags (--ckpt, --data-root, ...) on top."""
    config = load_config(resolve_path(args.config), args.overrides)
    if args.ckpt is not None:
        config.eval.ckpt = args.ckpt
    if args.data_root is not None:
        config.eval.data_root_dir = args.data_root
    if args.device is not None:
        config.device = args.device
    if args.batch_size is not None:
        config.eval.batch_size = args.batch_size
    if args.num_workers is not None:
        config.eval.num_workers = args.num_workers
    if args.precision is not None:
        config.eval.precision = args.precision
    if getattr(args, "long_audio", None) is not None:
        config.eval.long_audio = args.long_audio
    if getattr(args, "crop_seed", None) is not None:
        config.eval.crop_seed = args.crop_seed
    if getattr(args, "fixed_padding", False):
        config.eval.retrieval_padding = "fixed"
    if getattr(args, "drop_tiled_tail", False):
        config.eval.score_tiled_tail = False
    if getattr(args, "strict", False):
        config.eval.strict = True
    return config


def load_script_model(args: argparse.Namespace, config: Config) -> tuple[nn.Module, torch.device]:
    """The model of eval.ckpt on config.device (checkpoint config preferred unless --ignore-ckpt-config)."""
    ckpt = resolve_path(config.eval.ckpt)
    if ckpt is None or not (ckpt.is_file() or is_model_folder(ckpt)):
        raise FileNotFoundError(
            f"checkpoint {ckpt} not found. Train the quickstart model first (python pretrain.py -c "
            f"settings/quickstart.yaml writes outputs/quickstart/best.pt), or pass --ckpt, e.g. "
            f"--ckpt pretrained_models/model.pt for the released MGA-CLAP checkpoint (or a model folder written by "
            f"python -m models.convert)")
    device = resolve_device(config.device)
    model = model_from_checkpoint(ckpt, config.model_config(), device, overrides=args.overrides,
                                  use_checkpoint_config=not args.ignore_ckpt_config)
    return model, device


def data_root(config: Config, task: str) -> Path:
    """eval.data_root_dir resolved (and narrowed to the task's split for the synthetic corpus): a dataset's own
    folder or the reference's parent folder of all datasets (data_handling.eval_sets.layouts.find_eval_files)."""
    root = resolve_path(config.eval.data_root_dir)
    if root is None:
        raise ValueError("no dataset folder: set eval.data_root_dir in the YAML or pass --data-root")
    return task_root(root, task)


def _rows(result: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Flatten a result into (name, value) rows; lists are shown by their length."""
    rows = []
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_rows(value, f"{name}."))
        elif isinstance(value, float):
            rows.append((name, f"{value:.4f}"))
        elif isinstance(value, list):
            rows.append((name, f"{len(value)} item(s)"))
        else:
            rows.append((name, str(value)))
    return rows


def format_table(title: str, result: Mapping[str, Any]) -> str:
    """A two-column text table of a result dict."""
    rows = _rows(result)
    width = max([len(name) for name, _ in rows] + [10])
    lines = [title, "-" * (width + 14)] + [f"{name:<{width}}  {value:>10}" for name, value in rows]
    return "\n".join(lines)


def write_json(path: str | Path, content: Mapping[str, Any]) -> Path:
    """Write a result as indented JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def report(title: str, result: dict[str, Any], out: str | Path | None, run_info: Mapping[str, Any]) -> None:
    """Print the table and, for a result with `tools.eval.common.file_coverage` keys, the 'scored N of M files'
    line; with `out`, write the result plus a "run" entry (checkpoint, data, device)."""
    print(format_table(title, result))
    line = coverage_line(result)
    if line is not None:
        print(line)
    if out is not None:
        path = write_json(out, {**result, "run": dict(run_info)})
        print(f"results written to {path}")


def run_script(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> int:
    """Run a script's main; known errors become one 'error: ...' line on stderr and exit code 2 (1 for an
    incomplete set under --strict)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reuse_freed_memory()
    try:
        main(argv)
    except IncompleteEvaluationError as error:
        print(f"error: {error}", file=sys.stderr)
        return STRICT_EXIT_CODE
    except SCRIPT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def exit_script(code: int) -> None:
    """End a script's process with `code` (its `if __name__ == "__main__":` line, after `run_script`).

    Python's own exit work is done (atexit handlers, logging flushed, stdout and stderr flushed); then the
    process ends without the native teardown of the libraries torch and transformers load, which takes
    1.5-2.5 s on a 2-core CPU after every script (docs/benchmarks.md).
    Files the script wrote are closed by then (they are written with context managers)."""
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
