"""tools.detect: a labelled set read without a durations tsv, and search results scored against it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.detect.calibration import LabelledSet, read_labelled_set
from tools.detect.index import Hit
from tools.detect.scoring import score_search


def test_labelled_set_without_durations_tsv_reads_audio_headers_and_lists_unreadable_files(
        synthetic_corpus, tmp_path):
    sed = synthetic_corpus / "sed"
    with_durations = read_labelled_set(sed / "metadata" / "eval.tsv")
    (tmp_path / "metadata").mkdir()
    shutil.copy(sed / "metadata" / "eval.tsv", tmp_path / "metadata" / "eval.tsv")
    shutil.copytree(sed / "audio", tmp_path / "audio")
    broken = tmp_path / "audio" / Path(with_durations.paths[0]).name
    broken.write_bytes(b"not audio")

    labelled = read_labelled_set(tmp_path / "metadata" / "eval.tsv")

    assert [entry["path"] for entry in labelled.skipped] == [str(broken)]
    assert labelled.skipped[0]["reason"]
    assert labelled.clip_ids == with_durations.clip_ids[1:]
    assert labelled.durations == pytest.approx({clip: with_durations.durations[clip] for clip in labelled.clip_ids})
    assert labelled.ground_truth == {clip: with_durations.ground_truth[clip] for clip in labelled.clip_ids}


def test_score_search_precision_and_span_overlap():
    labelled = LabelledSet(tsv=Path("eval.tsv"), clip_ids=["a", "b", "c"], paths=[Path("a.wav"), Path("b.wav"),
                                                                                     Path("c.wav")],
                           ground_truth={"a": [(1.0, 2.0, "dog")], "b": [(0.0, 1.0, "dog"), (5.0, 6.0, "bell")],
                                         "c": []},
                           durations={"a": 10.0, "b": 10.0, "c": 10.0}, class_names=["bell", "dog"])
    hits = {"dog": [Hit("x/a.wav", 0.9, 1.5, 3.0, 0.8),      # relevant, overlapping
                    Hit("x/b.flac", 0.8, 1.0, 2.0, 0.7),     # relevant, touching the event only: no overlap
                    Hit("x/c.wav", 0.7, 0.0, 1.0, 0.6),      # not relevant
                    Hit("x/unknown.wav", 0.6, 0.0, 1.0, 0.5)],
            "bell": [Hit("b.wav", 0.5, 5.5, 7.0, 0.4), Hit("a.wav", 0.4, 5.5, 7.0, 0.3),
                     Hit("b.wav", 0.3, 4.0, 5.0, 0.2)],     # relevant, ending where the event starts: no overlap
            "siren": []}
    scores = score_search(hits, labelled)
    assert scores["per_query"] == {"dog": {"precision": 0.5, "span_overlap": 0.5},
                                   "bell": {"precision": pytest.approx(2 / 3), "span_overlap": 0.5},
                                   "siren": {"precision": 0.0, "span_overlap": None}}
    assert scores["precision_at_k"] == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert scores["span_overlap"] == 0.5
    assert scores["k"] == 4
    assert score_search({"dog": [Hit("c.wav", 0.1, 0.0, 1.0, 0.1)]}, labelled)["span_overlap"] is None
    assert score_search({"dog": [Hit("a.wav", 0.1, 1.0, 2.0, 0.1)]}, labelled) == {
        "precision_at_k": 1.0, "span_overlap": 1.0, "k": 1, "per_query": {"dog": {"precision": 1.0, "span_overlap": 1.0}}}
    assert score_search({"dog": []}, labelled) == {"precision_at_k": 0.0, "span_overlap": None, "k": 0,
                                                   "per_query": {"dog": {"precision": 0.0, "span_overlap": None}}}
