"""Checkpoint I/O: the reference's format and ours (the same key names), read safely.

Both are `{'model': state_dict, ...}`; ours add "model_config" (the `ModelConfig` dict the model was
built from), and training files the optimiser, schedule and full config. Reading always uses
`map_location='cpu'` and `weights_only=True`: a checkpoint can never run code. `map_checkpoint_keys`
is the one key-mapping function for checkpoints written elsewhere (the released model.pt, DDP or
torch.compile wrappers, HTS-AT's AudioSet checkpoint). Constant entries (STFT kernels, mel matrix,
relative position indices, shifted-window masks, BERT position ids) may be present or absent; every
learnable tensor and statistic must be present with its shape, else one `CheckpointMismatchError`
lists the missing, unexpected and mis-shaped keys. Building a model from a checkpoint:
`models.factory.model_from_checkpoint`.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONSTANT_KEY_PATTERNS = (
    r"audio_feats_extractor\.",          # conv-STFT kernels and melW of the reference's front end
    r"\.relative_position_index$",       # Swin relative position index
    r"\.attn_mask$",                     # shifted-window attention masks
    r"embeddings\.position_ids$",        # transformers < 4.31
)
_CONSTANT_RE = re.compile("|".join(CONSTANT_KEY_PATTERNS))


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read (missing, corrupt, or would execute code)."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's tensors do not fit the model built from the config."""


def is_constant_key(key: str) -> bool:
    return bool(_CONSTANT_RE.search(key))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load with map_location='cpu' and weights_only=True, with errors that say what to do.

    Files in torch's zip format are memory-mapped (`mmap=True`): their tensors are read from the page cache
    when copied into a model, not first into a second copy in memory (the paper-size file: 0.1 s instead of
    1 s, and 594 MB less at peak). Legacy-format files are read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} was refused: it is not a plain tensor checkpoint (loading it would need to run code, "
            f"which is never done here). Re-save it as {{'model': state_dict}} from trusted code. "
            f"Detail: {str(error).splitlines()[0]}") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): {error}") from error


def extract_state_dict(checkpoint: dict[str, Any], path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The state dict of `{'model': ...}`, `{'state_dict': ...}` or a bare state dict, keys as stored."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict, got {type(checkpoint).__name__}")
    for key in ("model", "state_dict"):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            state = checkpoint[key]
            break
    else:
        state = checkpoint
    if not state or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"{path}: no state dict of tensors found (keys: {list(checkpoint)[:8]})")
    return state


WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Key parts added by DistributedDataParallel ('module.') and torch.compile ('_orig_mod.')."""
CHECKPOINT_SOURCES = ("mga_clap", "htsat_audioset")


def map_checkpoint_keys(state: dict[str, torch.Tensor], source: str = "mga_clap") -> dict[str, torch.Tensor]:
    """A foreign checkpoint's state dict with our key names (as timm's checkpoint_filter_fn).

    Every source: wrapper parts ('module.', '_orig_mod.') removed wherever they occur, constant entries
    (`is_constant_key`) dropped. 'mga_clap' (the reference's and ours): nothing else, the names are
    the same. 'htsat_audioset' (HTS-AT's AudioSet Lightning checkpoint, for HTSAT itself): only
    'sed_model.*' keys, prefix stripped, its spectrogram and log-mel extractors dropped.
    """
    if source not in CHECKPOINT_SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; expected one of {CHECKPOINT_SOURCES}")
    mapped = {}
    for key, value in state.items():
        for prefix in WRAPPER_PREFIXES:
            key = key.replace(f".{prefix}", ".").removeprefix(prefix)
        if source == "htsat_audioset":
            if not key.startswith("sed_model.") or "spectrogram_extractor" in key or "logmel_extractor" in key:
                continue
            key = key.removeprefix("sed_model.")
        if not is_constant_key(key):
            mapped[key] = value
    return mapped


def state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]
                        ) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) keys of `given` against `expected`, each sorted; constant entries
    (`is_constant_key`) are left out of the comparison."""
    expected = {key: value for key, value in expected.items() if not is_constant_key(key)}
    given = {key: value for key, value in given.items() if not is_constant_key(key)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    misshaped = sorted(key for key in set(expected) & set(given) if expected[key].shape != given[key].shape)
    return missing, unexpected, misshaped


def describe_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], first: int = 3,
                      names: tuple[str, str] = ("checkpoint", "model")) -> str:
    """One line naming the first `first` mis-shaped keys of `given` against `expected` with both shapes
    (`names`: what given and expected are called), then the first missing and unexpected keys with their
    shapes; '' when every key fits."""
    missing, unexpected, misshaped = state_dict_mismatch(expected, given)
    parts = []
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped (" + ", ".join(
            f"{key}: {names[0]} {list(given[key].shape)} vs {names[1]} {list(expected[key].shape)}"
            for key in misshaped[:first]) + ")")
    if missing:
        parts.append(f"{len(missing)} missing (" + ", ".join(
            f"{key} {list(expected[key].shape)}" for key in missing[:first]) + ")")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (" + ", ".join(
            f"{key} {list(given[key].shape)}" for key in unexpected[:first]) + ")")
    return "; ".join(parts)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> dict[str, torch.Tensor]:
    """Drop constant entries; raise one error listing every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    given = {key: value for key, value in state.items() if not is_constant_key(key)}
    missing, unexpected, misshaped = state_dict_mismatch(expected, given)
    if missing or unexpected or misshaped:
        details = []
        if misshaped:
            details.append(f"{len(misshaped)} mis-shaped: " + ", ".join(
                f"{key} checkpoint {list(given[key].shape)} vs model {list(expected[key].shape)}"
                for key in misshaped[:10]))
        if missing:
            details.append(f"{len(missing)} missing: " + ", ".join(missing[:10]))
        if unexpected:
            details.append(f"{len(unexpected)} unexpected: " + ", ".join(unexpected[:10]))
        raise CheckpointMismatchError(  # one line: the scripts print it as their `error: ...` line
            f"{path} does not fit the model built from the config (another architecture or size?): "
            + "; ".join(details) + "; check embed_size, audio_encoder_args.htsat, text_encoder_args.type and "
            "codebook.size")
    return given


def load_state(model: nn.Module, checkpoint: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint dict already read (the reference's or ours) into `model`, keys mapped and checked."""
    state = check_state_dict(model, map_checkpoint_keys(extract_state_dict(checkpoint, path)), path)
    model.load_state_dict(state, strict=False)


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load the reference's or our checkpoint file into `model`; return the whole checkpoint dict."""
    checkpoint = read_checkpoint(path)
    load_state(model, checkpoint, path)
    return checkpoint


def reference_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict plus the constant entries the reference's strict loader expects.

    Adds the conv-STFT kernels and melW, relative_position_index and attn_mask buffers, so that a
    checkpoint we save also loads in the reference code.
    """
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if hasattr(module, "reference_constants"):
            constants = module.reference_constants()
            state[f"{prefix}mel_trans.stft.conv_real.weight"] = constants["conv_real"]
            state[f"{prefix}mel_trans.stft.conv_imag.weight"] = constants["conv_imag"]
            state[f"{prefix}log_trans.melW"] = constants["melW"]
        for buffer_name in ("relative_position_index", "attn_mask"):
            buffer = getattr(module, buffer_name, None)
            if isinstance(buffer, torch.Tensor):
                state[f"{prefix}{buffer_name}"] = buffer.detach().cpu().clone()
    return state


def load_htsat_pretrained(htsat: nn.Module, path: str | Path) -> None:
    """Initialise HTS-AT from the AudioSet checkpoint as the reference does.

    Reads the Lightning checkpoint's `state_dict`, keeps `sed_model.*` keys (not the spectrogram or
    log-mel extractor constants), strips the prefix and loads non-strictly; mis-shaped tensors are an
    error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"audio_encoder_args.pretrained is true but the HTS-AT AudioSet checkpoint is not at {path}. "
            f"Download HTSAT.ckpt (HTS-AT AudioSet weights) and put it there, set "
            f"audio_encoder_args.pretrained_path, or set audio_encoder_args.pretrained: false")
    checkpoint = read_checkpoint(path)
    source = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else {}
    state = map_checkpoint_keys(source, "htsat_audioset")
    if not state:
        raise CheckpointError(f"{path}: no 'sed_model.*' keys in its state_dict; is it an HTS-AT checkpoint?")
    own = htsat.state_dict()
    misshaped = [key for key in state if key in own and own[key].shape != state[key].shape]
    if misshaped:
        raise CheckpointMismatchError(f"{path}: HTS-AT sizes differ from audio_encoder_args.htsat for "
                                      f"{misshaped[:5]}")
    htsat.load_state_dict(state, strict=False)
