"""The model reproduces the reference's outputs for the reference's small checkpoint."""

from __future__ import annotations

import pytest
import torch

from models.ase_model import ASE
from models.checkpoint import load_checkpoint
from models.losses import hard_negative_loss
from tests.golden import GOLDEN_DIR, golden_config, requires_reference

pytestmark = requires_reference
TOLERANCE = 1e-4


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.fixture(scope="module")
def golden():
    torch.manual_seed(0)
    model = ASE(golden_config())
    load_checkpoint(model, GOLDEN_DIR / "model.pt")
    model.eval()
    inputs = torch.load(GOLDEN_DIR / "inputs.pt", map_location="cpu", weights_only=True)
    outputs = torch.load(GOLDEN_DIR / "outputs.pt", map_location="cpu", weights_only=True)
    return model, inputs, outputs


def test_front_end_log_mel(golden):
    model, inputs, outputs = golden
    log_mel = model.audio_encoder.audio_enc.log_mel(inputs["audio"])
    assert log_mel.shape == outputs["logmel"].shape
    assert relative_error(log_mel, outputs["logmel"]) <= TOLERANCE


@pytest.mark.parametrize("prefix, key", [("", "audio"), ("short_", "short_audio")])
def test_audio_embeddings(golden, prefix, key):
    model, inputs, outputs = golden
    with torch.no_grad():
        audio_feats, frame_embeds = model.encode_audio(inputs[key])
        audio_embeds = model.msc(frame_embeds, model.codebook)
    for name, value in (("audio_feats", audio_feats), ("frame_embeds", frame_embeds),
                        ("audio_embeds", audio_embeds)):
        expected = outputs[prefix + name]
        assert value.shape == expected.shape, name
        assert relative_error(value, expected) <= TOLERANCE, name


def test_text_embeddings_with_long_caption(golden):
    model, inputs, outputs = golden
    with torch.no_grad():
        text_feats, word_embeds, attn_mask = model.encode_text(inputs["texts"])
        text_embeds = model.msc(word_embeds, model.codebook, attn_mask)
    assert torch.equal(attn_mask, outputs["attn_mask"])
    for name, value in (("text_feats", text_feats), ("word_embeds", word_embeds), ("text_embeds", text_embeds)):
        assert value.shape == outputs[name].shape, name
        assert relative_error(value, outputs[name]) <= TOLERANCE, name


def test_eval_forward_loss(golden):
    model, inputs, outputs = golden
    with torch.no_grad():
        loss = model(inputs["audio"], inputs["texts"][:2], inputs["idx"])
    assert relative_error(loss, outputs["loss_eval_forward"]) <= TOLERANCE


def test_hard_negative_loss_matches_reference_broadcasting():
    outputs = torch.load(GOLDEN_DIR / "outputs.pt", map_location="cpu", weights_only=True)
    sims, targets = outputs["hn_sims"], outputs["hn_targets"]
    loss = hard_negative_loss(sims, sims.t(), targets)
    assert relative_error(loss, outputs["hn_loss"]) <= TOLERANCE


def test_golden_with_fused_attention_off_is_equal(golden):
    """Both attention paths (fused SDPA and explicit softmax) give the reference's numbers."""
    model, inputs, outputs = golden
    blocks = [block for stage in model.audio_encoder.audio_enc.layers for block in stage.blocks]
    assert all(block.attn.fused_attn for block in blocks), "fused attention should be on by default"
    try:
        for block in blocks:
            block.attn.fused_attn = False
        with torch.no_grad():
            _, frame_embeds = model.encode_audio(inputs["audio"])
    finally:
        for block in blocks:
            block.attn.fused_attn = True
    assert relative_error(frame_embeds, outputs["frame_embeds"]) <= TOLERANCE
