"""Model folders: the weights in safetensors, the model config in json, the text tower's files beside them.

    FOLDER/
      model.safetensors    every learnable tensor and statistic (the constant buffers are rebuilt)
      config.json          {"format": "mga-clap-model", "version": 1, "model_config": ModelConfig.to_dict()}
                           whose text_encoder_args.type is "text_encoder" (the folder below)
      text_encoder/        the text tower's transformers config.json and its tokenizer files

Loading a folder reads no pickle (safetensors and json only) and downloads nothing: the text tower is
built from text_encoder/config.json and its tokenizer read from there. `save_model_folder` writes one
from a model; `python -m models.convert` turns a checkpoint (ours, the reference's, the released
model.pt) into one; `models.factory.model_from_checkpoint` accepts a folder wherever it accepts a
checkpoint file, so every script, example.py and torch.hub do too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoint import CheckpointError, check_state_dict, is_constant_key
from models.config import ModelConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TEXT_TOWER_DIR = "text_encoder"
FORMAT_NAME = "mga-clap-model"
FORMAT_VERSION = 1


def is_model_folder(path: str | Path) -> bool:
    """True for a folder holding model.safetensors and config.json."""
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS_NAME).is_file() and (path / CONFIG_NAME).is_file()


def weights_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without constant entries, each tensor its own contiguous CPU copy (safetensors
    refuses tensors that share memory)."""
    return {key: value.detach().to("cpu", copy=True).contiguous() for key, value in model.state_dict().items()
            if not is_constant_key(key)}


def save_model_folder(model: nn.Module, folder: str | Path, source: str = "") -> Path:
    """Write `model` (an ASE) as a model folder; returns the folder.

    The folder is written beside its final place and renamed onto it, so an interrupted save never
    leaves a half folder; an existing folder of the same name is replaced only when it is a model
    folder or empty (anything else there is an error, nothing is deleted).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and not is_model_folder(folder) and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not a model folder: choose a new or empty path")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        model_config = model.config.to_dict()
        model_config["text_encoder_args"]["type"] = TEXT_TOWER_DIR
        model_config["text_encoder_args"]["pretrained"] = False
        model_config["audio_encoder_args"]["pretrained"] = False
        text_tower = model.text_encoder
        text_tower.tokenizer.save_pretrained(staging / TEXT_TOWER_DIR)
        text_tower.text_encoder.config.save_pretrained(staging / TEXT_TOWER_DIR)
        (staging / CONFIG_NAME).write_text(json.dumps(
            {"format": FORMAT_NAME, "version": FORMAT_VERSION, "source": str(source), "torch": torch.__version__,
             "model_config": model_config}, indent=1))
        save_file(weights_to_save(model), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder


def read_folder_config(folder: str | Path) -> ModelConfig:
    """The folder's ModelConfig, its text tower pointed at the folder's text_encoder/."""
    folder = Path(folder)
    try:
        data: dict[str, Any] = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG_NAME} cannot be read as json: {error}") from error
    if data.get("format") != FORMAT_NAME or data.get("version") != FORMAT_VERSION or "model_config" not in data:
        raise CheckpointError(f"{folder / CONFIG_NAME} is not the config of a model folder (format {FORMAT_NAME!r} "
                              f"version {FORMAT_VERSION}); write one with `python -m models.convert`")
    stored = data["model_config"]
    text_type = stored.get("text_encoder_args", {}).get("type")
    if text_type == TEXT_TOWER_DIR:
        stored["text_encoder_args"]["type"] = str(folder / TEXT_TOWER_DIR)
    return ModelConfig.from_dict(stored, f"{folder / CONFIG_NAME}")


def read_folder_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """model.safetensors as a state dict (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {error}") from error


def load_folder_weights(model: nn.Module, folder: str | Path) -> None:
    """Load a folder's weights into a model built from its config (every tensor checked, as checkpoints)."""
    path = Path(folder) / WEIGHTS_NAME
    model.load_state_dict(check_state_dict(model, read_folder_weights(folder), path), strict=False)
