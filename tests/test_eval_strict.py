"""Evaluation over a set with missing or unreadable audio: 'scored N of M files' and complete: false by default,
an error naming the files with eval.strict (--strict); pretrain.py checks its evaluation sets before training."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

import pretrain
from data_handling.eval_sets.classification import ClassificationItem
from data_handling.eval_sets.retrieval import read_retrieval_json
from models.factory import model_from_checkpoint
from tests.conftest import write_tiny_checkpoint
from tools.config import parse_config
from tools.eval.classification import check_classification_sets, evaluate_classification
from tools.eval.common import IncompleteEvaluationError, coverage_line, file_coverage, require_complete
from tools.eval.retrieval import check_retrieval_sets
from tools.train.trainer import Trainer


@pytest.fixture()
def retrieval_split(synthetic_corpus, tmp_path) -> tuple[Path, list[Path]]:
    """A copy of the synthetic retrieval split: (its json, its clips' audio files in json order)."""
    folder = shutil.copytree(synthetic_corpus / "retrieval", tmp_path / "retrieval")
    json_path = folder / "test.json"
    return json_path, [Path(item.audio_path) for item in read_retrieval_json(json_path)]


def test_coverage_line_and_strict_error_name_the_files():
    coverage = file_coverage(3, [("a/x.wav", "missing"), ("a/y.wav", "cannot decode")])
    assert coverage["complete"] is False and coverage["num_scored"] == 1
    assert coverage_line(coverage).startswith("scored 1 of 3 files: 2 missing or unreadable, e.g. a/x.wav (missing)")
    with pytest.raises(IncompleteEvaluationError, match=r"2 of 3 audio file\(s\) of set.tsv .*a/x\.wav \(missing\); "
                                                        r"a/y\.wav \(cannot decode\)"):
        require_complete(coverage, "set.tsv", strict=True)
    require_complete(coverage, "set.tsv", strict=False)
    assert coverage_line(file_coverage(3, [])) == "scored 3 of 3 files (complete)"
    assert coverage_line({"accuracy_percent": 1.0}) is None


def test_clips_listed_without_a_file_count_as_skipped(tiny_config, synthetic_corpus, tmp_path):
    """VGGSound's listed clips without a file (the reader's `missing`) are part of M and of the strict error."""
    model = model_from_checkpoint(write_tiny_checkpoint(tiny_config, tmp_path), None, "cpu")
    audio = sorted((synthetic_corpus / "esc50" / "audio").iterdir())[:2]
    items = [ClassificationItem(path, "dog", None, 0) for path in audio]
    result = evaluate_classification(model, items, ["dog", "cat"], "{}", "cpu", num_workers=0,
                                     missing=["VGGSound/audio/gone_000001.wav"])
    assert result["num_files"] == 3 and result["num_scored"] == 2 and result["complete"] is False
    assert result["skipped"] == [{"path": "VGGSound/audio/gone_000001.wav", "reason": "missing"}]
    with pytest.raises(IncompleteEvaluationError, match="gone_000001.wav"):
        evaluate_classification(model, items, ["dog", "cat"], "{}", "cpu", num_workers=0,
                                missing=["VGGSound/audio/gone_000001.wav"], strict=True)


def test_start_up_check_one_line_per_set(retrieval_split, caplog):
    json_path, audio = retrieval_split
    complete = shutil.copy(json_path, json_path.with_name("complete.json"))
    audio[1].unlink()
    with caplog.at_level(logging.INFO):
        checks = check_retrieval_sets([json_path, complete])
    assert checks[0]["missing"] == [str(audio[1])] and checks[0]["num_files"] == len(audio)
    lines = [record.getMessage() for record in caplog.records if "evaluation set" in record.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith(f"evaluation set {json_path}: 1 of {len(audio)} clips have no audio file")
    with pytest.raises(IncompleteEvaluationError, match=f"1 of {len(audio)} clips have no audio file \\({audio[1]}\\)"):
        check_retrieval_sets([json_path, complete], strict=True)


@pytest.fixture()
def class_folders(synthetic_corpus, tmp_path) -> tuple[Path, list[Path]]:
    """A labelled set as class folders (two classes, two clips each, from the corpus's ESC-50 audio): (its
    folder, its audio files)."""
    audio = sorted((synthetic_corpus / "esc50" / "audio").iterdir())[:4]
    files = []
    for index, source in enumerate(audio):
        folder = tmp_path / "labelled" / ("dog", "rain")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        files.append(Path(shutil.copy(source, folder / source.name)))
    return tmp_path / "labelled", files


def test_start_up_check_of_classification_sets(class_folders, caplog):
    folder, audio = class_folders
    audio[3].unlink()
    with caplog.at_level(logging.INFO):
        [check] = check_classification_sets([folder])
    assert check == {"set": str(folder), "num_files": 3, "missing": []}  # a class folder lists what is there
    table = folder.parent / "labelled.csv"
    table.write_text("audio,label\n" + "".join(f"{path},{path.parent.name}\n" for path in audio))
    with caplog.at_level(logging.INFO):
        checks = check_classification_sets([folder, table])
    assert checks[1]["missing"] == [str(audio[3])] and checks[1]["num_files"] == 4
    lines = [record.getMessage() for record in caplog.records if "evaluation set" in record.getMessage()]
    assert lines[-2] == f"evaluation set {folder}: audio found for all 3 clips"
    assert lines[-1].startswith(f"evaluation set {table}: 1 of 4 clips have no audio file")
    with pytest.raises(IncompleteEvaluationError, match=f"{table}: 1 of 4 clips have no audio file"):
        check_classification_sets([folder, table], strict=True)
    one_class = folder.parent / "one_class.csv"
    one_class.write_text(f"audio,label\n{audio[0]},dog\n")
    with pytest.raises(ValueError, match="a set of eval.classification_sets"):
        check_classification_sets([one_class])


def test_pretrain_checks_classification_sets_before_training(tiny_config, synthetic_corpus, retrieval_split,
                                                            class_folders, tmp_path, capsys):
    json_path, _ = retrieval_split
    folder, audio = class_folders
    table = tmp_path / "labelled.csv"
    table.write_text("audio,label\n" + "".join(f"{path},{path.parent.name}\n" for path in audio))
    audio[1].unlink()
    config_path = pretrain_config(tiny_config, synthetic_corpus, tmp_path, json_path, True)
    config = yaml.safe_load(config_path.read_text())
    config["eval"]["classification_sets"] = [str(table)]
    config_path.write_text(yaml.safe_dump(config))
    assert pretrain.main(["-c", str(config_path)]) == 1
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert str(audio[1]) in error and "eval.classification_sets" in error
    assert not list((tmp_path / "strict").glob("*.pt"))   # no step was trained


def pretrain_config(tiny_config: dict, corpus: Path, tmp_path: Path, json_path: Path, strict: bool) -> Path:
    config = {**tiny_config, "json_files": [str(corpus / "train" / "train.json")], "output_dir": str(tmp_path),
              "exp_name": "strict", "training": {"epochs": 1, "max_steps_per_epoch": 1, "amp": "off"},
              "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False},
              "eval": {"retrieval_jsons": [str(json_path)], "strict": strict, "num_workers": 0}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_pretrain_stops_before_training_when_strict(tiny_config, synthetic_corpus, retrieval_split, tmp_path,
                                                    capsys):
    json_path, audio = retrieval_split
    audio[0].unlink()
    code = pretrain.main(["-c", str(pretrain_config(tiny_config, synthetic_corpus, tmp_path, json_path, True))])
    assert code == 1
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert str(audio[0]) in error and "eval.strict" in error
    assert not list((tmp_path / "strict").glob("*.pt"))   # no step was trained


def test_pretrain_stops_on_an_unreadable_evaluation_json(tiny_config, synthetic_corpus, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code = pretrain.main(["-c", str(pretrain_config(tiny_config, synthetic_corpus, tmp_path, broken, False))])
    assert code == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert str(broken) in error and not list((tmp_path / "strict").glob("*.pt"))


def test_per_epoch_evaluation_default_and_strict(tiny_config, synthetic_corpus, retrieval_split, tmp_path):
    json_path, audio = retrieval_split
    complete = synthetic_corpus / "retrieval" / "test.json"
    audio[2].write_bytes(b"not audio")
    config = {**tiny_config, "json_files": [str(synthetic_corpus / "train" / "train.json")],
              "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False},
              "eval": {"retrieval_jsons": [str(json_path), str(complete)], "num_workers": 0}}
    trainer = Trainer(parse_config(config), tmp_path / "default")
    results = trainer.evaluate()
    metrics = results["retrieval"][str(json_path)]
    assert metrics["complete"] is False and metrics["skipped"][0]["path"] == str(audio[2])
    assert results["retrieval"][str(complete)]["complete"] is True and "score" in results
    strict = Trainer(parse_config({**config, "eval": {**config["eval"], "strict": True}}), tmp_path / "strict")
    results = strict.evaluate()
    assert list(results["retrieval"]) == [str(complete)] and len(results["scores"]) == 1
    assert "score" not in results                          # no sum over fewer sets: best.pt is not chosen on it
    assert str(audio[2]) in json.dumps(results["eval_errors"])
