"""Model parts that only the golden fixtures covered so far: SpecAugment (and where HTS-AT applies it),
the codebook and mean aggregations with their masks, and HTS-AT's spectrogram fold / grid unfold.

Each check compares with an index computation or a reference written here, independent of the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.audio_frontend import SpecAugment, slaney_mel_basis
from models.codebook import codebook_aggregate, mean_aggregate
from models.htsat import HTSAT, fold_spectrogram_to_image, unfold_grid_to_frames

AUDIO_ARGS = {"sr": 32000, "n_fft": 1024, "hop_length": 320, "f_min": 50, "f_max": 14000, "n_mels": 64}


# ------------------------------------------------------------------------------------------ SpecAugment
def zeroed_stripes(spec: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that `out` is `spec` with whole time rows and whole mel columns set to zero, per example;
    return the boolean [B, T] and [B, F] masks of those rows and columns. `spec` has no zeros."""
    assert out.shape == spec.shape
    zero = out[:, 0] == 0                                        # [B, T, F]
    rows = zero.all(dim=2)                                       # [B, T]
    cols = zero.all(dim=1)                                       # [B, F]
    assert torch.equal(zero, rows[:, :, None] | cols[:, None, :]), "zeros outside whole stripes"
    assert torch.equal(out[~zero.unsqueeze(1)], spec[~zero.unsqueeze(1)]), "kept values changed"
    return rows, cols


