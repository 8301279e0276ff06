"""torch.hub entry points.

    import torch
    model = torch.hub.load("path/to/this/repo", "mga_clap", "pretrained_models/mga-clap", source="local")
    model = torch.hub.load("<owner>/<repo>", "mga_clap", "/path/to/model.pt")               # a GitHub copy
    tiny = torch.hub.load("path/to/this/repo", "mga_clap_tiny", source="local")            # random, to try the API
    waveform = torch.hub.load("path/to/this/repo", "load_audio", "clip.wav", source="local")

The model is in eval mode on the device asked for; its helpers: `embed_audio(waveforms [B, samples] at
32 kHz) -> [B, E]`, `embed_text(list of str) -> [B, E]` (both L2-normalised), `encode_long_audio(waveform
[samples], any length) -> (frames [T, E], clip [E])`; frame-text scores: models.similarity.
"""

from __future__ import annotations

dependencies = ["torch", "transformers", "timm", "numpy", "soundfile", "soxr", "safetensors"]


def mga_clap(weights: str, device: str = "auto", overrides: list[str] | tuple[str, ...] = ()):
    """MGA-CLAP ready for inference from a model folder (python -m models.convert) or a checkpoint file.

    Args:
        weights: a model folder, our checkpoint, the reference's checkpoint or the released model.pt (a file
            that stores no config is the paper's model).
        device: 'auto', 'cpu', 'cuda', 'cuda:1'.
        overrides: YAML-dotted `key=value` model settings, e.g. ["text_encoder_args.type=/path/to/bert"].
    """
    from models.factory import model_from_checkpoint

    return model_from_checkpoint(weights, device=device, overrides=overrides)


def mga_clap_tiny(device: str = "cpu", seed: int = 0):
    """A tiny MGA-CLAP with random weights (about 1 M parameters, 32-dim embeddings): the API without a download."""
    import tempfile
    from pathlib import Path

    import torch

    from models.factory import model_from_checkpoint
    from tools.tiny_model import make_tiny_text_dir, tiny_config_dict

    torch.manual_seed(seed)
    text_dir = make_tiny_text_dir(Path(tempfile.gettempdir()) / "mga_clap_tiny_text")
    return model_from_checkpoint(None, tiny_config_dict(text_dir), device=device)


def load_audio(path: str, sample_rate: int = 32000):
    """An audio file as a float32 waveform tensor [samples], mono, at sample_rate (the model's: 32 kHz)."""
    import torch

    from data_handling.audio_io import load_audio as read

    return torch.from_numpy(read(path, sample_rate=sample_rate, mono=True))
