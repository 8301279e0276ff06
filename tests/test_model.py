"""The paper-size model's keys, sparsemax, CPU training step, checkpoints and bad input."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from models.ase_model import ASE
from models.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    is_constant_key,
    load_checkpoint,
    reference_state_dict,
)
from models.sparsemax import sparsemax
from tests.golden import REFERENCE_DIR, requires_reference
from tools.config import ConfigError, load_config

SECONDS = 32000


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return ASE({"text_encoder_args": {"pretrained": False}})


@pytest.mark.slow
@requires_reference
def test_paper_size_learnable_keys_and_shapes_equal_the_reference(paper_model):
    entries = json.loads((REFERENCE_DIR / "official_state_dict.json").read_text())["entries"]
    official = {entry["key"]: entry["shape"] for entry in entries if not is_constant_key(entry["key"])}
    ours = {key: list(value.shape) for key, value in paper_model.state_dict().items() if not is_constant_key(key)}
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {key: ours[key] for key in official} == official


@requires_reference
def test_saved_reference_state_dict_has_every_reference_key(paper_model):
    entries = json.loads((REFERENCE_DIR / "official_state_dict.json").read_text())["entries"]
    official = {entry["key"]: entry["shape"] for entry in entries if "position_ids" not in entry["key"]}
    exported = {key: list(value.shape) for key, value in reference_state_dict(paper_model).items()
                if "position_ids" not in key}
    assert exported == official


def test_sparsemax_sums_to_one_is_sparse_and_passes_gradcheck():
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 3
    probabilities = sparsemax(logits)
    assert torch.allclose(probabilities.sum(-1), torch.ones(3), atol=1e-6)
    assert (probabilities >= 0).all()
    assert (probabilities == 0).sum() > 0.5 * probabilities.numel()
    uniform = sparsemax(torch.zeros(2, 4))
    assert torch.allclose(uniform, torch.full((2, 4), 0.25))
    double = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sparsemax(x, dim=-1), (double,))
    columns = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sparsemax(x, dim=0), (columns,))
    # NaN logits (e.g. after a diverged step) give NaN for the trainer's bad-step guard, not an index error
    assert torch.isnan(sparsemax(torch.tensor([[float("nan"), 1.0, 2.0]]))).all()


def test_forward_and_backward_on_cpu(tiny_config):
    torch.manual_seed(0)
    model = ASE(tiny_config)
    model.train()
    audio = torch.randn(3, 10 * SECONDS) * 0.1
    loss = model(audio, ["a dog barks", "a siren wails", "rain falls"], torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.codebook.grad is not None and model.codebook.grad.abs().sum() > 0
    assert model.audio_encoder.audio_enc.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.text_encoder.text_encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_batched_window_attention_equals_sdpa_in_cpu_inference(tiny_config, monkeypatch):
    from models.htsat import BatchedWindowAttention

    torch.manual_seed(0)
    htsat = {**tiny_config["audio_encoder_args"]["htsat"], "depths": [2, 1, 1, 2]}
    model = ASE({**tiny_config, "audio_encoder_args": {"htsat": htsat}}).eval()
    shifted_block = model.audio_encoder.audio_enc.layers[0].blocks[1]
    assert isinstance(shifted_block.attn, BatchedWindowAttention) and any(shifted_block.shift_size)
    tokens = torch.randn(2, *shifted_block.input_resolution, shifted_block.attn.qkv.in_features)
    expected = shifted_block(tokens).detach()  # autograd on: timm's fused SDPA path
    calls = []
    original = torch.baddbmm
    monkeypatch.setattr(torch, "baddbmm", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    with torch.no_grad():
        batched = shifted_block(tokens)
    assert calls, "CPU float32 inference should take the batched path"
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-5)


def test_frame_embeddings_are_32_per_clip(tiny_config):
    model = ASE(tiny_config).eval()
    with torch.no_grad():
        clip_features, frames = model.encode_audio(torch.randn(2, 5 * SECONDS))
    assert clip_features.shape == (2, 64)
    assert frames.shape == (2, 32, 32)


@pytest.mark.parametrize("override", [
    {"model_args": {"aggregation": "mean", "locality_aware_block": False, "loss": "infonce"}},
    {"model_args": {"locality_aware_block": False}},
])
def test_ablations_train(tiny_config, override):
    model = ASE({**tiny_config, **override}).train()
    loss = model(torch.randn(2, 2 * SECONDS), ["a bell", "a hum"], torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("audio, error", [
    (torch.randn(SECONDS), ValueError),                       # no batch axis
    (torch.randn(1, 2, SECONDS), ValueError),                 # channels left in
    (torch.randint(-100, 100, (1, SECONDS), dtype=torch.int16), TypeError),
    ([0.0] * 100, TypeError),
    (torch.randn(1, 11 * SECONDS), ValueError),               # longer than one 10.24 s window
])
def test_bad_audio_is_a_clear_error(tiny_config, audio, error):
    model = ASE(tiny_config).eval()
    with pytest.raises(error, match=r"audio|frames"):
        model.encode_audio(audio)


def test_empty_caption_list_is_a_clear_error(tiny_config):
    model = ASE(tiny_config).eval()
    with pytest.raises(ValueError, match="at least one caption"):
        model.encode_text([])
    with pytest.raises(TypeError, match="list of caption strings"):
        model.encode_text("a single string")


def test_checkpoint_round_trip_and_other_architecture(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = ASE(tiny_config).eval()
    path = tmp_path / "model.pt"
    torch.save({"model": reference_state_dict(model), "epoch": 1}, path)
    clone = ASE(tiny_config).eval()
    load_checkpoint(clone, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, clone.state_dict()[key]), key

    bigger = {**tiny_config, "embed_size": 48}
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped.*frame_proj"):
        load_checkpoint(ASE(bigger), path)
    deeper = {**tiny_config, "audio_encoder_args": {"htsat": {"embed_dim": 8, "depths": [1, 1, 2, 2],
                                                              "num_heads": [1, 1, 2, 2]}}}
    with pytest.raises(CheckpointMismatchError, match=r"missing: .*layers\.2\.blocks\.1"):
        load_checkpoint(ASE(deeper), path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this checkpoint ran code",))


def test_checkpoint_that_would_execute_code_is_refused(tiny_config, tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": _RunsCode()}, handle)
    torch.save({"model": {"x": _RunsCode()}}, tmp_path / "evil_torch.pt")
    model = ASE(tiny_config)
    for candidate in (path, tmp_path / "evil_torch.pt"):
        with pytest.raises(CheckpointError, match="never done here|not a readable"):
            load_checkpoint(model, candidate)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(model, tmp_path / "absent.pt")


def test_missing_htsat_pretrained_checkpoint_says_where_to_put_it(tiny_config, tmp_path):
    config = {**tiny_config, "audio_encoder_args": {**tiny_config["audio_encoder_args"], "pretrained": True,
                                                    "pretrained_path": str(tmp_path / "HTSAT.ckpt")}}
    with pytest.raises(FileNotFoundError, match="HTSAT.ckpt"):
        ASE(config)


def test_htsat_pretrained_initialisation(tiny_config, tmp_path):
    torch.manual_seed(1)
    source = ASE(tiny_config).audio_encoder.audio_enc
    lightning = {"state_dict": {f"sed_model.{key}": value for key, value in source.state_dict().items()}}
    lightning["state_dict"]["sed_model.spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(3)
    torch.save(lightning, tmp_path / "HTSAT.ckpt")
    config = {**tiny_config, "audio_encoder_args": {**tiny_config["audio_encoder_args"], "pretrained": True,
                                                    "pretrained_path": str(tmp_path / "HTSAT.ckpt")}}
    torch.manual_seed(2)
    initialised = ASE(config).audio_encoder.audio_enc
    assert torch.equal(initialised.patch_embed.proj.weight, source.patch_embed.proj.weight)


def test_yaml_with_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("embed_size: 1024\noptim_args:\n  lr: 1.0e-4\n  learning_rat: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optim_args\.learning_rat"):
        load_config(path)
    path.write_text("embed_size: big\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'embed_size' must be int"):
        load_config(path)