def runs(mask_row: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D boolean tensor."""
    found, start = [], None
    for position, value in enumerate(mask_row.tolist() + [False]):
        if value and start is None:
            start = position
        elif not value and start is not None:
            found.append((start, position - start))
            start = None
    return found


@pytest.mark.parametrize(("sample_rate", "n_fft", "n_mels", "f_min", "f_max"), [
    (32000, 1024, 64, 50, 14000),      # the paper's front end
    (16000, 512, 40, 0, 8000),
    (44100, 2048, 128, 20, 20000),
    (48000, 960, 64, 50, 14000),
])
def test_slaney_mel_basis_is_librosas_bit_for_bit(sample_rate, n_fft, n_mels, f_min, f_max):
    """The front end computes its mel basis itself (no librosa import at start-up); it must stay
    librosa.filters.mel's, whose basis the reference's log-mel uses."""
    librosa = pytest.importorskip("librosa")
    ours = slaney_mel_basis(sample_rate, n_fft, n_mels, f_min, f_max)
    theirs = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_spec_augment_zeroes_whole_time_and_mel_stripes_within_the_default_limits():
    augment = SpecAugment().train()  # the reference's: 2 time stripes < 64 wide, 2 mel stripes < 8 wide
    assert (augment.time_drop_width, augment.time_stripes, augment.freq_drop_width, augment.freq_stripes) == (
        64, 2, 8, 2)
    spec = torch.rand(8, 1, 300, 64) + 0.5
    seen_time = seen_freq = 0
    for seed in range(5):
        torch.manual_seed(seed)
        rows, cols = zeroed_stripes(spec, augment(spec))
        seen_time += int(rows.any(dim=1).sum())
        seen_freq += int(cols.any(dim=1).sum())
        # two stripes each narrower than the limit: at most 2 * (width - 1) zeroed rows / columns
        assert rows.sum(dim=1).max() <= 2 * 63 and cols.sum(dim=1).max() <= 2 * 7
        assert len(torch.unique(rows, dim=0)) > 1  # each example draws its own stripes
    assert seen_time > 0 and seen_freq > 0


@pytest.mark.parametrize("axis", ["time", "freq"])
def test_spec_augment_stripe_widths_are_uniform_below_drop_width_and_stay_inside(axis):
    width_limit, length = 5, 24
    if axis == "time":
        augment, spec = SpecAugment(width_limit, 1, 1, 1), torch.rand(3000, 1, length, 16) + 0.5
    else:
        augment, spec = SpecAugment(1, 1, width_limit, 1), torch.rand(3000, 1, 16, length) + 0.5
    torch.manual_seed(0)
    rows, cols = zeroed_stripes(spec, augment.train()(spec))
    stripes, others = (rows, cols) if axis == "time" else (cols, rows)
    assert not others.any()  # drop width 1 on the other axis: widths in [0, 1) are all 0
    widths, starts = [], []
    for row in stripes:
        found = runs(row)
        assert len(found) <= 1  # one stripe per example
        width = found[0][1] if found else 0
        widths.append(width)
        if found:
            starts.append(found[0][0])
            assert found[0][0] + width <= length
    counts = np.bincount(widths, minlength=width_limit)
    assert len(counts) == width_limit  # never width_limit or wider
    assert counts.min() > 0.15 * len(widths)  # every width 0 .. limit - 1 about equally often (1/5 each)
    assert min(starts) == 0 and max(starts) >= length - width_limit  # starts spread over the axis


def test_spec_augment_is_the_identity_in_eval_mode():
    spec = torch.rand(4, 1, 200, 64) + 0.5
    torch.manual_seed(0)
    out = SpecAugment().eval()(spec)
    assert torch.equal(out, spec)


def tiny_htsat(spec_augmentation: bool) -> HTSAT:
    return HTSAT(AUDIO_ARGS, embed_dim=8, depths=[1, 1, 1, 2], num_heads=[1, 1, 2, 2], drop_path_rate=0.0,
                 spec_augmentation=spec_augmentation, onednn_linear=False)


def test_htsat_applies_spec_augment_after_bn0_in_training_only():
    torch.manual_seed(0)
    augmented, plain = tiny_htsat(True), tiny_htsat(False)
    plain.load_state_dict(augmented.state_dict())
    waveform = torch.randn(3, 32000)
    with torch.no_grad():
        for model in (augmented, plain):
            model.eval()
        torch.testing.assert_close(augmented(waveform)[1], plain(waveform)[1], rtol=0, atol=0)

        seen = []
        augmented.spec_augmenter.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
        outputs = []
        for model in (augmented, plain):
            model.train()
            torch.manual_seed(1)
            outputs.append(model(waveform)[1])
        assert not torch.allclose(outputs[0], outputs[1])  # the stripes change the frames
        # the augmenter saw the batch-normalised log-mel (training bn0: each mel bin ~ zero mean, unit std)
        per_mel = seen[0].transpose(0, 3).flatten(1)
        assert per_mel.mean(dim=1).abs().max() < 1e-3
        assert ((per_mel.std(dim=1) - 1).abs() < 0.05).all()
        assert len(seen) == 1


# ------------------------------------------------------------------------------------------ codebook
def sparsemax_reference(z: np.ndarray) -> np.ndarray:
    """Euclidean projection of a vector onto the probability simplex (tau found by bisection)."""
    low, high = z.max() - 1.0, z.max()
    for _ in range(200):
        tau = (low + high) / 2
        if np.clip(z - tau, 0, None).sum() > 1:
            low = tau
        else:
            high = tau
    return np.clip(z - (low + high) / 2, 0, None)


def codebook_reference(features: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor | None,
                       temperature: float) -> np.ndarray:
    """The reference's msc in float64 loops: masked logits count as 0 in the max over positions."""
    feats, codes = features.double().numpy(), codebook.double().numpy()
    batch, length, dim = feats.shape
    out = np.zeros((batch, dim))
    for b in range(batch):
        pooled = np.full(codes.shape[0], -np.inf)
        for position in range(length):
            keep = 1.0 if mask is None else float(mask[b, position])
            logits = keep * (codes @ feats[b, position]) / math.sqrt(dim)
            pooled = np.maximum(pooled, logits / temperature)
        out[b] = sparsemax_reference(pooled) @ codes
    return out


@pytest.fixture
def code_inputs():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 7, 16, generator=generator)
    codebook = torch.randn(10, 16, generator=generator)
    mask = torch.ones(4, 7)
    mask[0, 5:] = 0
    mask[1, 0] = 0
    mask[2, 2:4] = 0
    mask[3, 1:] = 0  # one real position: codes with a negative logit there pool to 0 (the masked logits)
    return features, codebook, mask


@pytest.mark.parametrize("temperature, scale, regime", [(0.3, 1.0, "sparse"), (1000.0, 2000.0, "sparse"),
                                                       (1000.0, 1.0, "dense")])
