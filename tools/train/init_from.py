"""Starting a training run from trained weights (`training.init_from`, `pretrain.py --init-from PATH`).

The weights come from any model file (models/weights.py: the released model.pt, the reference's training
checkpoints, our last.pt / best.pt / per-set best files / snapshots, a model folder); the model is the
YAML's, and the optimiser, schedule and epoch start fresh. A file that does not fit the YAML's model is one
`ConfigError` line naming the first mismatched keys with their shapes, raised by `check_init_from` before
anything is written. A resumed run (`--resume`) continues from its own checkpoint and ignores init_from.
The experiment folder records the file and its sha256 in init_from.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoint import CheckpointError, describe_mismatch
from models.config import ConfigError, ModelConfig
from models.factory import build_without_random_init
from models.weights import model_file_kind, model_file_sha256, read_model_weights
from tools.config import Config

log = logging.getLogger(__name__)

RECORD_NAME = "init_from.json"
MODEL_KEYS_HINT = ("make the YAML's model keys (embed_size, audio_encoder_args.htsat, text_encoder_args.type, "
                   "codebook.size, model_args) those the weights were trained with")


def model_config_to_build(config: Config) -> ModelConfig:
    """The YAML's model; with init_from, built without reading pretrained tower weights (init_from brings
    every weight)."""
    model_config = config.model_config()
    return model_config.for_inference() if config.training.init_from else model_config


def read_init_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of `path` (any model file); a missing or unreadable file is one ConfigError line."""
    if not Path(path).exists():
        raise ConfigError(f"training.init_from: {path} does not exist; give a checkpoint (model.pt, best.pt, "
                          f"last.pt, ...) or a model folder")
    try:
        return read_model_weights(path)
    except CheckpointError as error:
        raise ConfigError(f"training.init_from: {' '.join(str(error).split())}") from error


def fitting_weights(model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of `path`, checked against every key and shape of `model`; ConfigError (one line) if
    they do not fit."""
    weights = read_init_weights(path)
    mismatch = describe_mismatch(model.state_dict(), weights)
    if mismatch:
        raise ConfigError(f"training.init_from {path} does not fit the model of the YAML: {mismatch}; "
                          f"{MODEL_KEYS_HINT}")
    return weights


def check_init_from(config: Config) -> None:
    """Raise ConfigError when `training.init_from` cannot be read or does not fit the YAML's model (built
    without reading pretrained weights or initialising any); call it before anything is written."""
    model = build_without_random_init(config.model_config().for_inference())
    fitting_weights(model, config.training.init_from)


def load_init_weights(model: nn.Module, path: str | Path) -> None:
    """Copy every weight of `path` into `model` (in place: the optimiser's references stay valid)."""
    model.load_state_dict(fitting_weights(model, path), strict=False)


def init_from_record(path: str | Path) -> dict[str, Any]:
    """What init_from.json holds: the path as given and resolved, the kind of file, its sha256."""
    return {"init_from": str(path), "resolved": str(Path(path).resolve()), "kind": model_file_kind(path),
            "sha256": model_file_sha256(path)}


def record_init_from(experiment_dir: Path, path: str | Path) -> dict[str, Any]:
    """Write init_from.json into the experiment folder; returns its content."""
    record = init_from_record(path)
    experiment_dir.mkdir(parents=True, exist_ok=True)
    (experiment_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record
