"""oneDNN linear layers: the same numbers as F.linear in CPU inference, untouched elsewhere."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

import models.onednn_linear as onednn
from models.ase_model import ASE
from models.onednn_linear import OneDNNLinear, OneDNNMlp, linear, set_onednn_linear, uses_onednn

requires_onednn = pytest.mark.skipif(not onednn.onednn_linear_available(), reason="this torch build has no oneDNN")


@requires_onednn
@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_equals_f_linear_in_inference(gelu, with_bias):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 5, 7, 96), torch.randn(384, 96) * 0.1, torch.randn(384)
    bias = bias if with_bias else None
    expected = F.linear(x, weight, bias)
    expected = F.gelu(expected) if gelu else expected
    with torch.no_grad():
        assert uses_onednn(x, weight)
        actual = linear(x, weight, bias, gelu=gelu)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_training_autocast_and_other_dtypes_keep_f_linear():
    x, weight = torch.randn(3, 8), torch.randn(4, 8)
    assert not uses_onednn(x, weight)  # autograd on
    with torch.no_grad():
        assert not uses_onednn(x.double(), weight.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not uses_onednn(x, weight)
    layer = OneDNNLinear(8, 4)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_switch_keeps_parameters_and_goes_both_ways():
    model = nn.Sequential(Mlp(8, 32), nn.Linear(8, 2))
    keys = list(model.state_dict())
    assert set_onednn_linear(model, True) == 4  # the Mlp, its fc1 and fc2, the last Linear
    assert type(model[0]) is OneDNNMlp and type(model[0].fc1) is OneDNNLinear and type(model[1]) is OneDNNLinear
    assert list(model.state_dict()) == keys
    assert set_onednn_linear(model, False) == 4
    assert type(model[0]) is Mlp and type(model[1]) is nn.Linear


@requires_onednn
def test_audio_encoder_gives_the_same_frames_with_and_without(tiny_config, monkeypatch):
    torch.manual_seed(0)
    model = ASE(tiny_config).eval()
    htsat = model.audio_encoder.audio_enc
    assert any(isinstance(module, OneDNNMlp) for module in htsat.modules()), "on by default"
    audio = torch.randn(2, 32000 * 3) * 0.1
    calls = []
    original = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(onednn.torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        _, with_onednn = model.encode_audio(audio)
        assert calls, "the oneDNN kernel was not used"
        set_onednn_linear(htsat, False)
        calls.clear()
        _, plain = model.encode_audio(audio)
        assert not calls
    torch.testing.assert_close(with_onednn, plain, rtol=1e-5, atol=1e-6)


def test_config_switch_and_fallback_without_onednn(tiny_config, monkeypatch):
    off = ASE({**tiny_config, "audio_encoder_args": {**tiny_config["audio_encoder_args"], "onednn_linear": False}})
    assert not any(isinstance(module, (OneDNNLinear, OneDNNMlp)) for module in off.modules())
    monkeypatch.setattr(onednn, "onednn_linear_available", lambda: False)
    x, weight = torch.randn(3, 8), torch.randn(4, 8)
    with torch.no_grad():
        assert not uses_onednn(x, weight)
        torch.testing.assert_close(linear(x, weight, gelu=True), F.gelu(F.linear(x, weight)))
