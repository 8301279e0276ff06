"""Building a model ready for inference from a checkpoint (ours, the reference's or the released model.pt)
or a model folder (model.safetensors + config.json, models/model_folder.py).

A checkpoint of ours is self-describing: it stores the `ModelConfig` it was built from ("model_config";
older files of ours: the whole training config under "config", whose model keys are read). The
reference's files and the released model.pt store none: the caller's `ModelConfig` (by default the
paper's model) is used. The towers are built without reading pretrained weights; the checkpoint
brings every weight.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models.ase_model import ASE, as_model_config
from models.checkpoint import load_state, read_checkpoint
from models.config import ConfigError, ModelConfig
from models.model_folder import is_model_folder, load_folder_weights, read_folder_config
from models.runtime import resolve_device

log = logging.getLogger(__name__)


def stored_model_config(checkpoint: dict[str, Any], path: str | Path, overrides: Sequence[str] = ()
                        ) -> ModelConfig | None:
    """The ModelConfig a checkpoint stores ("model_config", else the model keys of "config"), with YAML-dotted
    `overrides` applied (keys outside the model are ignored); None when it stores none."""
    stored = checkpoint.get("model_config", checkpoint.get("config")) if isinstance(checkpoint, dict) else None
    if not isinstance(stored, dict):
        return None
    source = f"{path} (its stored config)"
    try:
        return ModelConfig.from_dict(stored, source).replace(overrides, source)
    except ConfigError as error:
        raise ConfigError(f"{error}\nThe checkpoint's own config could not be used; pass use_checkpoint_config=False "
                          f"(scripts: --ignore-ckpt-config) to build the model from the YAML's model keys instead"
                          ) from error


def build_without_random_init(config: ModelConfig) -> ASE:
    """An ASE whose parameters are left uninitialised (`torch.empty`): for a model whose every parameter is
    then loaded, which the loaders check (a missing key is an error). Skips the random initialisation of
    BERT and the linear layers (transformers' `no_init_weights`, which silences torch.nn.init's functions):
    2.2 of the 2.8 s that building the paper-size model takes on a 2-core CPU. Buffers (position ids, mel
    filters, attention masks) are computed as usual."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return ASE(config)


def model_from_checkpoint(ckpt_path: str | Path | None, config: ModelConfig | dict[str, Any] | None = None,
                          device: str | torch.device | None = "auto", overrides: Sequence[str] = (),
                          use_checkpoint_config: bool = True) -> ASE:
    """Build an ASE, load a checkpoint into it, move it to `device`, eval mode.

    Args:
        ckpt_path: our or the reference's checkpoint file, or a model folder (models/model_folder.py: read
            without pickle); None builds a model with random weights (tests).
        config: the model for checkpoints that store none (default: the paper's model), as a ModelConfig or
            a YAML-shaped dict; with use_checkpoint_config=False it is used for every checkpoint.
        device: 'auto', 'cpu', 'cuda', 'cuda:1' or a torch.device.
        overrides: YAML-dotted `key=value` applied to the checkpoint's stored config (e.g. to point
            text_encoder_args.type at a local folder).
    Errors of the loaders (missing file, refused pickle, mis-shaped tensors) pass through.
    """
    config = ModelConfig() if config is None else as_model_config(config)
    if ckpt_path is not None and is_model_folder(ckpt_path):
        if use_checkpoint_config:
            config = read_folder_config(ckpt_path).replace(overrides, f"{ckpt_path} (its config.json)")
        model = build_without_random_init(config.for_inference())
        load_folder_weights(model, ckpt_path)
        return model.to(resolve_device(device)).eval()
    checkpoint: dict[str, Any] | None = None
    if ckpt_path is not None:
        checkpoint = read_checkpoint(ckpt_path)
        stored = stored_model_config(checkpoint, ckpt_path, overrides) if use_checkpoint_config else None
        config = stored or config
    if checkpoint is not None:
        model = build_without_random_init(config.for_inference())
        load_state(model, checkpoint, ckpt_path)
    else:
        log.warning("no checkpoint given: the model has random weights")
        model = ASE(config.for_inference())
    return model.to(resolve_device(device)).eval()
