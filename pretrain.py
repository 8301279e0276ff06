"""Train MGA-CLAP from a YAML config.

    python pretrain.py -c settings/quickstart.yaml                 # CPU, built-in synthetic corpus
    python pretrain.py -c settings/pretrain.yaml                   # the paper's settings (WavCaps)
    torchrun --nproc_per_node 4 pretrain.py -c settings/pretrain.yaml
    python pretrain.py -c settings/quickstart.yaml --set optim_args.lr=1e-4 --exp-name lr1e-4 --resume auto
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from data_handling.shards.manifest import ShardError
from models.checkpoint import CheckpointError
from models.memory import reuse_freed_memory
from tools.config import Config, ConfigError, load_config, save_config
from tools.train.checkpointing import CheckpointWriteError, NoReadableCheckpoint
from tools.train.distributed import DistributedInfo, cleanup_distributed, init_distributed
from tools.train.trainer import Trainer, TrainingInterrupted

DEFAULT_CONFIG = Path("settings/pretrain.yaml")
log = logging.getLogger("pretrain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help="YAML settings file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. --set optim_args.lr=1e-4 (repeatable)")
    parser.add_argument("--exp-name", help="experiment folder name under output_dir (default: exp_name)")
    parser.add_argument("--resume", help="a checkpoint path, or 'auto' for the experiment's last.pt")
    parser.add_argument("--init-from", metavar="PATH",
                        help="start from trained weights (model.pt, best.pt, a model folder...): training.init_from")
    return parser.parse_args(argv)


def setup_logging(experiment_dir: Path, is_main: bool) -> None:
    handlers: list[logging.Handler] = []
    if is_main:
        experiment_dir.mkdir(parents=True, exist_ok=True)
        handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(experiment_dir / "train.log")]
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, handlers=handlers or None,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def prepare_synthetic_data(config: Config, is_main: bool) -> None:
    """Quickstart: generate the synthetic corpus if missing and point training and evaluation at it."""
    from data_handling.synthetic import ensure_corpus
    from data_handling.synthetic.corpus import corpus_paths
    from tools.train.distributed import barrier

    synthetic = config.synthetic
    root = Path(synthetic.root)
    if is_main:
        ensure_corpus(root, synthetic.num_train, synthetic.num_test, synthetic.seed)
    barrier()
    paths = corpus_paths(root)
    if not config.json_files:
        config.json_files = [paths["train_json"]]
    if not config.eval.retrieval_jsons:
        config.eval.retrieval_jsons = [paths["retrieval_json"]]


def check_training_data(config: Config, config_path: Path) -> None:
    if config.data_args.shards:
        return  # the shards are checked when the dataset opens them
    missing = [path for path in config.json_files if not Path(path).exists()]  # files, or folders of clips
    if not config.json_files or missing:
        raise SystemExit(
            f"training data missing for {config_path}: " + (", ".join(missing) if missing else "json_files is empty")
            + ".\nDownload WavCaps (json files and audio, see README, 'Training') and set json_files, "
              "or try the built-in synthetic corpus first: python pretrain.py -c settings/quickstart.yaml")
    from data_handling.caption_sources import check_source_layout
    from tools.train.data import source_options

    for path in config.json_files:  # tables, folders, datasets: a missing column stops the run here
        check_source_layout(path, options=source_options(config))


def check_init_weights(config: Config, resume: str | bool | None) -> None:
    """training.init_from must fit the YAML's model, unless a resumed run continues from its own checkpoint."""
    from tools.train.checkpointing import will_resume
    from tools.train.init_from import check_init_from

    if config.training.init_from and not will_resume(resume, Path(config.output_dir) / config.exp_name):
        check_init_from(config)


