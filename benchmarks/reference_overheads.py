"""Emulation of the reference's documented extra work on our model, through forward hooks.

For when no checkout of the reference is at hand: `--reference-checkout` (benchmarks/reference_code.py)
measures the reference's real code and is the comparison to quote. This is an APPROXIMATION of the
reference (shared/reference/REFERENCE.md), not its code: the LAB value
path in every Swin block, attention maps collected and averaged per stage in eval mode, the
tscam/head tagging output computed and discarded, and a conv1d STFT with two 513 x 1024 kernels
whose log-mel replaces ours (torch.stft still runs, a small extra cost the reference does not
have). Fused attention is switched off. The outputs stay the same; only the cost changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.ase_model import ASE
from models.htsat import HTSAT, SwinStage, locality_aware_output, unfold_grid_to_frames
from models.speed import set_fused_attention


def install_reference_overheads(model: ASE) -> list[torch.utils.hooks.RemovableHandle]:
    """Add the reference's documented extra work to `model` through hooks (an approximation).

    Fused attention is switched off; returns the hook handles (call `.remove()` to undo the hooks).
    """
    htsat = model.audio_encoder.audio_enc
    set_fused_attention(model, False)
    handles = [htsat.audio_feats_extractor.register_forward_hook(ConvStftLogMel(htsat))]
    handles += _value_path_hooks(htsat)
    handles += _attention_map_hooks(htsat)
    handles.append(htsat.layers[-1].register_forward_hook(_tscam_hook(htsat)))
    return handles


class ConvStftLogMel:
    """Forward hook: the reference's log-mel through conv1d with 513 x 1024 kernels; replaces the output."""

    def __init__(self, htsat: HTSAT):
        frontend = htsat.audio_feats_extractor
        constants = frontend.reference_constants()
        device = frontend.mel_basis.device
        self.kernels = torch.cat([constants["conv_real"], constants["conv_imag"]]).to(device)  # [1026, 1, n_fft]
        self.mel_w = constants["melW"].to(device)
        self.n_fft = frontend.n_fft
        self.hop = frontend.hop_length

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        waveform = inputs[0]
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            padded = F.pad(waveform.float()[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
            spectrum = F.conv1d(padded, self.kernels.to(waveform.device), stride=self.hop)   # [B, 1026, T]
            real, imag = spectrum.chunk(2, dim=1)
            power = (real.square() + imag.square()).transpose(1, 2)                          # [B, T, 513]
            mel = power @ self.mel_w.to(waveform.device)
            return (10.0 * torch.log10(mel.clamp(min=1e-10))).unsqueeze(1)


def _value_path_hooks(htsat: HTSAT) -> list[torch.utils.hooks.RemovableHandle]:
    """The LAB value path in every block whose value path our model does not already compute."""
    blocks = [block for stage in htsat.layers for block in stage.blocks]
    if htsat.locality_aware_block:
        blocks = blocks[:-1]

    def hook(block: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        locality_aware_output(block, inputs[0])

    return [block.register_forward_hook(hook) for block in blocks]


def _attention_map_hooks(htsat: HTSAT) -> list[torch.utils.hooks.RemovableHandle]:
    """In eval mode keep every block's attention map and average them per stage, as the reference does."""
    handles = []
    for stage in htsat.layers:
        kept: list[torch.Tensor] = []
        for block in stage.blocks:
            handles.append(block.attn.softmax.register_forward_hook(_keep_map(kept)))
        handles.append(stage.register_forward_hook(_average_maps(kept)))
    return handles


def _keep_map(kept: list[torch.Tensor]) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not module.training:
            kept.append(output)
    return hook


def _average_maps(kept: list[torch.Tensor]) -> Callable[..., None]:
    def hook(stage: SwinStage, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        if kept:
            torch.cat([attention.unsqueeze(0) for attention in kept]).mean(dim=0)
            kept.clear()
    return hook


def _tscam_hook(htsat: HTSAT) -> Callable[..., None]:
    """After the last stage: tscam conv, frame-wise and clip-wise tagging outputs and head, discarded."""
    def hook(stage: SwinStage, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, Any]) -> None:
        grid = unfold_grid_to_frames(htsat.norm(output[0]), htsat.chunks)       # [B, C, G, T]
        tagging = torch.flatten(htsat.tscam_conv(grid), 2)                        # [B, classes, T]
        framewise = torch.sigmoid(tagging).permute(0, 2, 1)
        F.interpolate(framewise.transpose(1, 2), scale_factor=32, mode="nearest")
        clipwise = torch.sigmoid(tagging.mean(dim=2))
        htsat.head(clipwise)
    return hook
