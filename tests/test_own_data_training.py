"""Held-out evaluation of your own data during training: retrieval sets as tables, classification sets with
their own best file, and the held-out split of data_args.val_fraction."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from data_handling.training_items import hold_out_clips, prepare_training_items
from tests.test_training import training_config
from tools.config import ConfigError, parse_config
from tools.train.model_files import classification_best_file_names
from tools.train.trainer import Trainer


def esc50_table(corpus: Path, target: Path) -> Path:
    with open(corpus / "esc50" / "meta" / "esc50.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "label", "fold"])
        writer.writerows([str(corpus / "esc50" / "audio" / row["filename"]), row["category"], row["fold"]]
                         for row in rows)
    return target


def retrieval_table(corpus: Path, target: Path) -> Path:
    content = json.loads((corpus / "retrieval" / "test.json").read_text())
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["audio", "caption"])
        for entry in content["data"]:
            captions = [entry[key] for key in sorted(entry) if key.startswith("caption_")]
            writer.writerows([str(corpus / "retrieval" / entry["audio"]), caption] for caption in captions)
    return target


def test_hold_out_is_deterministic_whole_clips_and_disjoint(synthetic_corpus):
    items = prepare_training_items([synthetic_corpus / "train" / "train.json"])
    train, held = hold_out_clips(items, 0.25, seed=7)
    again_train, again_held = hold_out_clips(items, 0.25, seed=7)
    assert (train, held) == (again_train, again_held)
    held_clips = {item.clip_index for item in held}
    assert len(held_clips) == 4 and held_clips.isdisjoint(item.clip_index for item in train)
    assert len(train) + len(held) == len(items)
    assert {item.clip_index for item in hold_out_clips(items, 0.25, seed=8)[1]} != held_clips


@pytest.mark.slow
def test_classification_and_table_retrieval_sets_are_evaluated_each_epoch(tiny_config, synthetic_corpus, tmp_path):
    sets = tmp_path / "own"
    sets.mkdir()
    classification = esc50_table(synthetic_corpus, sets / "clips.csv")
    retrieval = retrieval_table(synthetic_corpus, tmp_path / "captions.tsv")
    config = parse_config(training_config(tiny_config, synthetic_corpus, training={
        "epochs": 1, "amp": "off", "max_steps_per_epoch": 1},
        eval={"retrieval_jsons": [str(retrieval)], "classification_sets": [str(classification)],
              "batch_size": 4, "num_workers": 0}))
    trainer = Trainer(config, tmp_path / "exp")
    record = trainer.fit()[0]
    assert "eval_errors" not in record
    assert record["retrieval"][str(retrieval)]["num_audio"] == 6
    accuracy = record["classification"][str(classification)]["accuracy_percent"]
    assert record["scores"]["own_clas_best_model.pt"] == accuracy
    assert (tmp_path / "exp" / "own_clas_best_model.pt").is_file()
    assert (tmp_path / "exp" / f"{tmp_path.name}_best_model.pt").is_file()  # the retrieval table's folder


@pytest.mark.slow
def test_val_fraction_holds_clips_out_of_training_and_evaluates_them(tiny_config, synthetic_corpus, tmp_path, caplog):
    config = parse_config(training_config(tiny_config, synthetic_corpus, training={
        "epochs": 1, "amp": "off", "max_steps_per_epoch": 1},
        data_args={"batch_size": 4, "num_workers": 0, "pin_memory": False, "val_fraction": 0.25},
        eval={"batch_size": 4, "num_workers": 0}))
    with caplog.at_level(logging.INFO):
        trainer = Trainer(config, tmp_path / "exp")
    held_json = tmp_path / "exp" / "held_out" / "retrieval.json"
    assert config.eval.retrieval_jsons == [str(held_json)]
    held = json.loads(held_json.read_text())["data"]
    assert len(held) == 4
    trained_audio = {str(Path(item.audio_path).resolve()) for item in trainer.dataset.items}
    assert trained_audio.isdisjoint(entry["audio"] for entry in held)
    assert len(trained_audio) == 12
    assert "4 clips (" in caplog.text and "never trained on" in caplog.text
    record = trainer.fit()[0]
    assert record["retrieval"][str(held_json)]["num_audio"] == 4
    assert (tmp_path / "exp" / "held_out_best_model.pt").is_file()


def test_val_fraction_is_validated_and_names_do_not_collide(tmp_path):
    with pytest.raises(ConfigError, match="val_fraction"):
        parse_config({"data_args": {"val_fraction": 1.0}})
    (tmp_path / "birds").mkdir()
    assert classification_best_file_names([str(tmp_path / "birds"), str(tmp_path / "birds" / "x.csv")],
                                          taken=["clotho_best_model.pt"]) == \
        ["birds_clas_best_model.pt", "birds1_clas_best_model.pt"]


@pytest.mark.slow
def test_training_on_labelled_clips_draws_each_epochs_templates(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    from data_handling.caption_dataset import CaptionAudioDataset

    table = esc50_table(synthetic_corpus, tmp_path / "labels.csv")
    templates = ["{} can be heard", "the sound of {}", "{}"]
    config = parse_config(training_config(tiny_config, synthetic_corpus, json_files=[str(table)], training={
        "epochs": 2, "amp": "off", "max_steps_per_epoch": 1},
        data_args={"batch_size": 4, "num_workers": 0, "pin_memory": False, "caption_templates": templates}))
    seen: list[tuple[int, str]] = []
    original = CaptionAudioDataset.caption

    def record(self, index):
        seen.append((self.epoch, original(self, index)))
        return seen[-1][1]

    monkeypatch.setattr(CaptionAudioDataset, "caption", record)
    trainer = Trainer(config, tmp_path / "exp")
    assert all(len(item.labels) == 1 for item in trainer.dataset.items)
    trainer.fit()
    assert {epoch for epoch, _ in seen} == {0, 1}
    assert any(not caption.endswith("can be heard") for _, caption in seen)
