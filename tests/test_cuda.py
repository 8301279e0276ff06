"""CUDA checks, skipped without a GPU: the reference's numbers on the GPU, bf16/fp16 autocast forward and
backward, a short training run with mixed precision, and the zero-shot embeddings on the GPU.

Run on a GPU machine with `python -m pytest -q tests/test_cuda.py tests/test_golden.py` (set
MGA_CLAP_REFERENCE_DIR when ../shared/reference is not beside the checkout).
"""

from __future__ import annotations

import copy

import pytest
import torch

from models.ase_model import ASE
from models.checkpoint import load_checkpoint
from models.speed import set_fused_attention
from tests.golden import GOLDEN_DIR, golden_config, requires_reference
from tools.config import parse_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOLERANCE = 1e-4  # float32 on the GPU (TF32 off) against the reference's CPU outputs
AUTOCAST_TOLERANCE = 5e-2  # bf16/fp16 autocast against the same outputs


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().float().cpu(), expected.float().cpu()
    return ((actual - expected).norm() / expected.norm()).item()


@pytest.fixture
def no_tf32():
    """Exact float32 matmuls (TF32 would change the numbers at the 1e-3 level)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def golden_cuda():
    torch.manual_seed(0)
    model = ASE(golden_config())
    load_checkpoint(model, GOLDEN_DIR / "model.pt")
    model = model.cuda().eval()
    inputs = torch.load(GOLDEN_DIR / "inputs.pt", map_location="cuda", weights_only=True)
    outputs = torch.load(GOLDEN_DIR / "outputs.pt", map_location="cpu", weights_only=True)
    return model, inputs, outputs


@requires_reference
@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention", "explicit_attention"])
def test_golden_numbers_on_cuda(golden_cuda, no_tf32, fused):
    model, inputs, outputs = golden_cuda
    set_fused_attention(model, fused)
    try:
        with torch.no_grad():
            log_mel = model.audio_encoder.audio_enc.log_mel(inputs["audio"])
            audio_feats, frame_embeds = model.encode_audio(inputs["audio"])
            audio_embeds = model.msc(frame_embeds, model.codebook)
            text_feats, word_embeds, attn_mask = model.encode_text(inputs["texts"])
            text_embeds = model.msc(word_embeds, model.codebook, attn_mask)
            loss = model(inputs["audio"], inputs["texts"][:2], inputs["idx"])
    finally:
        set_fused_attention(model, True)
    assert torch.equal(attn_mask.cpu(), outputs["attn_mask"])
    for name, value in (("logmel", log_mel), ("audio_feats", audio_feats), ("frame_embeds", frame_embeds),
                        ("audio_embeds", audio_embeds), ("text_feats", text_feats), ("word_embeds", word_embeds),
                        ("text_embeds", text_embeds), ("loss_eval_forward", loss)):
        assert value.device.type == "cuda", name
        assert relative_error(value, outputs[name]) <= TOLERANCE, name


@requires_reference
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_forward_and_backward(golden_cuda, dtype):
    model, inputs, outputs = golden_cuda
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        log_mel = model.audio_encoder.audio_enc.log_mel(inputs["audio"])
        _, frame_embeds = model.encode_audio(inputs["audio"])
        audio_embeds = model.msc(frame_embeds, model.codebook)
        _, word_embeds, attn_mask = model.encode_text(inputs["texts"])
        text_embeds = model.msc(word_embeds, model.codebook, attn_mask)
    assert log_mel.dtype == torch.float32, "the front end must stay in float32 under autocast"
    assert relative_error(log_mel, outputs["logmel"]) <= TOLERANCE
    for name, value in (("audio_embeds", audio_embeds), ("text_embeds", text_embeds)):
        assert torch.isfinite(value).all(), name
        assert relative_error(value, outputs[name]) <= AUTOCAST_TOLERANCE, name

    trainable = copy.deepcopy(model).train()
    with torch.autocast("cuda", dtype=dtype):
        loss = trainable(inputs["audio"], inputs["texts"][:2], inputs["idx"])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    # The last Swin block's ordinary path feeds only the unused clip feature: no gradient there.
    grads = [p.grad for p in trainable.parameters() if p.grad is not None]
    assert len(grads) >= 0.9 * sum(p.requires_grad for p in trainable.parameters())
    assert all(torch.isfinite(grad).all() for grad in grads)
    assert sum(grad.norm().item() for grad in grads) > 0


@pytest.mark.parametrize("amp, compile_towers", [("bf16", False), ("fp16", False), ("bf16", True)],
                         ids=["bf16", "fp16", "bf16_compiled"])
def test_training_run_with_mixed_precision(tiny_config, synthetic_corpus, tmp_path, amp, compile_towers):
    from tools.train.trainer import Trainer

    config = parse_config({
        **tiny_config, "device": "cuda", "seed": 3,
        "json_files": [str(synthetic_corpus / "train" / "train.json")],
        "training": {"epochs": 2, "amp": amp, "clip_grad": 1.0, "compile": compile_towers},
        "optim_args": {"lr": 1e-3, "optimizer_name": "adamw", "warmup_steps": 2},
        "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": True},
    })
    trainer = Trainer(config, tmp_path / "exp", device=torch.device("cuda"))
    history = trainer.fit()
    assert trainer.global_step == 2 * trainer.optimizer_steps_per_epoch > 0
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert (tmp_path / "exp" / "last.pt").is_file()
    assert (trainer.scaler is not None) == (amp == "fp16")


@pytest.mark.parametrize("precision, tolerance", [("float32", TOLERANCE), ("bf16", AUTOCAST_TOLERANCE)])
def test_zero_shot_embeddings_on_cuda_match_cpu(tiny_config, synthetic_corpus, precision, tolerance):
    """What the zero-shot protocols compute from (clip, frame and text embeddings of files of any length)
    is the CPU's on the GPU: exactly in float32 (the default), within 5 % in bf16."""
    from tools.eval.embedding import embed_audio_files, embed_texts

    paths = sorted((synthetic_corpus / "sed" / "audio").glob("*.wav"))[:4]
    paths += sorted((synthetic_corpus / "esc50" / "audio").glob("*.wav"))[:2]  # 5 s clips, zero-padded
    texts = ["a dog barks twice", "rain", "a high beep then a siren"]
    torch.manual_seed(0)
    model = ASE({**tiny_config, "eval": {"precision": precision}}).eval()
    on_cpu = embed_audio_files(model, paths, "cpu", batch_size=3), embed_texts(model, texts, "cpu")
    model.cuda()
    on_cuda = embed_audio_files(model, paths, "cuda", batch_size=3), embed_texts(model, texts, "cuda")
    assert relative_error(on_cuda[0].clip, on_cpu[0].clip) <= tolerance
    assert relative_error(torch.cat(on_cuda[0].frames), torch.cat(on_cpu[0].frames)) <= tolerance
    assert relative_error(on_cuda[1], on_cpu[1]) <= tolerance
    assert torch.backends.cudnn.allow_tf32, "TF32 flags must be restored after inference"
