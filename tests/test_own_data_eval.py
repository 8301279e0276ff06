"""Evaluating your own data: zero-shot classification of a custom set, retrieval on a table, the linear probe."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import linear_probe
import zero_shot_clas
import zero_shot_retrieval
from data_handling.eval_sets.classification import read_custom_classification, read_esc50
from data_handling.eval_sets.retrieval import read_retrieval_json
from tools.eval.linear_probe import probe_accuracy


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


def run(main, checkpoint: Path, out: Path, *extra: str) -> dict:
    main(["--ckpt", str(checkpoint), "--device", "cpu", "--num-workers", "0", "--out", str(out), *extra])
    return json.loads(out.read_text())


def esc50_rows(corpus: Path) -> list[dict[str, str]]:
    with open(corpus / "esc50" / "meta" / "esc50.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def write_custom_table(corpus: Path, target: Path, with_fold: bool) -> Path:
    """The synthetic ESC-50 split as a CSV audio,label[,fold] (absolute audio paths)."""
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "label"] + (["fold"] if with_fold else []))
        for row in esc50_rows(corpus):
            writer.writerow([str(corpus / "esc50" / "audio" / row["filename"]), row["category"]]
                            + ([row["fold"]] if with_fold else []))
    return target


def test_custom_table_with_folds_reads_as_esc50(synthetic_corpus, tmp_path):
    esc50 = read_esc50(synthetic_corpus / "esc50")
    custom = read_custom_classification(write_custom_table(synthetic_corpus, tmp_path / "c.csv", with_fold=True))
    as_set = lambda clips: sorted((str(item.audio_path), item.class_name, item.fold) for item in clips.items)  # noqa: E731
    assert as_set(custom) == as_set(esc50) and sorted(custom.class_names) == sorted(esc50.class_names)


@pytest.mark.slow
def test_custom_set_gives_the_accuracy_of_the_esc50_layout(checkpoint, synthetic_corpus, tmp_path):
    esc50 = run(zero_shot_clas.main, checkpoint, tmp_path / "esc.json", "--dataset", "esc50", "--data-root",
                str(synthetic_corpus))
    table = write_custom_table(synthetic_corpus, tmp_path / "clips.csv", with_fold=True)
    custom = run(zero_shot_clas.main, checkpoint, tmp_path / "custom.json", "--dataset", "custom", "--data-root",
                 str(table))
    assert custom["accuracy_percent"] == pytest.approx(esc50["accuracy_percent"], abs=1e-9)
    assert custom["per_fold_accuracy_percent"] == pytest.approx(esc50["per_fold_accuracy_percent"])
    assert custom["num_clips"] == esc50["num_clips"] and custom["prompt_template"] == "{} can be heard"
    folder = tmp_path / "classes"  # the same clips as class folders: no folds, accuracy over all clips
    for row in esc50_rows(synthetic_corpus):
        (folder / row["category"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(synthetic_corpus / "esc50" / "audio" / row["filename"], folder / row["category"])
    no_folds = run(zero_shot_clas.main, checkpoint, tmp_path / "nofold.json", "--dataset", "custom",
                   "--data-root", str(write_custom_table(synthetic_corpus, tmp_path / "nofold.csv", with_fold=False)))
    from_folder = run(zero_shot_clas.main, checkpoint, tmp_path / "folder.json", "--dataset", "custom",
                      "--data-root", str(folder), "--prompt", "{}")
    assert from_folder["prompt_template"] == "{}" and from_folder["num_clips"] == esc50["num_clips"]
    same_prompt = run(zero_shot_clas.main, checkpoint, tmp_path / "folder2.json", "--dataset", "custom",
                      "--data-root", str(folder))
    assert same_prompt["accuracy_percent"] == pytest.approx(no_folds["accuracy_percent"], abs=1e-9)
    assert no_folds["per_fold_accuracy_percent"] == {}


def test_retrieval_on_a_table_equals_the_json(checkpoint, synthetic_corpus, tmp_path):
    json_path = synthetic_corpus / "retrieval" / "test.json"
    items = read_retrieval_json(json_path)
    table = tmp_path / "captions.tsv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        count = max(len(item.captions) for item in items)
        writer.writerow(["audio", "caption"] + [f"caption_{n}" for n in range(2, count + 1)])
        writer.writerows([str(item.audio_path), *item.captions] for item in items)
    from_table = read_retrieval_json(table)
    assert [(item.audio_path, item.captions) for item in from_table] == [(item.audio_path, item.captions)
                                                                         for item in items]
    base = ["--data-root", str(synthetic_corpus)]
    left = run(zero_shot_retrieval.main, checkpoint, tmp_path / "j.json", *base, "--json", str(json_path))
    right = run(zero_shot_retrieval.main, checkpoint, tmp_path / "t.json", *base, "--json", str(table))
    assert right["t2a_R1_percent"] == left["t2a_R1_percent"] and right["a2t_mAP10_percent"] == \
        left["a2t_mAP10_percent"] and right["num_captions"] == left["num_captions"]


def separable(num_classes: int = 4, per_class: int = 12, dims: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (num_classes, dims))
    targets = np.repeat(np.arange(num_classes), per_class)
    return centres[targets] + rng.normal(0, 0.5, (targets.size, dims)), targets


def test_probe_is_perfect_on_separable_embeddings():
    embeddings, targets = separable()
    result = probe_accuracy(embeddings, targets, ["a", "b", "c", "d"], num_folds=4)
    assert result["accuracy_percent"] == 100.0 and list(result["per_fold_accuracy_percent"].values()) == [100.0] * 4
    assert all(entry["recall_percent"] == 100.0 and entry["support"] == 12 for entry in result["per_class"].values())


def test_probe_is_at_chance_on_shuffled_labels():
    embeddings, targets = separable(num_classes=4, per_class=60, seed=1)
    shuffled = np.random.default_rng(2).permutation(targets)
    result = probe_accuracy(embeddings, shuffled, ["a", "b", "c", "d"], num_folds=5)
    assert abs(result["accuracy_percent"] - 25.0) < 10.0


def test_probe_uses_the_data_folds_and_refuses_too_many_folds():
    embeddings, targets = separable(num_classes=2, per_class=6)
    folds = np.tile([1, 2, 3], 4)
    result = probe_accuracy(embeddings, targets, ["a", "b"], folds=folds)
    assert set(result["per_fold_accuracy_percent"]) == {"1", "2", "3"}
    with pytest.raises(ValueError, match="smallest class has 6 clips: lower --folds"):
        probe_accuracy(embeddings, targets, ["a", "b"], num_folds=7)


def test_linear_probe_script(checkpoint, synthetic_corpus, tmp_path):
    table = write_custom_table(synthetic_corpus, tmp_path / "clips.csv", with_fold=True)
    result = run(linear_probe.main, checkpoint, tmp_path / "probe.json", "--data", str(table))
    assert result["num_folds"] == 5 and set(result["per_fold_accuracy_percent"]) == {"1", "2", "3", "4", "5"}
    assert 0.0 <= result["accuracy_percent"] <= 100.0 and result["run"]["data"] == str(table)
    assert len(result["per_class"]) == result["num_classes"] == len(esc50_rows(synthetic_corpus))
