"""oneDNN kernels for HTS-AT's linear layers in CPU inference (float32, no autograd).

On x86 CPUs oneDNN's linear (`torch.ops.mkldnn._linear_pointwise`, a private torch op) is 10-30 %
faster than the MKL sgemm behind `F.linear` for HTS-AT's narrow layers (96-768 channels), and it fuses
the MLP's exact GELU into the first layer. Its results equal `F.linear`'s to float rounding (relative
error about 1e-6 on the frame embeddings). Everything else (training and any autograd, CUDA, autocast,
other dtypes, torch builds without oneDNN) goes through `F.linear` (+ `F.gelu`) unchanged.

`OneDNNLinear` is an `nn.Linear` (optionally followed by exact GELU) that calls `linear`.
`set_onednn_linear(module, enabled)` puts `OneDNNLinear` layers in place of a model's `nn.Linear`
children, built around the same Parameter objects (so state_dict keys, optimiser state and tied
weights are kept); in timm `Mlp`s with exact GELU it fuses the GELU into `fc1` and sets `act` to
`nn.Identity` (the Mlp runs fc1, act, drop1, norm, fc2, drop2, so the GELU directly follows fc1 in
training and inference alike). Switched off, plain `nn.Linear` layers and `nn.GELU` come back.
HTS-AT switches itself on when built with `audio_encoder_args.onednn_linear: true` (the default).

On x86_64 builds with oneDNN the op is expected: if torch renames or breaks it, `linear` falls back
to `F.linear` with a warning, and tests/test_onednn_linear.py fails.
"""

from __future__ import annotations

import functools
import logging
import platform
from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

log = logging.getLogger(__name__)


def onednn_linear_expected() -> bool:
    """True on x86_64 torch builds with oneDNN, where `torch.ops.mkldnn._linear_pointwise` should run."""
    return platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()


@functools.cache
def onednn_linear_available() -> bool:
    """True when this torch build runs `torch.ops.mkldnn._linear_pointwise` correctly (checked once)."""
    if not torch.backends.mkldnn.is_available():
        return False
    problem = None
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        problem = "torch.ops.mkldnn._linear_pointwise is missing"
    else:
        try:
            with torch.no_grad():
                probe = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4),
                                                           "none", [], "")
            if not torch.equal(probe, torch.full((2, 4), 3.0)):
                problem = "torch.ops.mkldnn._linear_pointwise gives wrong numbers"
        except (RuntimeError, NotImplementedError, TypeError) as error:
            problem = f"torch.ops.mkldnn._linear_pointwise failed ({error})"
    if problem is None:
        return True
    (log.warning if onednn_linear_expected() else log.info)("%s; using F.linear (slower)", problem)
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
    """`nn.Linear`, followed by exact GELU when `gelu`, whose CPU float32 inference runs through oneDNN
    (see `linear`). Same parameters and state_dict keys as `nn.Linear`."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, gelu: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.gelu = gelu

    @classmethod
    def sharing(cls, layer: nn.Linear, gelu: bool = False) -> OneDNNLinear:
        """A layer that uses `layer`'s weight and bias Parameter objects (nothing is copied)."""
        return _share_parameters(layer, cls(layer.in_features, layer.out_features, bias=layer.bias is not None,
                                            gelu=gelu, device="meta"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, gelu=self.gelu)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", gelu=True" if self.gelu else "")


def _share_parameters(layer: nn.Linear, new: nn.Linear) -> nn.Linear:
    """`new` (built on the meta device) with `layer`'s Parameters and training mode; returns `new`."""
    new.weight = layer.weight
    new.bias = layer.bias
    return new.train(layer.training)


def _plain_linear(layer: nn.Linear) -> nn.Linear:
    return _share_parameters(layer, nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                                              device="meta"))


def _has_exact_gelu(mlp: nn.Module) -> bool:
    return type(mlp.act) is nn.GELU and mlp.act.approximate == "none"


def set_onednn_linear(module: nn.Module, enabled: bool) -> int:
    """Put `OneDNNLinear` layers in place of every `nn.Linear` child inside `module` (or plain ones
    back); returns the number of layers replaced.

    Each new layer holds the old one's Parameter objects, so parameters, state_dict keys and any
    optimiser state are unchanged; a layer shared by several parents stays shared. In a timm `Mlp` with
    exact GELU the GELU is fused into `fc1` and `act` becomes `nn.Identity` (switched off: `nn.GELU`
    again). Only children are replaced (not `module` itself, nor subclasses of `nn.Linear`); hooks
    registered on a replaced layer stay with the old object.
    """
    replacements: dict[int, tuple[nn.Module, nn.Module]] = {}  # id(old) -> (old, new)

    def replace(parent: nn.Module, name: str, make: Callable[[nn.Module], nn.Module]) -> None:
        old = getattr(parent, name)
        if id(old) not in replacements:
            replacements[id(old)] = old, make(old)
        setattr(parent, name, replacements[id(old)][1])

    for qualified_name, _ in list(module.named_modules(remove_duplicate=False)):  # parents before children
        if not qualified_name:
            continue
        parent_name, _, name = qualified_name.rpartition(".")
        parent = module.get_submodule(parent_name)
        child = getattr(parent, name)  # as it is now, after the replacements so far
        if enabled:
            if type(child) is Mlp and type(child.fc1) is nn.Linear and _has_exact_gelu(child):
                replace(child, "fc1", functools.partial(OneDNNLinear.sharing, gelu=True))
                child.act = nn.Identity()
            elif type(child) is nn.Linear:
                replace(parent, name, OneDNNLinear.sharing)
        elif type(child) is OneDNNLinear:
            if child.gelu:
                if not (type(parent) is Mlp and name == "fc1" and type(parent.act) is nn.Identity):
                    raise ValueError(f"cannot switch off {qualified_name} ({child}): its GELU has no `act` to "
                                     f"go back to")
                parent.act = nn.GELU()
            replace(parent, name, _plain_linear)
    return len(replacements)