def test_codebook_aggregate_equals_a_reference_max_pool_sparsemax(code_inputs, temperature, scale, regime):
    features, codebook, mask = code_inputs
    features = features * scale  # the paper's temperature needs large logits to be sparse
    for this_mask in (mask, None):
        out = codebook_aggregate(features, codebook, this_mask, temperature=temperature)
        assert out.shape == (4, 16) and out.dtype == torch.float32
        expected = codebook_reference(features, codebook, this_mask, temperature)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
    # the regime is as named: sparse (a few codes, not one, not all) or dense (every code weighted, so that
    # a masked position's logit 0 matters in the max over positions)
    pooled = (features.double().numpy() @ codebook.double().numpy().T / 4.0).max(axis=1) / temperature
    support = np.array([(sparsemax_reference(row) > 0).sum() for row in pooled])
    if regime == "sparse":
        assert (support > 1).any() and (support < 10).all()
    else:
        assert (support == 10).all()


def test_codebook_aggregate_ignores_the_features_of_masked_positions(code_inputs):
    features, codebook, mask = code_inputs
    noisy = features.clone()
    noisy[mask == 0] = 1e4 * torch.randn(int((mask == 0).sum()), 16)
    torch.testing.assert_close(codebook_aggregate(noisy, codebook, mask, temperature=0.3),
                               codebook_aggregate(features, codebook, mask, temperature=0.3), rtol=0, atol=0)
    # without the mask, the same change does move the result
    assert not torch.allclose(codebook_aggregate(noisy, codebook, temperature=0.3),
                              codebook_aggregate(features, codebook, temperature=0.3))


@pytest.mark.parametrize("length", [1, 7])
@pytest.mark.parametrize("temperature", [0.3, 1000.0])
def test_codebook_aggregate_with_an_all_ones_mask_equals_no_mask(code_inputs, length, temperature):
    features, codebook, _ = code_inputs
    features = features[:, :length]  # one position: about half the pooled logits are negative
    torch.testing.assert_close(codebook_aggregate(features, codebook, torch.ones(4, length), temperature),
                               codebook_aggregate(features, codebook, None, temperature), rtol=0, atol=0)


