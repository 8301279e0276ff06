"""oneDNN kernels for HTS-AT's linear layers in CPU inference (float32, no autograd).

On x86 CPUs oneDNN's linear is 10-30 % faster than the MKL sgemm behind `F.linear` for HTS-AT's
narrow layers (96-768 channels), and it fuses the MLP's exact GELU into the first layer. Its results
equal `F.linear`'s to float rounding (relative error about 1e-6 on the frame embeddings). Everything
else (training and any autograd, CUDA, autocast, other dtypes, torch builds without oneDNN) goes
through `F.linear` unchanged.

`set_onednn_linear(module, enabled)` switches a model's `nn.Linear` and timm `Mlp` layers to these
subclasses in place (same parameters and state_dict keys); HTS-AT does it when built with
`audio_encoder_args.onednn_linear: true` (the default).
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

log = logging.getLogger(__name__)


@functools.cache
def onednn_linear_available() -> bool:
    """True when this torch build runs `torch.ops.mkldnn._linear_pointwise` (x86 builds with oneDNN)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        with torch.no_grad():
            probe = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4), "none",
                                                       [], "")
        return bool(torch.equal(probe, torch.full((2, 4), 3.0)))
    except (RuntimeError, NotImplementedError) as error:
        log.info("oneDNN linear is not usable here (%s); using F.linear", error)
        return False


def is_cpu_float32_inference(x: torch.Tensor) -> bool:
    """A non-empty float32 CPU tensor with autograd and CPU autocast off (where the CPU kernels apply)."""
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and x.numel() > 0 and not torch.is_autocast_enabled("cpu"))


def uses_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `linear` takes the oneDNN path for this input: CPU float32 inference, no autocast."""
    return is_cpu_float32_inference(x) and weight.dtype == torch.float32 and onednn_linear_available()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           gelu: bool = False) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, followed by exact (erf) GELU when `gelu`; [..., in] -> [..., out].

    Runs oneDNN's fused kernel in CPU float32 inference (`uses_onednn`), else `F.linear` (+ `F.gelu`).
    """
    if uses_onednn(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    out = F.linear(x, weight, bias)
    return F.gelu(out) if gelu else out


class OneDNNLinear(nn.Linear):
    """`nn.Linear` whose CPU float32 inference runs through oneDNN (see `linear`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class OneDNNMlp(Mlp):
    """timm's `Mlp` (fc1, exact GELU, fc2) with the GELU fused into fc1 in CPU float32 inference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fusable = (not self.training and isinstance(self.act, nn.GELU) and self.act.approximate == "none"
                   and isinstance(self.norm, nn.Identity) and uses_onednn(x, self.fc1.weight))
        if not fusable:
            return super().forward(x)
        return self.fc2(linear(x, self.fc1.weight, self.fc1.bias, gelu=True))


_SWAPS = ((nn.Linear, OneDNNLinear), (Mlp, OneDNNMlp))


def set_onednn_linear(module: nn.Module, enabled: bool) -> int:
    """Switch every `nn.Linear` and timm `Mlp` inside `module` to the oneDNN subclasses (or back), in
    place; parameters, buffers and state_dict keys are unchanged. Returns the number switched."""
    switched = 0
    for child in module.modules():
        for plain, onednn in _SWAPS:
            if type(child) is (plain if enabled else onednn):
                child.__class__ = onednn if enabled else plain
                switched += 1
    return switched
