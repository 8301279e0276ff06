"""search.py and tools/detect/index.py: building, incremental adding, queries with spans, bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import search
from models.factory import model_from_checkpoint
from tests.conftest import write_tiny_checkpoint
from tests.test_detect import QUICKSTART, needs_quickstart
from tools.detect.calibration import read_labelled_set
from tools.detect.index import SearchIndex, best_span
from tools.detect.scoring import score_search
from tools.eval.cli import run_script
from tools.tiny_model import tiny_config_dict


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


def run_search(checkpoint: Path, *args: str) -> dict:
    return search.main([*args, "--ckpt", str(checkpoint), "--device", "cpu", "--num-workers", "0"])


def test_build_add_update_query(checkpoint, synthetic_corpus, tmp_path):
    audio = tmp_path / "audio"
    shutil.copytree(synthetic_corpus / "sed" / "audio", audio)
    first, second = sorted(audio.glob("*.wav"))[:4], sorted(audio.glob("*.wav"))[4:]
    index_dir = tmp_path / "index"
    built = run_search(checkpoint, "build", "--index", str(index_dir), *map(str, first))
    assert built["num_added"] == 4
    frames_before = (index_dir / "frames.f16").read_bytes()
    added = run_search(checkpoint, "add", "--index", str(index_dir), str(audio))
    assert (added["num_added"], added["num_unchanged"], added["num_files"]) == (2, 4, 6)
    assert (index_dir / "frames.f16").read_bytes()[:len(frames_before)] == frames_before   # appended only
    shutil.copyfile(second[0], first[0])                        # a changed file is embedded again
    os.utime(first[0], ns=(1, 1))
    updated = run_search(checkpoint, "add", "--index", str(index_dir), str(audio))
    assert (updated["num_updated"], updated["num_unchanged"]) == (1, 5)
    index = SearchIndex.open(index_dir)
    changed = next(entry for entry in index.files if entry.path == str(first[0].resolve()))
    twin = next(entry for entry in index.files if entry.path == str(second[0].resolve()))
    frames = index.matrix("frames.f16")
    assert np.array_equal(frames[changed.frame_offset:changed.frame_offset + 32],
                          frames[twin.frame_offset:twin.frame_offset + 32])
    result = run_search(checkpoint, "query", "--index", str(index_dir), "a bell rings", "clicking", "--top-k", "3")
    for hits in result["queries"].values():
        assert len(hits) == 3
        assert all(0 <= hit["onset"] < hit["offset"] <= 10.0 for hit in hits)
    frame_ranked = run_search(checkpoint, "query", "--index", str(index_dir), "a bell rings", "--rank", "frame")
    assert len(frame_ranked["queries"]["a bell rings"]) == 6


def test_compaction_keeps_embeddings(checkpoint, synthetic_corpus, tmp_path):
    model = model_from_checkpoint(checkpoint, None, "cpu")
    audio = tmp_path / "clip.wav"
    shutil.copyfile(synthetic_corpus / "sed" / "audio" / "sed_00001.wav", audio)
    index = SearchIndex.create(tmp_path / "index", model)
    index.add(model, [audio])
    before = np.array(index.matrix("frames.f16"))
    for step in range(2):                                        # re-embedding twice leaves unused rows
        os.utime(audio, ns=(step + 2, step + 2))
        index.add(model, [audio])
    reopened = SearchIndex.open(tmp_path / "index")
    assert reopened.matrix("frames.f16").shape == before.shape  # compacted back to the listed rows
    assert np.array_equal(np.array(reopened.matrix("frames.f16")), before)


def test_best_span_is_the_run_around_the_peak():
    curve = np.array([0.0, 0.1, 0.0, 0.2, 0.8, 0.9, 0.7, 0.1, 0.0, 0.0])
    assert best_span(curve) == (4, 7)


def test_search_errors_are_one_line(checkpoint, tiny_text_dir, synthetic_corpus, tmp_path, capsys):
    code = run_script(search.main, ["query", "--index", str(tmp_path / "none"), "a bell", "--ckpt", str(checkpoint),
                                    "--device", "cpu"])
    assert code == 2 and "no index in" in capsys.readouterr().err
    run_search(checkpoint, "build", "--index", str(tmp_path / "index"),
               str(synthetic_corpus / "sed" / "audio" / "sed_00000.wav"))
    other = write_tiny_checkpoint(tiny_config_dict(tiny_text_dir) | {"codebook": {"size": 32}}, tmp_path)
    code = run_script(search.main, ["query", "--index", str(tmp_path / "index"), "a bell", "--ckpt", str(other),
                                    "--device", "cpu"])
    assert code == 2 and "another model" in capsys.readouterr().err


@needs_quickstart
def test_quickstart_precision_and_spans(tmp_path):
    """Each class query of the synthetic SED split: most top-10 hits hold the class, and best spans overlap it."""
    corpus = QUICKSTART.parents[2] / "data" / "synthetic" / "sed"
    if not (corpus / "metadata" / "eval.tsv").is_file():
        pytest.skip("data/synthetic is absent (python pretrain.py -c settings/quickstart.yaml generates it)")
    model = model_from_checkpoint(QUICKSTART, None, "cpu")
    labelled = read_labelled_set(corpus / "metadata" / "eval.tsv")
    index = SearchIndex.create(tmp_path / "index", model)
    index.add(model, labelled.paths)
    hits = index.search(model, labelled.class_names, top_k=10)
    scores = score_search(dict(zip(labelled.class_names, hits, strict=True)), labelled)
    assert scores["precision_at_k"] >= 0.7
    assert scores["span_overlap"] >= 0.9
