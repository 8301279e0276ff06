"""oneDNN linear layers: the same numbers as F.linear in CPU inference, untouched elsewhere."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

import models.onednn_linear as onednn
from models.ase_model import ASE
from models.onednn_linear import OneDNNLinear, linear, set_onednn_linear, uses_onednn

# On x86_64 builds with oneDNN the kernel is expected: there these tests run (and fail if it is gone).
requires_onednn = pytest.mark.skipif(not onednn.onednn_linear_expected(),
                                     reason="not an x86_64 torch build with oneDNN")


@pytest.mark.skipif(not onednn.onednn_linear_expected(), reason="not an x86_64 torch build with oneDNN")
def test_private_onednn_op_is_present_and_right_on_x86_builds():
    """`torch.ops.mkldnn._linear_pointwise` is private: a rename or change must fail here, not make
    CPU inference silently slower (F.linear fallback) or wrong."""
    assert hasattr(torch.ops.mkldnn, "_linear_pointwise"), "torch.ops.mkldnn._linear_pointwise is gone"
    onednn.onednn_linear_available.cache_clear()
    assert onednn.onednn_linear_available(), "torch.ops.mkldnn._linear_pointwise fails its probe"
    torch.manual_seed(0)
    x, weight, bias = torch.randn(3, 64, 96), torch.randn(384, 96) * 0.1, torch.randn(384)
    with torch.no_grad():
        for gelu, attr, algorithm in ((False, "none", ""), (True, "gelu", "none")):
            for layer_bias in (bias, None):
                out = torch.ops.mkldnn._linear_pointwise(x, weight, layer_bias, attr, [], algorithm)
                expected = F.linear(x, weight, layer_bias)
                torch.testing.assert_close(out, F.gelu(expected) if gelu else expected, rtol=1e-5, atol=1e-5)


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


def test_switch_shares_parameters_and_goes_both_ways():
    model = nn.Sequential(Mlp(8, 32), nn.Linear(8, 2))
    keys, parameters = list(model.state_dict()), list(model.parameters())
    assert set_onednn_linear(model, True) == 3  # the Mlp's fc1 and fc2, the last Linear
    mlp = model[0]
    assert type(mlp) is Mlp and type(mlp.fc1) is OneDNNLinear and mlp.fc1.gelu and type(mlp.act) is nn.Identity
    assert type(mlp.fc2) is OneDNNLinear and not mlp.fc2.gelu and type(model[1]) is OneDNNLinear
    assert list(model.state_dict()) == keys
    assert all(new is old for new, old in zip(model.parameters(), parameters, strict=True))
    assert set_onednn_linear(model, True) == 0  # already on
    assert set_onednn_linear(model, False) == 3
    assert type(mlp.fc1) is nn.Linear and type(mlp.act) is nn.GELU and mlp.act.approximate == "none"
    assert type(mlp.fc2) is nn.Linear and type(model[1]) is nn.Linear
    assert all(new is old for new, old in zip(model.parameters(), parameters, strict=True))


def test_shared_layers_stay_shared_and_other_activations_are_not_fused():
    shared, shared_mlp = nn.Linear(4, 4), Mlp(4, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared, Mlp(4, 8, act_layer=nn.ReLU), Mlp(4, 8, act_layer=nn.GELU),
                          shared_mlp, shared_mlp)
    model[4].act = nn.GELU(approximate="tanh")
    assert set_onednn_linear(model, True) == 7
    assert model[0] is model[2] and type(model[0]) is OneDNNLinear
    assert not model[3].fc1.gelu and type(model[3].act) is nn.ReLU
    assert not model[4].fc1.gelu and model[4].act.approximate == "tanh"
    assert shared_mlp.fc1.gelu and type(shared_mlp.act) is nn.Identity
    assert set_onednn_linear(model, False) == 7
    assert type(model[0]) is nn.Linear and model[0] is model[2]
    assert type(shared_mlp.fc1) is nn.Linear and type(shared_mlp.act) is nn.GELU


@pytest.mark.parametrize("act_in_training", [True, False])
def test_fused_gelu_mlp_equals_timm_mlp_in_training_and_inference(act_in_training):
    """fc1 with the GELU fused and act = Identity equals timm's Mlp (fc1, act, drop1, norm, fc2, drop2)
    in training (values and gradients) and in inference."""
    torch.manual_seed(0)
    plain = Mlp(16, 64).train(act_in_training)
    fused = Mlp(16, 64).train(act_in_training)
    fused.load_state_dict(plain.state_dict())
    set_onednn_linear(fused, True)
    x = torch.randn(2, 10, 16, requires_grad=True)
    x_fused = x.detach().clone().requires_grad_()
    expected, actual = plain(x), fused(x_fused)
    torch.testing.assert_close(actual, expected)
    expected.square().sum().backward()
    actual.square().sum().backward()
    torch.testing.assert_close(x_fused.grad, x.grad)
    torch.testing.assert_close(fused.fc1.weight.grad, plain.fc1.weight.grad)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-6)


@requires_onednn
def test_audio_encoder_gives_the_same_frames_with_and_without(tiny_config, monkeypatch):
    torch.manual_seed(0)
    model = ASE(tiny_config).eval()
    htsat = model.audio_encoder.audio_enc
    assert any(isinstance(module, OneDNNLinear) and module.gelu for module in htsat.modules()), "on by default"
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
    assert not any(isinstance(module, OneDNNLinear) for module in off.modules())
    monkeypatch.setattr(onednn, "onednn_linear_available", lambda: False)
    x, weight = torch.randn(3, 8), torch.randn(4, 8)
    with torch.no_grad():
        assert not uses_onednn(x, weight)
        torch.testing.assert_close(linear(x, weight, gelu=True), F.gelu(F.linear(x, weight)))
