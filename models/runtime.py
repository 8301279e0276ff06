"""Running a model: devices, inference numerics, and the ASE inside a DDP or compiled wrapper."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from models.ase_model import ASE

PRECISIONS = ("float32", "bf16")
"""Inference numerics on CUDA (eval.precision); the CPU always runs float32."""


def resolve_device(name: str | torch.device | None) -> torch.device:
    """'auto' / None -> cuda if available else cpu; 'cuda' without a GPU falls back to cpu with a warning."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device '{name}' was asked for but CUDA is not available; running on the CPU "
                      f"(set device: cpu or --device cpu to silence this)", UserWarning, stacklevel=2)
        return torch.device("cpu")
    return device


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


@contextlib.contextmanager
def inference_context(model: nn.Module, device: torch.device, precision: str = "float32") -> Iterator[None]:
    """model.eval(), no_grad and the numerics of `precision`; restores the training flag after.

    On CUDA, "float32" is exact float32 (TF32 off, so the numbers are the CPU's) and "bf16" runs under
    bf16 autocast (about twice as fast, numbers differ by about 1 %). The CPU always runs float32.
    """
    was_training = model.training
    model.eval()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device.type != "cuda":
        numerics: contextlib.AbstractContextManager = contextlib.nullcontext()
    elif precision == "bf16":
        numerics = torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    else:
        numerics = exact_float32()
    try:
        with torch.no_grad(), numerics:
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and convolutions inside the block (the flags are restored after)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def unwrap(model: nn.Module) -> ASE:
    """The ASE inside a DistributedDataParallel / compiled wrapper (or the model itself)."""
    while not isinstance(model, ASE):
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected an ASE model (or a DDP wrapper of one), got {type(model).__name__}")
        model = inner
    return model
