"""HTS-AT's CPU inference speed paths (batched window attention, oneDNN linear layers): the same numbers
as timm's and torch's plain modules, the same state_dict, and real modules rather than class swaps."""

from __future__ import annotations

import pytest
import torch
from timm.models.swin_transformer import SwinTransformerBlock, WindowAttention
from torch import nn

import models.onednn_linear as onednn
from models.htsat import HTSAT, BatchedWindowAttention, relative_position_bias
from models.onednn_linear import OneDNNLinear, set_onednn_linear
from models.speed import set_fused_attention

AUDIO_ARGS = {"sr": 32000, "n_fft": 1024, "hop_length": 320, "f_min": 50, "f_max": 14000, "n_mels": 64}
WINDOW = 8


def tiny_htsat(**switches) -> HTSAT:
    """Depth 2 in the first stage, so that its second block has shifted (masked) windows."""
    return HTSAT(audio_args=AUDIO_ARGS, embed_dim=8, depths=[2, 1, 1, 2], num_heads=[1, 1, 2, 2], **switches)


def spy(monkeypatch, owner, name: str) -> list[int]:
    """Count the calls of `owner.name` (replaced by a counting wrapper for the test)."""
    calls: list[int] = []
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    return calls


def timm_attention_and_mask(shifted: bool) -> tuple[WindowAttention, torch.Tensor | None]:
    """A timm WindowAttention (96 channels, 4 heads of 24, 8 x 8 windows) with a large random relative
    position table, and the shift mask of a 16 x 16 grid ([4, 64, 64], 0 / -100) or None."""
    torch.manual_seed(0)
    attention = WindowAttention(96, num_heads=4, window_size=WINDOW, qkv_bias=True).eval()
    with torch.no_grad():
        attention.relative_position_bias_table.normal_()
    block = SwinTransformerBlock(96, input_resolution=(16, 16), num_heads=4, window_size=WINDOW,
                                 shift_size=WINDOW // 2 if shifted else 0)
    return attention, block.attn_mask


@pytest.mark.parametrize("timm_fused", [True, False], ids=["timm_sdpa", "timm_explicit"])
@pytest.mark.parametrize("shifted", [False, True], ids=["unmasked", "masked"])
def test_batched_attention_equals_timm_window_attention(shifted, timm_fused, monkeypatch):
    """Catches a wrong relative position bias (our `relative_position_bias`), a wrong mask broadcast
    over windows and batch, or a wrong head layout in the batched path."""
    reference, mask = timm_attention_and_mask(shifted)
    assert (mask is not None) == shifted
    x = torch.randn(4 * 3, WINDOW * WINDOW, 96)  # 4 windows of a 16 x 16 grid, batch 3
    reference.fused_attn = timm_fused
    with torch.no_grad():
        expected = reference(x, mask)
    batched = BatchedWindowAttention.sharing(reference)
    batched.fused_attn = True
    baddbmm_calls = spy(monkeypatch, torch, "baddbmm")
    sdpa_calls = spy(monkeypatch, torch.nn.functional, "scaled_dot_product_attention")
    with torch.no_grad():
        actual = batched(x, mask)
    assert baddbmm_calls and not sdpa_calls, "CPU float32 inference should take the batched path"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_relative_position_bias_layout():
    """bias[h, i, j] = table[index[i, j], h], from the module's own table and index."""
    reference, _ = timm_attention_and_mask(shifted=False)
    table, index = reference.relative_position_bias_table, reference.relative_position_index
    bias = relative_position_bias(table, index)
    assert bias.shape == (4, WINDOW * WINDOW, WINDOW * WINDOW)
    torch.testing.assert_close(bias[2, 5, 17], table[index[5, 17], 2])
    torch.testing.assert_close(bias[:, 9, 9], table[(WINDOW - 1) * (2 * WINDOW - 1) + WINDOW - 1])  # offset 0


def test_batched_attention_uses_timm_forward_outside_cpu_float32_inference(monkeypatch):
    reference, mask = timm_attention_and_mask(shifted=True)
    reference.fused_attn = True
    batched = BatchedWindowAttention.sharing(reference)
    x = torch.randn(4, WINDOW * WINDOW, 96)
    baddbmm_calls = spy(monkeypatch, torch, "baddbmm")
    torch.testing.assert_close(batched(x, mask), reference(x, mask))  # autograd on
    with torch.no_grad():
        torch.testing.assert_close(batched.double()(x.double(), mask.double()),
                                   reference.double()(x.double(), mask.double()))
        batched.float(), reference.float()
        torch.testing.assert_close(batched.train()(x, mask), reference.train()(x, mask))  # training mode
        batched.eval().fused_attn = reference.eval().fused_attn = False
        torch.testing.assert_close(batched(x, mask), reference(x, mask))  # explicit path
    assert not baddbmm_calls


def test_sharing_keeps_parameters_buffers_and_draws_no_random_numbers():
    reference, _ = timm_attention_and_mask(shifted=False)
    state = torch.random.get_rng_state()
    batched = BatchedWindowAttention.sharing(reference)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert type(batched) is BatchedWindowAttention and type(reference) is WindowAttention
    assert list(batched.state_dict()) == list(reference.state_dict())
    assert all(new is old for new, old in zip(batched.parameters(), reference.parameters(), strict=True))
    assert batched.relative_position_index is reference.relative_position_index
    assert batched.scale == reference.scale and batched.window_size == reference.window_size


def test_htsat_switches_on_and_off_give_the_same_frames(monkeypatch):
    """Both speed paths together against the plain modules (explicit attention, F.linear), on the same
    weights; then the switches turned off and on again on the built model."""
    torch.manual_seed(0)
    fast = tiny_htsat().eval()
    plain = tiny_htsat(fused_attention=False, onednn_linear=False).eval()
    plain.load_state_dict(fast.state_dict())
    waveform = torch.randn(2, 32000 * 10) * 0.1
    baddbmm_calls = spy(monkeypatch, torch, "baddbmm")
    onednn_calls = spy(monkeypatch, onednn.torch.ops.mkldnn, "_linear_pointwise") if onednn.onednn_linear_expected() \
        else []
    with torch.no_grad():
        _, fast_frames = fast(waveform)
        assert baddbmm_calls, "the batched attention was not used"
        assert onednn_calls or not onednn.onednn_linear_expected(), "the oneDNN kernel was not used"
        baddbmm_calls.clear()
        onednn_calls.clear()
        _, plain_frames = plain(waveform)
        assert not baddbmm_calls and not onednn_calls
        assert fast_frames.shape == (2, 32, 64)
        torch.testing.assert_close(fast_frames, plain_frames, rtol=1e-5, atol=1e-5)
        set_fused_attention(fast, False)
        set_onednn_linear(fast, False)
        torch.testing.assert_close(fast(waveform)[1], plain_frames, rtol=1e-5, atol=1e-5)
        set_fused_attention(fast, True)
        set_onednn_linear(fast, True)
        torch.testing.assert_close(fast(waveform)[1], fast_frames, rtol=1e-6, atol=1e-6)


def test_htsat_state_dict_and_initialisation_do_not_depend_on_the_switches():
    """The released checkpoint loads by name: the keys (and, seeded, the initial values) must not
    depend on the switches, nor change when they are turned off and on."""
    torch.manual_seed(0)
    fast = tiny_htsat()
    torch.manual_seed(0)
    plain = tiny_htsat(fused_attention=False, onednn_linear=False)
    fast_state, plain_state = fast.state_dict(), plain.state_dict()
    assert list(fast_state) == list(plain_state)
    assert all(torch.equal(fast_state[key], plain_state[key]) for key in fast_state)
    parameters = list(fast.parameters())
    set_onednn_linear(fast, False)
    assert list(fast.state_dict()) == list(fast_state)
    set_onednn_linear(fast, True)
    assert list(fast.state_dict()) == list(fast_state)
    assert all(new is old for new, old in zip(fast.parameters(), parameters, strict=True))


def test_htsat_is_built_from_real_modules():
    """Each block holds a BatchedWindowAttention and (switch on) OneDNNLinear layers with the GELU in
    fc1; switched off, plain nn.Linear and nn.GELU."""
    fast, plain = tiny_htsat(), tiny_htsat(onednn_linear=False)
    for stage in fast.layers:
        for block in stage.blocks:
            assert type(block.attn) is BatchedWindowAttention and block.attn.fused_attn
            assert type(block.attn.qkv) is OneDNNLinear and type(block.attn.proj) is OneDNNLinear
            assert type(block.mlp.fc1) is OneDNNLinear and block.mlp.fc1.gelu and type(block.mlp.act) is nn.Identity
            assert type(block.mlp.fc2) is OneDNNLinear and not block.mlp.fc2.gelu
    for stage in plain.layers:
        for block in stage.blocks:
            assert type(block.mlp.fc1) is nn.Linear and type(block.mlp.act) is nn.GELU
            assert not any(isinstance(module, OneDNNLinear) for module in block.modules())
