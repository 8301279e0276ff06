"""Audio of any length (models.windowing), batched file and text embedding (tools.eval.embedding), skipped
files, and building a model from a checkpoint (models.factory)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from models.ase_model import ASE
from models.checkpoint import CheckpointError, CheckpointMismatchError, reference_state_dict
from models.factory import model_from_checkpoint
from models.runtime import resolve_device
from models.windowing import crop_start, encode_audio_windows, prepare_waveform, shorten_waveform
from tools.eval.embedding import check_padding_spans, embed_audio_files, embed_texts, embed_waveform
from tools.tiny_model import tiny_config_dict

SR = 32000


@pytest.fixture(scope="module")
def model(tiny_text_dir) -> ASE:
    torch.manual_seed(0)
    return ASE(tiny_config_dict(tiny_text_dir)).eval()


def noise(seconds: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(round(seconds * SR), generator=generator)


def write_wav(path: Path, samples: np.ndarray | torch.Tensor) -> Path:
    sf.write(path, np.asarray(samples, dtype=np.float32), SR, subtype="FLOAT")
    return path


# ----------------------------------------------------------------------------------------------------
# encode_audio_windows
# ----------------------------------------------------------------------------------------------------
def test_long_audio_is_windowed_and_frames_cover_it(model):
    waveform = noise(25.0)
    frames, clip = encode_audio_windows(model, waveform)
    assert frames.shape == (math.ceil(25 / (10 / 32)), 32) == (80, 32)
    first_window, _ = encode_audio_windows(model, waveform[: 10 * SR])
    torch.testing.assert_close(frames[:32], first_window, atol=1e-5, rtol=1e-5)
    second_window, _ = encode_audio_windows(model, waveform[10 * SR: 20 * SR])
    torch.testing.assert_close(frames[32:64], second_window, atol=1e-5, rtol=1e-5)
    tail = waveform[20 * SR:]                                    # 5 s, tiled to 10 s; 16 frames kept
    tiled_tail, _ = encode_audio_windows(model, torch.cat([tail, tail]))
    torch.testing.assert_close(frames[64:], tiled_tail[:16], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        expected_clip = model.msc(frames[None], model.codebook)[0]
    torch.testing.assert_close(clip, expected_clip)


def test_windowing_is_deterministic(model):
    waveform = noise(13.3, seed=1)
    first = encode_audio_windows(model, waveform)
    second = encode_audio_windows(model, waveform, batch_size=1)
    assert first[0].shape[0] == math.ceil(13.3 * 32 / 10)
    torch.testing.assert_close(first[0], second[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(first[1], second[1], atol=1e-5, rtol=1e-5)


def test_short_audio_is_one_clip_and_one_hop_over_10s_is_cut(model):
    frames, _ = encode_audio_windows(model, noise(4.0))
    assert frames.shape[0] == 32
    ten = noise(10.0, seed=2)
    over = torch.cat([ten, torch.zeros(100)])
    torch.testing.assert_close(encode_audio_windows(model, over)[0], encode_audio_windows(model, ten)[0])


def test_a_last_window_of_less_than_one_frame_is_not_encoded(model):
    """10.2 s: the 0.2 s after the first window is less than one frame (10 / 32 s): 32 frames, not 33."""
    waveform = noise(10.2, seed=6)
    frames, clip = encode_audio_windows(model, waveform)
    first_window = encode_audio_windows(model, waveform[: 10 * SR])
    assert frames.shape[0] == 32
    torch.testing.assert_close(frames, first_window[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clip, first_window[1], atol=1e-5, rtol=1e-5)
    assert encode_audio_windows(model, noise(10.5, seed=6))[0].shape[0] == math.ceil(10.5 * 32 / 10) == 34
    assert encode_audio_windows(model, noise(20.2, seed=6))[0].shape[0] == 64


def test_encode_audio_windows_rejects_batches(model):
    with pytest.raises(ValueError, match="mono signal"):
        encode_audio_windows(model, torch.zeros(2, SR))


def test_prepare_waveform_modes():
    short = torch.arange(1.0, 4.0)
    assert prepare_waveform(short, 1, "tile", 7).tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert prepare_waveform(short, 1, "zero", 5).tolist() == [1, 2, 3, 0, 0]
    assert prepare_waveform(short, 1, "none", 5).tolist() == [1, 2, 3]
    assert prepare_waveform(torch.arange(20.0), 1, "zero", 5, max_seconds=10).shape == (10,)
    with pytest.raises(ValueError, match="pad_mode"):
        prepare_waveform(short, 1, "reflect", 5)


# ----------------------------------------------------------------------------------------------------
# embed_audio_files
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    files = {
        "ten": write_wav(folder / "ten.wav", noise(10.0, seed=3)),
        "short": write_wav(folder / "short.wav", noise(4.0, seed=4)),
        "long": write_wav(folder / "long.wav", noise(25.0, seed=5)),
        "silent": write_wav(folder / "silent.wav", np.zeros(SR)),
        "empty": write_wav(folder / "empty.wav", np.zeros(0)),
        "corrupt": folder / "corrupt.wav",
        "missing": folder / "missing.wav",
    }
    files["corrupt"].write_bytes(b"RIFF this is not audio")
    return files


def test_embed_audio_files_shapes_order_and_skips(model, audio_files):
    order = ["ten", "silent", "short", "corrupt", "long", "empty", "missing"]
    result = embed_audio_files(model, [audio_files[name] for name in order], "cpu", batch_size=3)
    assert result.indices == [0, 1, 2, 4]                                  # the silent file is embedded
    assert result.clip.shape == (4, 32)
    assert [frames.shape[0] for frames in result.frames] == [32, 32, 32, 80]
    assert result.durations == pytest.approx([10.0, 1.0, 4.0, 25.0])
    torch.testing.assert_close(result.clip.norm(dim=-1), torch.ones(4))
    assert all(torch.allclose(frames.norm(dim=-1), torch.ones(len(frames))) for frames in result.frames)
    assert result.num_skipped == 3
    reasons = {Path(path).name: reason for path, reason in result.skipped}
    assert set(reasons) == {"corrupt.wav", "empty.wav", "missing.wav"}
    assert "no samples" in reasons["empty.wav"] and "no such file" in reasons["missing.wav"]


def test_embed_audio_files_matches_the_window_function(model, audio_files):
    result = embed_audio_files(model, [audio_files["short"], audio_files["long"]], "cpu", pad_mode="tile")
    short = torch.from_numpy(sf.read(audio_files["short"], dtype="float32")[0])
    frames, clip = encode_audio_windows(model, prepare_waveform(short, SR, "tile"))
    torch.testing.assert_close(result.frames[0], F.normalize(frames, dim=-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.clip[0], F.normalize(clip, dim=-1), atol=1e-5, rtol=1e-5)
    long = torch.from_numpy(sf.read(audio_files["long"], dtype="float32")[0])
    frames, clip = encode_audio_windows(model, long)
    torch.testing.assert_close(result.frames[1], F.normalize(frames, dim=-1), atol=1e-5, rtol=1e-5)


def test_embed_audio_files_batching_and_loader_processes_do_not_change_results(model, audio_files):
    """eval.batch_size and eval.num_workers ('auto' or not) change the wall time only."""
    paths = [audio_files[name] for name in ("ten", "short", "long", "silent", "short")]
    one = embed_audio_files(model, paths, "cpu", batch_size=1, num_workers=0)
    for batch_size, num_workers in ((3, 0), (2, 2), ("auto", "auto"), (32, 1)):
        other = embed_audio_files(model, paths, "cpu", batch_size=batch_size, num_workers=num_workers)
        assert other.indices == one.indices and other.durations == one.durations
        torch.testing.assert_close(other.clip, one.clip, atol=1e-5, rtol=1e-5)
        for frames, expected in zip(other.frames, one.frames, strict=True):
            torch.testing.assert_close(frames, expected, atol=1e-5, rtol=1e-5)


def test_pad_modes_and_cut(model, audio_files):
    paths = [audio_files["short"], audio_files["long"]]
    tiled = embed_audio_files(model, paths, "cpu", pad_mode="tile")
    zeros = embed_audio_files(model, paths, "cpu", pad_mode="zero", long_audio="cut")
    stretched = embed_audio_files(model, paths, "cpu", pad_mode="none")
    assert not torch.allclose(tiled.clip[0], zeros.clip[0])
    assert not torch.allclose(tiled.clip[0], stretched.clip[0])
    assert [frames.shape[0] for frames in zeros.frames] == [32, 32]          # long audio cut to 10 s
    assert zeros.durations[1] == pytest.approx(25.0)                        # duration as read


def test_embedding_restores_training_mode(model, audio_files):
    model.train()
    try:
        embed_audio_files(model, [audio_files["ten"]], "cpu")
        embed_texts(model, ["a dog barks"], "cpu")
        assert model.training
    finally:
        model.eval()


def test_all_files_unreadable_gives_empty_result(model, audio_files):
    result = embed_audio_files(model, [audio_files["corrupt"], audio_files["missing"]], "cpu")
    assert result.clip.shape == (0, 32) and result.frames == [] and result.num_skipped == 2


def test_embed_waveform_keeps_the_frames_of_real_audio(model):
    frames, clip = embed_waveform(model, noise(4.0), "cpu")
    assert frames.shape == (math.ceil(4.0 / (10 / 32)), 32) and clip.shape == (32,)
    frames, _ = embed_waveform(model, noise(25.0), "cpu")
    assert frames.shape[0] == 80


# ----------------------------------------------------------------------------------------------------
# Texts
# ----------------------------------------------------------------------------------------------------
def test_embed_texts_normalised_deduplicated_and_batch_independent(model):
    texts = ["a dog barks", "rain falls on a roof", "a dog barks", "bell"]
    embeds = embed_texts(model, texts, "cpu")
    assert embeds.shape == (4, 32)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(embeds[0], embeds[2])
    torch.testing.assert_close(embed_texts(model, texts, "cpu", batch_size=1), embeds, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        expected = model.embed_text(["rain falls on a roof"])[0]
    torch.testing.assert_close(embeds[1], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embed_texts(model, ["bell"], "cpu")[0], embeds[3])


def test_embed_texts_rejects_empty_and_bare_strings(model):
    with pytest.raises(ValueError, match="empty"):
        embed_texts(model, ["dog", "  "], "cpu")
    with pytest.raises(TypeError, match="list of strings"):
        embed_texts(model, "dog", "cpu")


# ----------------------------------------------------------------------------------------------------
# Model loading
# ----------------------------------------------------------------------------------------------------
def test_load_model_from_a_self_describing_checkpoint(tiny_config, tmp_path):
    torch.manual_seed(1)
    original = ASE(tiny_config).eval()
    path = tmp_path / "tiny.pt"
    torch.save({"model": reference_state_dict(original), "config": original.config.to_dict()}, path)
    loaded = model_from_checkpoint(path, None, "cpu")          # no YAML: the checkpoint describes itself
    assert not loaded.training and loaded.config.text_encoder_args.pretrained is False
    for key, value in original.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    waveform = noise(3.0)[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_audio(waveform), original.embed_audio(waveform))


def test_load_model_without_stored_config_uses_the_given_one(tiny_config, tmp_path):
    original = ASE(tiny_config).eval()
    path = tmp_path / "released_format.pt"
    torch.save({"model": reference_state_dict(original), "epoch": 1}, path)
    loaded = model_from_checkpoint(path, tiny_config, "cpu")
    torch.testing.assert_close(loaded.codebook, original.codebook)


def test_loader_errors_pass_through(tiny_config, tmp_path):
    original = ASE(tiny_config)
    path = tmp_path / "tiny.pt"
    torch.save({"model": reference_state_dict(original), "config": original.config.to_dict()}, path)
    other = dict(tiny_config, embed_size=16)
    with pytest.raises(CheckpointMismatchError, match="embed_size"):
        model_from_checkpoint(path, other, "cpu", use_checkpoint_config=False)
    with pytest.raises(CheckpointError, match="not found"):
        model_from_checkpoint(tmp_path / "absent.pt", tiny_config, "cpu")


def test_fast_loading_paths_give_the_same_model_and_refuse_a_missing_weight(tiny_config, tmp_path):
    """The model is built without random initialisation (every weight comes from the file) and zip-format
    files are memory-mapped: a legacy-format file loads the same, and a file lacking one parameter is refused
    rather than leaving that parameter uninitialised."""
    torch.manual_seed(2)
    original = ASE(tiny_config).eval()
    state = reference_state_dict(original)
    zipped, legacy = tmp_path / "zip.pt", tmp_path / "legacy.pt"
    torch.save({"model": state}, zipped)
    torch.save({"model": state}, legacy, _use_new_zipfile_serialization=False)
    waveform = noise(2.0)[None]
    with torch.no_grad():
        expected = original.embed_audio(waveform)
        for path in (zipped, legacy):
            loaded = model_from_checkpoint(path, tiny_config, "cpu")
            assert all(torch.equal(loaded.state_dict()[key], value) for key, value in original.state_dict().items())
            assert torch.equal(loaded.embed_audio(waveform), expected)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"model": {key: value for key, value in state.items() if key != "codebook"}}, incomplete)
    with pytest.raises(CheckpointMismatchError, match="1 missing: codebook"):
        model_from_checkpoint(incomplete, tiny_config, "cpu")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            assert resolve_device("cuda").type == "cpu"


# ----------------------------------------------------------------------------------------------------
# Long audio (cut, crop, window), silent audio, padding spans
# ----------------------------------------------------------------------------------------------------
def test_window_mode_of_a_file_just_over_10s_gives_32_frames(model, tmp_path):
    path = write_wav(tmp_path / "ten_point_two.wav", noise(10.2, seed=7))
    result = embed_audio_files(model, [path], "cpu", long_audio="window")
    assert result.frames[0].shape[0] == 32 and result.durations[0] == pytest.approx(10.2)


def test_crop_is_seeded_by_seed_and_position():
    starts = [crop_start(1000, seed=0, position=position) for position in range(20)]
    assert starts == [crop_start(1000, seed=0, position=position) for position in range(20)]
    assert len(set(starts)) > 10 and all(0 <= start <= 1000 for start in starts)
    assert starts != [crop_start(1000, seed=1, position=position) for position in range(20)]
    assert crop_start(0, seed=3, position=5) == 0
    waveform = torch.arange(30.0)
    assert shorten_waveform(waveform, 10, "cut").tolist() == list(range(10))
    start = crop_start(20, seed=4, position=2)
    assert shorten_waveform(waveform, 10, "crop", crop_seed=4, position=2).tolist() == list(range(start, start + 10))
    assert shorten_waveform(waveform, 10, "window").shape == (30,)
    assert shorten_waveform(waveform, 40, "crop").shape == (30,)
    with pytest.raises(ValueError, match="long_audio"):
        shorten_waveform(waveform, 10, "random")
    with pytest.raises(ValueError, match="seed"):
        crop_start(10, seed=-1, position=0)


def test_embed_audio_files_crop_is_the_seeded_crop_whatever_the_batching(model, tmp_path):
    long_audio = [noise(13.0, seed=8), noise(12.0, seed=9)]
    paths = [write_wav(tmp_path / "short.wav", noise(4.0, seed=10))]
    paths += [write_wav(tmp_path / f"long{index}.wav", audio) for index, audio in enumerate(long_audio)]
    one = embed_audio_files(model, paths, "cpu", batch_size=1, pad_mode="zero", long_audio="crop", crop_seed=5)
    three = embed_audio_files(model, paths, "cpu", batch_size=3, num_workers=1, pad_mode="zero",
                              long_audio="crop", crop_seed=5)
    torch.testing.assert_close(one.clip, three.clip, atol=1e-5, rtol=1e-5)
    for position, audio in ((1, long_audio[0]), (2, long_audio[1])):
        start = crop_start(audio.numel() - 10 * SR, seed=5, position=position)
        _, clip = encode_audio_windows(model, audio[start:start + 10 * SR])
        torch.testing.assert_close(one.clip[position], F.normalize(clip, dim=-1), atol=1e-5, rtol=1e-5)
        assert one.frames[position].shape[0] == 32
    other_seed = embed_audio_files(model, paths, "cpu", pad_mode="zero", long_audio="crop", crop_seed=6)
    assert not torch.allclose(other_seed.clip[1], one.clip[1])


def test_silent_files_are_embedded_without_nan(model, audio_files):
    result = embed_audio_files(model, [audio_files["silent"]], "cpu", pad_mode="zero")
    assert result.num_skipped == 0 and torch.isfinite(result.clip).all() and torch.isfinite(result.frames[0]).all()
    torch.testing.assert_close(result.clip.norm(dim=-1), torch.ones(1))
    frames, clip = embed_waveform(model, torch.zeros(SR), "cpu")
    assert torch.isfinite(frames).all() and torch.isfinite(clip).all()


def test_padding_spans_zero_pad_to_the_span_longest_and_stretch(model, tmp_path):
    audio = [noise(2.0, seed=11), noise(3.0, seed=12), noise(1.0, seed=13), noise(12.0, seed=14)]
    paths = [write_wav(tmp_path / f"clip{index}.wav", samples) for index, samples in enumerate(audio)]
    spans = [(0, 1), (0, 1), (1, 2), (2, 3)]
    expected_lengths = [3 * SR, 3 * SR, 3 * SR, 10 * SR]          # clip 3 is cut to 10 s first
    results = [embed_audio_files(model, paths, "cpu", batch_size=size, pad_mode="zero", long_audio="cut",
                                 padding_spans=spans) for size in (1, 4)]
    for position, (samples, length) in enumerate(zip(audio, expected_lengths, strict=True)):
        padded = F.pad(samples[:length], (0, max(0, length - samples.numel())))
        frames, clip = encode_audio_windows(model, padded)          # shorter than 10 s: stretched
        for result in results:
            torch.testing.assert_close(result.clip[position], F.normalize(clip, dim=-1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="pad_mode must be 'zero'"):
        embed_audio_files(model, paths, "cpu", pad_mode="tile", padding_spans=spans)
    with pytest.raises(ValueError, match="own file's position"):
        check_padding_spans([(0, 0), (0, 0)], 2)
    with pytest.raises(ValueError, match="one \\(first, last\\) pair per file"):
        check_padding_spans([(0, 0)], 2)