def test_codebook_aggregate_runs_in_float32_under_low_precision_input(code_inputs):
    features, codebook, mask = code_inputs
    out = codebook_aggregate(features.bfloat16(), codebook.bfloat16(), mask, temperature=0.3)
    assert out.dtype == torch.float32
    expected = codebook_reference(features.bfloat16().float(), codebook.bfloat16().float(), mask, 0.3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_mean_aggregate_is_the_mean_over_real_positions(code_inputs):
    features, _, mask = code_inputs
    out = mean_aggregate(features, mask)
    assert out.shape == (4, 16)
    for b in range(4):
        real = [features[b, position] for position in range(7) if mask[b, position] == 1]
        torch.testing.assert_close(out[b], sum(real) / len(real))
    noisy = features.clone()
    noisy[mask == 0] = 1e4 * torch.randn(int((mask == 0).sum()), 16)
    torch.testing.assert_close(mean_aggregate(noisy, mask), out)
    torch.testing.assert_close(mean_aggregate(features), features.sum(dim=1) / 7)
    torch.testing.assert_close(mean_aggregate(features, torch.ones(4, 7)), mean_aggregate(features))


def test_mean_aggregate_of_a_fully_masked_row_is_zero_not_nan(code_inputs):
    features, _, mask = code_inputs
    mask = mask.clone()
    mask[3] = 0
    out = mean_aggregate(features, mask)
    assert torch.equal(out[3], torch.zeros(16)) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- fold / unfold (HTS-AT)
def index_log_mel(batch: int, frames: int, mels: int) -> torch.Tensor:
    """[B, 1, T, M] with value b * 1e7 + frame * 1000 + mel."""
    b = torch.arange(batch, dtype=torch.float64)[:, None, None, None]
    t = torch.arange(frames, dtype=torch.float64)[None, None, :, None]
    m = torch.arange(mels, dtype=torch.float64)[None, None, None, :]
    return b * 1e7 + t * 1000 + m


@pytest.mark.parametrize("spec_size, mels", [(256, 64), (12, 4), (8, 8)])
def test_fold_puts_chunk_times_m_plus_mel_in_rows_and_frame_in_chunk_in_columns(spec_size, mels):
    chunks = spec_size // mels
    log_mel = index_log_mel(2, spec_size * chunks, mels)
    image = fold_spectrogram_to_image(log_mel, spec_size)
    assert image.shape == (2, 1, spec_size, spec_size)
    row = torch.arange(spec_size)[:, None]
    col = torch.arange(spec_size)[None, :]
    chunk, mel = row // mels, row % mels
    frame = chunk * spec_size + col
    for b in range(2):
        expected = (b * 1e7 + frame * 1000 + mel).to(torch.float64)
        assert torch.equal(image[b, 0], expected)


def bicubic_stretch_reference(frames: np.ndarray, target: int) -> np.ndarray:
    """[T, M] -> [target, M]: Keys cubic convolution (a = -0.75, torch's) along time, align_corners, with
    the edge frames repeated beyond the ends."""
    a = -0.75

    def kernel(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a if x < 2 else 0.0

    length = frames.shape[0]
    out = np.zeros((target, frames.shape[1]))
    for j in range(target):
        source = j * (length - 1) / (target - 1)
        base = math.floor(source)
        for k in range(base - 1, base + 3):
            out[j] += kernel(source - k) * frames[min(max(k, 0), length - 1)]
    return out


def test_fold_stretches_short_input_to_the_full_frame_count():
    spec_size, mels = 256, 64
    target = spec_size * (spec_size // mels)            # 1024 frames; 1023 = 33 * 31
    generator = torch.Generator().manual_seed(0)
    log_mel = torch.randn(2, 1, 32, mels, generator=generator, dtype=torch.float64)
    image = fold_spectrogram_to_image(log_mel, spec_size)
    assert image.shape == (2, 1, spec_size, spec_size)
    # back to [B, T, M] by the documented layout (row = chunk * M + mel, column = frame in chunk)
    frames = image[:, 0].reshape(2, 4, mels, spec_size).permute(0, 1, 3, 2).reshape(2, target, mels)
    # align_corners: target frame 33 * i is source frame i exactly (first and last included)
    torch.testing.assert_close(frames[:, ::33], log_mel[:, 0])
    # bicubic in time only (each mel bin on its own), as an independent cubic convolution computes it
    for b in range(2):
        expected = bicubic_stretch_reference(log_mel[b, 0].numpy(), target)
        np.testing.assert_allclose(frames[b].numpy(), expected, rtol=0, atol=1e-5)


def test_fold_rejects_input_longer_than_the_encoder_takes():
    with pytest.raises(ValueError, match="1024"):
        fold_spectrogram_to_image(torch.zeros(1, 1, 1025, 64), 256)
    fold_spectrogram_to_image(torch.zeros(1, 1, 1024, 64), 256)  # the longest accepted


@pytest.mark.parametrize("rows, cols, chunks", [(8, 8, 4), (6, 5, 3), (4, 3, 1)])
def test_unfold_grid_puts_rows_and_columns_back_in_time_order(rows, cols, chunks):
    channels = 3
    r = torch.arange(rows, dtype=torch.float64)[:, None, None]
    w = torch.arange(cols, dtype=torch.float64)[None, :, None]
    c = torch.arange(channels, dtype=torch.float64)[None, None, :]
    grid = torch.stack([k * 1e6 + r * 1000 + w * 10 + c for k in range(2)])       # [B, R, W, C]
    out = unfold_grid_to_frames(grid, chunks)
    groups = rows // chunks
    assert out.shape == (2, channels, groups, chunks * cols)
    for k in range(2):
        for channel in range(channels):
            for group in range(groups):
                for frame in range(chunks * cols):
                    chunk, column = divmod(frame, cols)
                    expected = k * 1e6 + (chunk * groups + group) * 1000 + column * 10 + channel
                    assert out[k, channel, group, frame] == expected


def test_unfold_inverts_fold_at_patch_size_one():
    log_mel = index_log_mel(2, 36, 4)                        # spec_size 12: 3 chunks of 12 frames
    image = fold_spectrogram_to_image(log_mel, 12)           # [B, 1, 12, 12]
    frames = unfold_grid_to_frames(image.permute(0, 2, 3, 1), chunks=3)   # [B, 1, M, T]
    assert torch.equal(frames, log_mel.transpose(2, 3))
