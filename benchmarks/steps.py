"""The measured work: the model of the run (ours at the preset's size, or the reference's), a random batch, one step.

- train: `loss = model(audio, captions, idx)`, backward, Adam step, zero_grad (train mode).
- infer: `encode_audio` + `msc` (frame and clip embeddings), eval mode, `torch.no_grad`.

With `--reference-checkout` the model and its steps come from benchmarks.reference_code (the
reference's own code). Our model's modules are imported where our model is built, not at the top
of this file, so that a process measuring the reference does not load them (timm and torchvision
among them: about 24 MB of resident memory the reference's own process would not have).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.settings import DTYPES, BenchmarkSettings

CAPTION_WORDS = (
    "a dog barks loudly while people talk in the background and a car passes by then birds chirp "
    "near water as rain falls on a metal roof followed by thunder and wind blowing through trees "
    "someone speaks softly before music plays with a bell ringing twice engine idles door slams"
).split()


def import_model_code(settings: BenchmarkSettings) -> None:
    """Import the measured model's code (ours or the reference's), so that memory read next includes it."""
    if settings.reference_checkout:
        from benchmarks.reference_code import check_checkout, import_reference
        import_reference(check_checkout(settings.reference_checkout))
    else:
        import benchmarks.reference_overheads  # noqa: F401  (imports our model's modules)


def build_model(settings: BenchmarkSettings) -> nn.Module:
    """The measured model on the device: the reference's (--reference-checkout) or ours with the switches."""
    if settings.reference_checkout:
        from benchmarks.reference_code import build_reference_model
        return build_reference_model(settings)
    return build_our_model(settings)


def build_our_model(settings: BenchmarkSettings) -> nn.Module:
    """Our ASE at the preset's size on the device, with the requested switches."""
    from benchmarks.presets import preset_config
    from benchmarks.reference_overheads import install_reference_overheads
    from models.ase_model import ASE
    from models.onednn_linear import set_onednn_linear
    from models.speed import apply_channels_last, compile_model, set_fused_attention

    model = ASE(preset_config(settings.preset, settings.fused_attention)).to(settings.device)
    set_fused_attention(model, settings.fused_attention)
    set_onednn_linear(model, settings.effective_onednn_linear)
    if settings.emulate_reference_overheads:
        install_reference_overheads(model)
    if settings.channels_last:
        apply_channels_last(model)
    if settings.compile:
        compile_model(model)
    return model


def random_batch(settings: BenchmarkSettings, sample_rate: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Random audio [B, seconds * sr] (about -20 dBFS noise), random captions, ids 0..B-1."""
    generator = torch.Generator().manual_seed(settings.seed)
    samples = int(settings.audio_seconds * sample_rate)
    audio = (0.1 * torch.randn(settings.batch_size, samples, generator=generator)).to(settings.device)
    rng = random.Random(settings.seed)
    captions = [" ".join(rng.choices(CAPTION_WORDS, k=settings.caption_words + rng.randint(-2, 2)))
                for _ in range(settings.batch_size)]
    return audio, captions, torch.arange(settings.batch_size, device=settings.device)


def autocast_context(settings: BenchmarkSettings) -> contextlib.AbstractContextManager:
    dtype = DTYPES[settings.dtype]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(settings.device).type, dtype=dtype)


def make_train_step(model: nn.Module, settings: BenchmarkSettings) -> Callable[[], None]:
    """One optimisation step: forward (training objective), backward, Adam step, zero_grad."""
    if settings.reference_checkout:
        from benchmarks.reference_code import make_reference_train_step
        return make_reference_train_step(model, settings)
    model.train()
    batch = random_batch(settings, model.sample_rate)
    impl = settings.optimizer_impl
    if settings.emulate_reference_overheads and impl == "default":
        impl = "for-loop"  # the reference's plain torch Adam
    return optimisation_step(model, build_adam(model, impl), batch, settings)


def optimisation_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                      batch: tuple[torch.Tensor, list[str], torch.Tensor],
                      settings: BenchmarkSettings) -> Callable[[], None]:
    """`loss = model(audio, captions, idx)`, backward (through a GradScaler for fp16 on CUDA), step, zero_grad."""
    audio, captions, idx = batch
    use_scaler = settings.dtype == "fp16" and torch.device(settings.device).type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def step() -> None:
        with autocast_context(settings):
            loss = model(audio, captions, idx)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def build_adam(model: nn.Module, impl: str) -> torch.optim.Optimizer:
    """Adam (lr 5e-5) over the trainable parameters; `impl` picks the implementation.

    "default" is what training uses (`tools.train.optim.build_optimizer`, the fused kernel); "for-loop" and
    "foreach" are torch's other Adam kernels; "fused" is torch's fused kernel without parameter groups.
    """
    if impl == "default":
        from tools.config import OptimArgs
        from tools.train.optim import build_optimizer
        return build_optimizer(model, OptimArgs(lr=5e-5))
    options = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5, **options[impl])


def make_infer_step(model: nn.Module, settings: BenchmarkSettings) -> Callable[[], None]:
    """Frame embeddings [B, 32, E] and clip embeddings [B, E] of a batch, eval mode, no_grad."""
    if settings.reference_checkout:
        from benchmarks.reference_code import make_reference_infer_step
        return make_reference_infer_step(model, settings)
    model.eval()
    audio, _, _ = random_batch(settings, model.sample_rate)

    def step() -> None:
        with torch.no_grad(), autocast_context(settings):
            # HTS-AT's pooled clip feature is not an embedding; the reference computed it anyway.
            _, frame_embeds = model.encode_audio(audio, need_clip_features=settings.emulate_reference_overheads)
            model.msc(frame_embeds, model.codebook)

    return step
