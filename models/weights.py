"""The weights of any model file, as one state dict with our key names.

A model file is any of: the released model.pt, the reference's training checkpoints
({'model', 'optimizer', 'config', 'epoch'}, DDP's 'module.' parts removed), a checkpoint of ours (last.pt,
best.pt, the per-set best files, snapshots) or a model folder (models/model_folder.py). Reading runs no
pickle code (torch.load with weights_only=True, or safetensors). Used to start training from trained
weights (training.init_from) and by `python -m models.interpolate`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from models.checkpoint import extract_state_dict, map_checkpoint_keys, read_checkpoint
from models.config import ModelConfig
from models.factory import stored_model_config
from models.model_folder import WEIGHTS_NAME, is_model_folder, read_folder_config, read_folder_weights


def read_model_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Every learnable tensor and statistic of the model file at `path` (constant entries dropped), on the CPU.

    Raises CheckpointError for a missing, unreadable or refused file.
    """
    if is_model_folder(path):
        return map_checkpoint_keys(read_folder_weights(path))
    return map_checkpoint_keys(extract_state_dict(read_checkpoint(path), path))


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelConfig | None]:
    """(`read_model_weights(path)`, the ModelConfig the file stores or None: the released model.pt and the
    reference's files store none)."""
    if is_model_folder(path):
        return map_checkpoint_keys(read_folder_weights(path)), read_folder_config(path)
    checkpoint = read_checkpoint(path)
    return map_checkpoint_keys(extract_state_dict(checkpoint, path)), stored_model_config(checkpoint, path)


def model_file_kind(path: str | Path) -> str:
    """'model folder' or 'checkpoint' (a file read with torch.load)."""
    return "model folder" if is_model_folder(path) else "checkpoint"


def model_file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """The sha256 of a checkpoint file, or of a model folder's model.safetensors (hex)."""
    path = Path(path)
    target = path / WEIGHTS_NAME if is_model_folder(path) else path
    digest = hashlib.sha256()
    with open(target, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
