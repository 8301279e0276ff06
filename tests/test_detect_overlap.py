"""Window overlap of detect.py and search.py: an overlapped frame is the mean of its windows' frames."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from data_handling.audio_io import load_audio
from models.ase_model import ASE
from models.windowing import FRAMES_PER_WINDOW, prepare_waveform, window_samples
from tools.detect.detector import StreamOptions
from tools.detect.index import SearchIndex
from tools.detect.streaming import DEFAULT_OVERLAP, FrameStream, embed_files


@pytest.fixture(scope="module")
def model(tiny_text_dir) -> ASE:
    from tools.tiny_model import tiny_config_dict

    torch.manual_seed(0)
    return ASE(tiny_config_dict(tiny_text_dir)).eval()


def test_default_overlap_of_detect_and_search_is_half_a_window():
    assert DEFAULT_OVERLAP == 0.5
    assert StreamOptions().overlap == DEFAULT_OVERLAP
    assert inspect.signature(SearchIndex.create).parameters["overlap"].default == DEFAULT_OVERLAP


def test_overlapped_frames_are_the_mean_of_each_windows_encode_long_audio(model, tmp_path):
    """26 s at the model's rate, default overlap (stride 16 frames): windows start at frames 0, 16, 32, 48, 64
    (the last holds 6 s of audio, tiled to 10 s as every protocol tiles); each window is encoded on its own
    by `encode_long_audio`, and the streamed frame f must be the mean over the windows covering f."""
    rate = model.sample_rate
    rng = np.random.default_rng(3)
    path = tmp_path / "long.wav"
    sf.write(str(path), (0.2 * rng.standard_normal(26 * rate)).astype(np.float32), rate, subtype="FLOAT")
    waveform = torch.from_numpy(load_audio(path, rate))
    window = window_samples(model)
    hop = window // FRAMES_PER_WINDOW

    stream = FrameStream(model, path, "cpu", overlap=DEFAULT_OVERLAP, windows_per_batch=2)
    streamed = torch.cat([chunk.frames for chunk in stream])
    num_frames = stream.num_frames
    assert num_frames == 84 and stream.window_starts() == [0, 16, 32, 48, 64]

    sums = torch.zeros(num_frames, streamed.shape[1])
    counts = torch.zeros(num_frames)
    last_only = torch.zeros(num_frames, streamed.shape[1])          # what taking the last window would give
    with torch.no_grad():
        for start in stream.window_starts():
            audio = prepare_waveform(waveform[start * hop:start * hop + window], rate, "tile")
            frames, _ = model.encode_long_audio(audio)                    # [32, E], one window on its own
            covered = min(FRAMES_PER_WINDOW, num_frames - start)
            sums[start:start + covered] += frames[:covered]
            counts[start:start + covered] += 1
            last_only[start:start + covered] = frames[:covered]
    expected = sums / counts[:, None]
    assert counts.min() == 1 and counts.max() == 2 and int((counts == 2).sum()) == 64
    assert streamed.shape == expected.shape
    torch.testing.assert_close(streamed, expected, rtol=0, atol=1e-5)
    # the two windows of an overlapped frame differ, so the mean is not either one of them
    overlapped = counts == 2
    assert (last_only[overlapped] - expected[overlapped]).abs().max() > 1e-3

    # what detect.py (detect_files -> embed_files) and search.py (SearchIndex.add) get with their defaults
    options = StreamOptions(batch_size=2, num_workers=0, progress=False)
    (embedded,) = embed_files(model, [path], lambda frames: frames, "cpu", options.overlap, options.batch_size,
                              options.num_workers, progress=False)
    torch.testing.assert_close(embedded.frame_outputs, F.normalize(expected, dim=-1), rtol=0, atol=1e-5)
    index = SearchIndex.create(tmp_path / "index", model)
    index.add(model, [path], "cpu", options)
    stored = torch.from_numpy(np.asarray(index.matrix("frames.f16"), dtype=np.float32))
    torch.testing.assert_close(stored, F.normalize(expected, dim=-1), rtol=0, atol=2e-3)   # stored as float16
