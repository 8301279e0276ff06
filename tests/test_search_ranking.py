"""search.py's ranking: the top-k of an index equals a brute-force cosine ranking (no outputs/ or data/ needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from scipy.ndimage import median_filter

from data_handling.audio_io import load_audio
from models.ase_model import ASE
from models.windowing import prepare_waveform
from tools.detect.detector import StreamOptions
from tools.detect.index import SearchIndex

QUERIES = ["a dog barks", "rain on a roof", "a high whistle", "an engine idles"]
TOP_K = 5


def clip_audio(kind: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """10 s clips of different spectra: four tones, brown and white noise, a chirp, clicks, a tone then noise."""
    time = np.arange(10 * rate) / rate
    if kind < 4:
        signal = np.sin(2 * np.pi * (150 * 3 ** kind) * time)
    elif kind == 4:
        signal = np.cumsum(rng.standard_normal(time.size))
    elif kind == 5:
        signal = rng.standard_normal(time.size)
    elif kind == 6:
        signal = np.sin(2 * np.pi * (100 + 390 * time) * time)
    elif kind == 7:
        signal = np.zeros(time.size)
        signal[:: rate // 7] = 1.0
    else:
        signal = np.where(time < 5, np.sin(2 * np.pi * 600 * time), rng.standard_normal(time.size))
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)


class SpectralProjection(ASE):
    """The tiny ASE whose network is replaced by a fixed random projection of each frame's log band energies
    (a random tiny network maps every clip to nearly the same embedding: rankings would be near-ties).

    Frame embedding: the log-energies of up to 16 log-spaced bands of each 10 / 32 s of the window, centred per frame,
    times a seeded random [16, E] matrix. A query's embedding is a seeded random unit vector. Everything
    around them (index, pooling, storage, scoring, ranking) is the real code.
    """

    def __init__(self, config: dict):
        super().__init__(config)
        generator = torch.Generator().manual_seed(17)
        self.projection = torch.randn(16, self.config.embed_size, generator=generator)
        self.query_embeds = F.normalize(torch.randn(len(QUERIES), self.config.embed_size, generator=generator),
                                        dim=-1)

    def encode_audio(self, audio: torch.Tensor, need_clip_features: bool = True) -> tuple[None, torch.Tensor]:
        frame = audio.shape[1] // 32
        spectrum = torch.fft.rfft(audio[:, :frame * 32].float().reshape(audio.shape[0], 32, frame)).abs().square()
        edges = np.unique(np.geomspace(1, spectrum.shape[-1], 17).astype(int))
        bands = torch.stack([spectrum[..., low:high].sum(-1) for low, high in zip(edges[:-1], edges[1:], strict=True)], -1)
        energies = torch.log(bands + 1e-6)
        energies = energies - energies.mean(-1, keepdim=True)
        return None, energies @ self.projection[:energies.shape[-1]]                # [B, 32, E]

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return self.query_embeds[[QUERIES.index(text) for text in texts]]


@pytest.fixture(scope="module")
def model(tiny_text_dir) -> ASE:
    from tools.tiny_model import tiny_config_dict

    torch.manual_seed(1)
    return SpectralProjection(tiny_config_dict(tiny_text_dir)).eval()


@pytest.fixture(scope="module")
def files(model, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("search_audio")
    rng = np.random.default_rng(0)
    paths = []
    for kind in range(9):
        paths.append(folder / f"clip{kind}.wav")
        sf.write(str(paths[-1]), clip_audio(kind, model.sample_rate, rng), model.sample_rate, subtype="FLOAT")
    return paths


@pytest.fixture(scope="module")
def index(model, files, tmp_path_factory) -> SearchIndex:
    index = SearchIndex.create(tmp_path_factory.mktemp("index") / "index", model)
    summary = index.add(model, files, "cpu", StreamOptions(batch_size=4, num_workers=0, progress=False))
    assert summary["num_added"] == len(files)
    return index


def brute_force(model: ASE, files: list[Path], rank: str) -> np.ndarray:
    """[files, Q] scores computed from the audio, without the index: each file encoded on its own
    (`encode_long_audio` of the file tiled to 10 s), embeddings L2-normalised and stored as float16 as the
    index stores them; 'clip': cosine with the clip embedding; 'frame': highest 3-frame-median frame cosine."""
    with torch.no_grad():
        queries = model.embed_text(QUERIES).numpy().astype(np.float64)                 # [Q, E]
        scores = []
        for path in files:
            waveform = prepare_waveform(torch.from_numpy(load_audio(path, model.sample_rate)), model.sample_rate)
            frames, clip = model.encode_long_audio(waveform)
            if rank == "clip":
                clip = F.normalize(clip, dim=-1).half().double().numpy()
                scores.append(clip @ queries.T)
            else:
                frames = F.normalize(frames, dim=-1).half().double().numpy()
                scores.append(median_filter(frames @ queries.T, size=(3, 1), mode="nearest").max(axis=0))
    return np.stack(scores)


@pytest.mark.parametrize("rank", ["clip", "frame"])
def test_top_k_equals_brute_force_cosine_ranking(model, files, index, rank):
    expected = brute_force(model, files, rank)
    hits = index.search(model, QUERIES, top_k=TOP_K, rank=rank, device="cpu")
    assert len(hits) == len(QUERIES)
    for column, query_hits in enumerate(hits):
        order = np.argsort(-expected[:, column], kind="stable")
        gaps = -np.diff(expected[order[:TOP_K + 1], column])
        order = order[:TOP_K]
        assert gaps.min() > 1e-3, "the case should have no near-ties (float16 storage moves cosines by < 1e-3)"
        assert [Path(hit.path).name for hit in query_hits] == [files[row].name for row in order], QUERIES[column]
        np.testing.assert_allclose([hit.score for hit in query_hits], expected[order, column], atol=2e-3)
