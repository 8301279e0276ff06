"""The search page (tools/detect/server.py, search.py serve) through FastAPI's test client: results equal
search.py query's, the planted event's span is the one highlighted, ids not paths, limits, missing files."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

import search
from models.windowing import FRAME_HOP_SECONDS
from tests.conftest import write_tiny_checkpoint
from tests.random_index import unit_rows, write_index
from tools.detect.index import SearchIndex, model_fingerprint
from tools.detect.search_results import MAX_PHRASE_CHARS, MAX_PHRASES
from tools.detect.server import create_app, warn_if_public
from tools.eval.cli import run_script
from tools.eval.embedding import embed_texts
from tools.eval.sed_metrics import median_filter_time
from tools.tiny_model import tiny_config_dict

PLANTED_QUERY = "a bell rings"
PLANTED_FILE = 3
PLANTED_FRAMES = (8, 15)                     # frames 8 .. 14: 2.50 - 4.69 s
NUM_FILES, NUM_FRAMES = 6, 32


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def planted_index(model, folder: Path) -> SearchIndex:
    """Six 10 s noise files; file 3's frames 8..14 and clip embedding are the text embedding of PLANTED_QUERY
    (plus a little noise), every other row is a random unit vector."""
    rng = np.random.default_rng(0)
    target = embed_texts(model, [PLANTED_QUERY])[0].numpy()
    embed_size = target.shape[0]
    paths = []
    for position in range(NUM_FILES):
        path = folder / "audio" / f"file_{position}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(16000 * 10).astype(np.float32), 16000, subtype="PCM_16")
        paths.append(path)
    clips = unit_rows(rng, NUM_FILES, embed_size)
    frames = [unit_rows(rng, NUM_FRAMES, embed_size) for _ in range(NUM_FILES)]
    start, end = PLANTED_FRAMES
    near_target = target + 0.05 * unit_rows(rng, end - start + 1, embed_size)
    frames[PLANTED_FILE][start:end] = near_target[:-1] / np.linalg.norm(near_target[:-1], axis=1, keepdims=True)
    clips[PLANTED_FILE] = near_target[-1] / np.linalg.norm(near_target[-1])
    return write_index(folder / "index", model_fingerprint(model), clips, frames, paths)


@pytest.fixture
def planted(model, tmp_path) -> tuple[SearchIndex, TestClient]:
    index = planted_index(model, tmp_path)
    return index, TestClient(create_app(index, model, torch.device("cpu")))


def shown_spans(html: str) -> list[tuple[str, str]]:
    """(file name, best span text) of each result of a rendered page, in order."""
    names = re.findall(r'class="result" data-id="\d+" data-name="([^"]+)"', html)
    spans = re.findall(r'class="span-times">([^<]+)</span>', html)
    return list(zip(names, spans, strict=True))


# ----------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------
def test_api_results_equal_search_query(checkpoint, model, synthetic_corpus, tmp_path):
    index_dir = tmp_path / "index"
    search.main(["build", "--index", str(index_dir), str(synthetic_corpus / "sed" / "audio"), "--ckpt",
                 str(checkpoint), "--device", "cpu", "--num-workers", "0"])
    client = TestClient(create_app(SearchIndex.open(index_dir), model))
    for rank in ("clip", "frame"):
        cli = search.main(["query", "--index", str(index_dir), "a bell rings", "--top-k", "4", "--rank", rank,
                           "--ckpt", str(checkpoint), "--device", "cpu"])["queries"]["a bell rings"]
        page = client.get("/api/search", params={"q": "a  bell rings\n", "k": 4, "rank": rank}).json()
        assert [result["path"] for result in page["results"]] == [hit["path"] for hit in cli]
        for result, hit in zip(page["results"], cli, strict=True):
            assert result["score"] == pytest.approx(hit["score"], abs=1e-6)
            assert (result["spans"][0]["onset"], result["spans"][0]["offset"]) == (hit["onset"], hit["offset"])


def test_planted_event_is_the_highlighted_span(planted):
    index, client = planted
    expected_name = f"file_{PLANTED_FILE}.wav"
    onset, offset = PLANTED_FRAMES[0] * FRAME_HOP_SECONDS, PLANTED_FRAMES[1] * FRAME_HOP_SECONDS
    for rank in ("clip", "frame"):
        response = client.get("/", params={"q": PLANTED_QUERY, "rank": rank})
        assert response.status_code == 200
        assert shown_spans(response.text)[0] == (expected_name, f"{onset:.2f}&ndash;{offset:.2f} s")
        top = client.get("/api/search", params={"q": PLANTED_QUERY, "rank": rank}).json()["results"][0]
        assert (top["spans"][0]["start_frame"], top["spans"][0]["end_frame"]) == PLANTED_FRAMES
        band = re.search(r'class="span-band" x="([\d.]+)" y="0" width="([\d.]+)"', response.text)
        assert float(band[1]) == pytest.approx(1000 * onset / 10.0, abs=0.01)       # the picture's band
        assert float(band[2]) == pytest.approx(1000 * (offset - onset) / 10.0, abs=0.01)


def test_more_like_this_finds_the_span_file(planted):
    index, client = planted
    html = client.get("/", params={"q": PLANTED_QUERY}).text
    link = re.search(r'class="like" href="([^"]+)"', html)[1].replace("&amp;", "&")
    assert f"like={PLANTED_FILE}&start={PLANTED_FRAMES[0]}&end={PLANTED_FRAMES[1]}" in link
    liked = client.get(link)
    assert liked.status_code == 200
    assert shown_spans(liked.text)[0][0] == f"file_{PLANTED_FILE}.wav"
    assert client.get("/", params={"like": PLANTED_FILE, "start": 30, "end": 40}).status_code == 400


def test_several_phrases_one_curve_each(planted):
    index, client = planted
    found = client.get("/api/search", params={"q": f"{PLANTED_QUERY}\nclicking\n\n{PLANTED_QUERY}"}).json()
    assert found["phrases"] == [PLANTED_QUERY, "clicking"]
    assert all(len(result["curves"]) == 2 and len(result["spans"]) == 2 for result in found["results"])
    assert all(len(curve) == NUM_FRAMES for result in found["results"] for curve in result["curves"])
    single = {phrase: client.get("/api/search", params={"q": phrase}).json()["results"]
              for phrase in found["phrases"]}
    scores = {phrase: {result["id"]: result["score"] for result in results} for phrase, results in single.items()}
    means = [np.mean([scores[phrase][result["id"]] for phrase in found["phrases"]]) for result in found["results"]]
    assert means == pytest.approx([result["score"] for result in found["results"]], abs=1e-6)
    assert means == sorted(means, reverse=True)
    html = client.get("/", params={"q": f"{PLANTED_QUERY}\nclicking"}).text
    assert html.count("<polyline") == 2 * NUM_FILES


def test_curves_are_the_median_filtered_frame_cosines(planted, model):
    index, client = planted
    top = client.get("/api/search", params={"q": PLANTED_QUERY, "k": 1}).json()["results"][0]
    entry = index.files[top["id"]]
    frames = np.asarray(index.matrix("frames.f16")[entry.frame_offset:entry.frame_offset + entry.num_frames],
                        dtype=np.float32)
    expected = median_filter_time(frames @ embed_texts(model, [PLANTED_QUERY])[0].numpy(), 3)
    np.testing.assert_allclose(top["curves"][0], expected, atol=1e-4)


# ----------------------------------------------------------------------------------------------------
# Safety
# ----------------------------------------------------------------------------------------------------
def test_audio_only_of_listed_files_by_id(planted):
    index, client = planted
    response = client.get(f"/audio/{PLANTED_FILE}")
    assert response.status_code == 200
    assert response.content == Path(index.files[PLANTED_FILE].path).read_bytes()
    ranged = client.get(f"/audio/{PLANTED_FILE}", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    image = client.get(f"/spectrogram/{PLANTED_FILE}")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    for attempt in ("/audio/..%2F..%2F..%2Fetc%2Fpasswd", "/audio/%2Fetc%2Fpasswd", "/audio/../../etc/passwd",
                    f"/audio/{NUM_FILES}", "/audio/-1", "/audio/1e1", "/audio/%EF%BC%91", "/spectrogram/99",
                    "/spectrogram/..%2Findex.json"):
        assert client.get(attempt).status_code == 404, attempt


def test_limits_give_400(planted):
    index, client = planted
    too_long = "a" * (MAX_PHRASE_CHARS + 1)
    too_many = "\n".join(f"sound {number}" for number in range(MAX_PHRASES + 1))
    for params in ({"q": too_long}, {"q": too_many}, {"q": "a bell", "k": 0}, {"q": "a bell", "k": 1000},
                   {"q": "a bell", "k": "ten"}, {"q": "a bell", "rank": "loudest"}, {"like": 99}):
        assert client.get("/api/search", params=params).status_code == 400, params
        page = client.get("/", params=params)
        assert page.status_code == 400 and 'id="error"' in page.text, params
    assert client.get("/api/search", params={"q": "a" * MAX_PHRASE_CHARS}).status_code == 200
    assert client.get("/").status_code == 200                                      # the empty page


def test_deleted_file_shows_as_missing(planted):
    index, client = planted
    Path(index.files[PLANTED_FILE].path).unlink()
    response = client.get("/", params={"q": PLANTED_QUERY})
    assert response.status_code == 200
    first = response.text.split('class="result"')[1].split("</li>")[0]
    assert "missing (deleted or moved since indexing)" in first and "<audio" not in first
    assert client.get(f"/audio/{PLANTED_FILE}").status_code == 404
    assert client.get(f"/spectrogram/{PLANTED_FILE}").status_code == 404


def test_index_of_another_model_is_refused_at_start(checkpoint, tiny_text_dir, model, tmp_path, capsys,
                                                    monkeypatch):
    served = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))
    planted_index(model, tmp_path)
    other = write_tiny_checkpoint(tiny_config_dict(tiny_text_dir) | {"codebook": {"size": 32}}, tmp_path)
    code = run_script(search.main, ["serve", "--index", str(tmp_path / "index"), "--ckpt", str(other),
                                    "--device", "cpu"])
    assert code == 2 and "another model" in capsys.readouterr().err and not served
    code = run_script(search.main, ["serve", "--index", str(tmp_path / "index"), "--ckpt", str(checkpoint),
                                    "--device", "cpu", "--port", "8999"])
    assert code == 0 and served == [{"host": "127.0.0.1", "port": 8999, "log_level": "warning"}]


def test_public_host_warns(caplog):
    with caplog.at_level(logging.WARNING):
        warn_if_public("127.0.0.1")
        assert not caplog.records
        warn_if_public("0.0.0.0")
    assert "anyone who can reach" in caplog.text


# ----------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------
def test_peak_frame_scores_equal_per_file_median_filter(tmp_path, monkeypatch):
    """The vectorised frame ranking equals filtering each file on its own (to float rounding of the products) (files of 1 to 40 frames, unused
    rows between them, chunks smaller than the index)."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 40, size=30)
    frames = [unit_rows(rng, int(length), 16) for length in lengths]
    index = write_index(tmp_path / "index", "x", unit_rows(rng, 30, 16), frames, [tmp_path / f"{k}.wav"
                                                                                   for k in range(30)])
    index.files = [entry for position, entry in enumerate(index.files) if position % 4]     # unused rows
    queries = torch.from_numpy(unit_rows(rng, 3, 16))
    monkeypatch.setattr("tools.detect.index.ROWS_PER_CHUNK", 50)
    expected = np.stack([index.frame_curves(position, queries).max(axis=0) for position in range(len(index.files))])
    np.testing.assert_allclose(index.peak_frame_scores(queries).numpy(), expected, atol=1e-6)   # BLAS rounding


