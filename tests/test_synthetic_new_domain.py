"""The synthetic "new domain": classes the corpus never contains, written as folders of class folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from data_handling.synthetic import EVENT_TYPES
from data_handling.synthetic.new_domain import NEW_DOMAIN_TYPES, generate_new_domain, main
from data_handling.synthetic.scenes import ESC_CLIP_SECONDS


def files_of(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.wav"))}


def test_new_domain_layout_classes_and_determinism(tmp_path):
    summary = generate_new_domain(tmp_path / "a", train_per_class=2, test_per_class=1, seed=5)
    generate_new_domain(tmp_path / "b", train_per_class=2, test_per_class=1, seed=5)
    assert not set(NEW_DOMAIN_TYPES) & set(EVENT_TYPES)  # classes the corpus never contains
    labels = sorted(event_type.label for event_type in NEW_DOMAIN_TYPES.values())
    for split, per_class in (("train", 2), ("test", 1)):
        folders = sorted(path.name for path in (tmp_path / "a" / split).iterdir())
        assert folders == labels
        assert all(len(list((tmp_path / "a" / split / label).glob("*.wav"))) == per_class for label in labels)
    first, second = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert first == second and len(first) == 3 * len(labels)
    assert len(set(first.values())) == len(first)  # every clip its own: no test clip is a training clip
    audio, rate = soundfile.read(tmp_path / "a" / "train" / "wind" / "wind_00000.wav")
    assert rate == 32000 and audio.size == int(ESC_CLIP_SECONDS * rate) and np.abs(audio).max() > 0.3
    assert json.loads((tmp_path / "a" / "classes.json").read_text())["events"][0]["name"] == summary["events"][0]


def test_new_domain_refuses_bad_counts_and_an_existing_split(tmp_path, capsys):
    with pytest.raises(ValueError, match="train_per_class must be a positive integer"):
        generate_new_domain(tmp_path, train_per_class=0)
    (tmp_path / "train").mkdir()
    assert main(["--out", str(tmp_path), "--train-per-class", "1", "--test-per-class", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert list((tmp_path / "train").iterdir()) == []