def report_card(trainer: Trainer, experiment_dir: Path) -> dict:
    """Zero-shot scores of best.pt on the synthetic test splits; written to report.json."""
    from models.checkpoint import load_checkpoint
    from tools.eval.report_card import synthetic_report_card

    best = experiment_dir / "best.pt"
    if best.is_file():
        load_checkpoint(trainer.model, best)
    report = synthetic_report_card(trainer.model, trainer.config.synthetic.root, trainer.device)
    report["training"] = trainer.history
    (experiment_dir / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def print_report(report: dict) -> None:
    rows = [
        ("retrieval T2A R@1 (%)", report["retrieval"]["t2a_R1_percent"]),
        ("retrieval A2T R@1 (%)", report["retrieval"]["a2t_R1_percent"]),
        ("classification accuracy (%)", report["classification"]["accuracy_percent"]),
        ("SED PSDS1 (0..1)", report["sed"]["psds1"]),
        ("SED PSDS2 (0..1)", report["sed"]["psds2"]),
        ("grounding PSDS 0.5 (0..1)", report["grounding"]["psds_0.5"]),
    ]
    print("\nReport card (synthetic test splits)")
    for name, value in rows:
        print(f"  {name:<30} {value:8.3f}")


STARTUP_ERRORS = (ConfigError, FileNotFoundError, ValueError, ShardError)
"""Errors of the configuration and the training data found before training starts: one line, exit 2."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reuse_freed_memory()
    try:
        config = load_config(args.config, args.overrides)
    except STARTUP_ERRORS as error:
        return report_startup_error(error)
    if args.exp_name:
        config.exp_name = args.exp_name
    if args.init_from:
        config.training.init_from = args.init_from
    if config.synthetic is None:
        try:
            check_training_data(config, args.config)  # before anything is written
        except STARTUP_ERRORS as error:
            return report_startup_error(error)
    resume = args.resume if args.resume is not None else config.resume
    try:
        check_init_weights(config, resume)  # before anything is written
    except STARTUP_ERRORS as error:
        return report_startup_error(error)
    dist_info, device = init_distributed(config.device)
    experiment_dir = Path(config.output_dir) / config.exp_name
    try:
        setup_logging(experiment_dir, dist_info.is_main)
        if config.device.startswith("cuda") and device.type == "cpu":
            log.warning("device %s was asked for but CUDA is not available: training on the CPU", config.device)
        seed_everything(config.seed + dist_info.rank)
        if config.synthetic is not None:
            prepare_synthetic_data(config, dist_info.is_main)
            check_training_data(config, args.config)
        if dist_info.is_main:
            save_config(config, experiment_dir / "config.yaml")
        return train(config, experiment_dir, dist_info, device, resume, resume_command(args, config, dist_info))
    except BaseException as error:
        if not isinstance(error, SystemExit):
            append_to_train_log(experiment_dir, f"uncaught exception on rank {dist_info.rank}, the run stops:\n"
                                + traceback.format_exc().rstrip())
        raise
    finally:
        cleanup_distributed()


def resume_command(args: argparse.Namespace, config: Config, dist_info: DistributedInfo) -> str:
    """The command that goes on with this run: its own arguments with `--resume auto`."""
    words = ["-c", str(args.config)]
    for override in args.overrides:
        words += ["--set", override]
    words += ["--exp-name", config.exp_name, "--resume", "auto"]
    launcher = "torchrun <the same torchrun options>" if dist_info.enabled else "python"
    return f"{launcher} pretrain.py {shlex.join(words)}"


def append_to_train_log(experiment_dir: Path, message: str, level: str = "CRITICAL") -> None:
    """Append `message` to the experiment's train.log in the log's format, from any rank (nothing on the
    terminal); a train.log that cannot be written (a full disk) is left as it is."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        experiment_dir.mkdir(parents=True, exist_ok=True)
        with open(experiment_dir / "train.log", "a", encoding="utf-8") as stream:
            stream.write(f"{stamp} {level} pretrain: {message}\n")
    except OSError:
        pass


def report_run_error(line: str, experiment_dir: Path, dist_info: DistributedInfo, exit_code: int) -> int:
    """An error that ends a run: one 'error: ...' line on the terminal and in train.log (rank 0)."""
    if dist_info.is_main:
        print(f"error: {line}", file=sys.stderr)
        append_to_train_log(experiment_dir, line, level="ERROR")
    return exit_code


def write_failure_line(error: CheckpointWriteError, trainer: Trainer, command: str) -> str:
    """What failed, why, the last intact checkpoint and the command that goes on from it."""
    intact = trainer.last_intact_checkpoint or "none (the run starts over)"
    return (f"{error}; the last intact checkpoint is {intact}; make room or fix the folder's permissions, then "
            f"go on with: {command}")


def train(config: Config, experiment_dir: Path, dist_info: DistributedInfo, device: torch.device,
          resume: str | bool | None, command: str = "python pretrain.py --resume auto") -> int:
    from tools.eval.classification import check_classification_sets
    from tools.eval.common import STRICT_EXIT_CODE, IncompleteEvaluationError
    from tools.eval.retrieval import check_retrieval_sets

    try:
        check_retrieval_sets(config.eval.retrieval_jsons, config.eval.strict, report=dist_info.is_main)
        check_classification_sets(config.eval.classification_sets, config.eval.strict, report=dist_info.is_main)
        trainer = Trainer(config, experiment_dir, dist_info, device)
    except IncompleteEvaluationError as error:
        return report_startup_error(error, STRICT_EXIT_CODE)
    except STARTUP_ERRORS as error:
        return report_startup_error(error)
    wandb_run = start_wandb(config, experiment_dir) if dist_info.is_main else None
    if wandb_run is not None:
        def log_to_wandb(record: dict) -> None:
            wandb_run.log({key: value for key, value in record.items() if isinstance(value, (int, float))})
        trainer.epoch_callback = log_to_wandb
    log.info("training on %s with %d process(es): %d captions, %d batches per epoch per process", device,
             dist_info.world_size, len(trainer.dataset), trainer.batches_per_epoch)
    exit_code = 1  # an exception leaves the wandb run marked as failed
    try:
        trainer.fit(resume)
        exit_code = 0
    except TrainingInterrupted as interruption:
        log.warning("%s", interruption)
        exit_code = 130
    except (NoReadableCheckpoint, CheckpointError) as error:  # --resume: nothing to go on from
        exit_code = report_run_error(str(error), experiment_dir, dist_info, 2)
    except CheckpointWriteError as error:
        exit_code = report_run_error(write_failure_line(error, trainer, command), experiment_dir, dist_info, 3)
    finally:
        if wandb_run is not None:
            finish_wandb(wandb_run, exit_code)
    if exit_code == 0 and dist_info.is_main and config.synthetic is not None:
        print_report(report_card(trainer, experiment_dir))
    return exit_code


def report_startup_error(error: Exception, exit_code: int = 2) -> int:
    """A configuration or data error before training: one 'error: ...' line (and the log), exit code 2 (1: an
    evaluation set incomplete under eval.strict)."""
    if logging.getLogger().hasHandlers():  # before setup_logging only the line below is printed
        log.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    return exit_code


def start_wandb(config: Config, experiment_dir: Path):
    if not config.wandb.enabled:
        return None
    try:
        import wandb
    except ImportError as error:
        raise SystemExit("wandb.enabled is true but wandb is not installed: pip install wandb") from error
    return wandb.init(project=config.wandb.project, name=config.exp_name, mode=config.wandb.mode,
                      dir=str(experiment_dir), config=config.to_dict())


def finish_wandb(run, exit_code: int) -> None:
    """Close the run whatever ended training, so that its files are complete before the process exits:
    0 marks it finished, any other code (130: interrupted, 1: an error) failed."""
    if exit_code:
        run.finish(exit_code=exit_code)
    else:
        run.finish()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


if __name__ == "__main__":
    sys.exit(main())
