"""Optimiser and the per-step cosine schedule with linear warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from tools.config import OptimArgs

DEFAULT_WEIGHT_DECAY = {"adam": 0.0, "adamw": 0.01, "sgd": 0.0}
"""torch's own defaults, used when `optim_args.weight_decay` is not set (the reference never sets it)."""


def parameter_groups(model: nn.Module, weight_decay: float, decay_norms_and_biases: bool) -> list[dict]:
    """The trainable parameters as optimiser groups.

    decay_norms_and_biases=True: one group, every parameter decayed (the reference). False: biases, norm
    weights and scalars (parameters with at most one dimension, or named '*.bias') get no weight decay.
    """
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    if decay_norms_and_biases:
        return [{"params": [parameter for _, parameter in trainable], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for name, parameter in trainable:
        is_scalar_or_norm = parameter.ndim <= 1 or name.endswith(".bias")
        (no_decay if is_scalar_or_norm else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, args: OptimArgs) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with `momentum`) over the trainable parameters, as the reference's names (in any
    case: "AdamW" is AdamW, as the reference).

    Without `weight_decay` in the YAML each optimiser keeps torch's default (Adam 0, AdamW 0.01, SGD 0),
    on every parameter unless `decay_norms_and_biases` is false.
    """
    name = args.optimizer_name.lower()  # the reference compares optimizer_name.lower()
    if name not in DEFAULT_WEIGHT_DECAY:
        raise ValueError(f"optim_args.optimizer_name is {args.optimizer_name!r}; expected one of "
                         f"{list(DEFAULT_WEIGHT_DECAY)} (in any case)")
    weight_decay = DEFAULT_WEIGHT_DECAY[name] if args.weight_decay is None else args.weight_decay
    groups = parameter_groups(model, weight_decay, args.decay_norms_and_biases)
    # The fused kernel applies the same update rule in one pass (about 9x faster than the per-tensor
    # loop on CPU, see benchmarks/RESULTS.md); it needs floating-point parameters on CPU or CUDA.
    fused = all(parameter.is_floating_point() and parameter.device.type in ("cpu", "cuda")
                for group in groups for parameter in group["params"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, fused=fused)
    optimizer_class = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=args.lr, betas=tuple(args.betas), eps=args.eps, fused=fused)


class CosineWithWarmup:
    """lr = base * (step + 1) / warmup during warm-up, then base-to-min cosine decay, set every step.

    The reference's schedule: 0.5 * (1 + cos(pi * e / es)) * base after warm-up, with e the step since
    the end of warm-up and es the remaining steps. `state_dict()` is the step, so resuming is exact.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int, warmup_steps: int,
                 min_lr: float = 0.0):
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.total_steps = max(1, total_steps)
        self.warmup_steps = max(0, min(warmup_steps, self.total_steps - 1))
        self.min_lr = min_lr
        self.step_count = 0
        self._apply(self.lr_at(0))

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return self.min_lr + (self.base_lr - self.min_lr) * cosine

    def step(self) -> None:
        self.step_count += 1
        self._apply(self.lr_at(self.step_count))

    def seek(self, step: int) -> None:
        """Jump to `step` (the reference indexes the schedule by epoch * epoch_length + batch)."""
        self.step_count = step
        self._apply(self.lr_at(step))

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _apply(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply(self.lr_at(self.step_count))


def warmup_steps_from(args: OptimArgs, steps_per_epoch: int) -> int:
    """`warmup_steps` when positive, else `warmup_epochs` epochs of optimiser steps."""
    if args.warmup_steps > 0:
        return args.warmup_steps
    return int(round(args.warmup_epochs * steps_per_epoch))