# ----------------------------------------------------------------------------------------------------
# Approximate index
# ----------------------------------------------------------------------------------------------------
def test_approximate_index_added_to_without_training_again(checkpoint, model, synthetic_corpus, tmp_path,
                                                           monkeypatch):
    """Above the threshold build makes clip.ivf; add appends the new rows (centroids unchanged); scanning
    every list, its re-ranked answers are the exact ones; a re-embedded file's old row is never answered."""
    import faiss

    monkeypatch.setattr("tools.detect.approximate.NPROBE", 4096)                 # every list: exact answers
    monkeypatch.setattr("tools.detect.index.APPROXIMATE_FROM_FILES", 4)
    audio = sorted((synthetic_corpus / "sed" / "audio").glob("*.wav"))
    index = SearchIndex.create(tmp_path / "index", model)
    index.add(model, audio[:3])
    assert not (tmp_path / "index" / "clip.ivf").exists()                       # below the threshold
    index.add(model, audio[3:4])
    centroids = faiss.vector_to_array(faiss.downcast_index(index.approximate().faiss_index.quantizer).codes)
    copied = tmp_path / "copy.wav"
    copied.write_bytes(audio[0].read_bytes())
    index.add(model, [*audio[4:], copied])
    reopened = SearchIndex.open(tmp_path / "index")
    approximate = reopened.approximate()
    assert approximate.num_rows == 7
    after = faiss.vector_to_array(faiss.downcast_index(approximate.faiss_index.quantizer).codes)
    np.testing.assert_array_equal(after, centroids)
    queries = embed_texts(model, ["a bell rings", "clicking", "rain"])
    exact = SearchIndex.open(tmp_path / "index")
    exact._approximate = None
    for column in range(3):
        found = reopened.top_files(queries[column:column + 1], 7)
        expected = exact.top_files(queries[column:column + 1], 7)
        assert set(found[0]) == set(expected[0])            # as a set: the copy and its original tie
        np.testing.assert_allclose(found[1], expected[1], atol=1e-6)
    os.utime(copied, ns=(5, 5))                                                   # re-embedded: row 6 unused
    reopened.add(model, [copied])
    assert reopened.approximate().num_rows == 8
    positions = reopened.top_files(queries[:1], 7)[0]
    assert sorted(reopened.files[position].clip_row for position in positions) == [0, 1, 2, 3, 4, 5, 7]
