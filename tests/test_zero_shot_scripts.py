"""The zero-shot scripts and example.py end to end on a tiny model and the synthetic corpus."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import example
import pretrain
import zero_shot_clas
import zero_shot_grounding
import zero_shot_retrieval
import zero_shot_sed
from data_handling.eval_sets.classification import ClassificationItem
from tests.warm_python import run_python
from tools.eval.classification import evaluate_classification
from tools.eval.cli import run_script
from tools.eval.report_card import synthetic_report_card
from tools.eval.sed import evaluate_sed

REPO = Path(__file__).resolve().parent.parent
RETRIEVAL_KEYS = {f"{direction}_{metric}" for direction in ("t2a", "a2t")
                  for metric in ("R1_percent", "R5_percent", "R10_percent", "R50_percent", "medR", "meanR",
                                 "mAP10_percent")}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def report_card(model, synthetic_corpus) -> dict:
    return synthetic_report_card(model, synthetic_corpus, "cpu")


def run_main(main, checkpoint: Path, data_root: Path, out: Path, *extra: str) -> dict:
    main(["--ckpt", str(checkpoint), "--data-root", str(data_root), "--device", "cpu", "--num-workers", "0",
          "--out", str(out), *extra])
    return json.loads(out.read_text())


def assert_same_numbers(script_result: dict, card_result: dict, keys) -> None:
    for key in keys:
        assert script_result[key] == pytest.approx(card_result[key], abs=1e-6), key


def test_report_card_sections(report_card, capsys):
    assert set(report_card) == {"retrieval", "classification", "sed", "grounding"}
    assert RETRIEVAL_KEYS <= set(report_card["retrieval"])
    assert {"accuracy_percent", "per_fold_accuracy_percent", "num_clips"} <= set(report_card["classification"])
    assert {"psds1", "psds2", "collar_f1", "segment_f1"} <= set(report_card["sed"])
    assert {"psds_0.7", "psds_0.5", "psds_0.1"} <= set(report_card["grounding"])
    assert report_card["retrieval"]["protocol"] == {"long_audio": "crop", "crop_seed": 0, "padding": "batch"}
    assert report_card["sed"]["protocol"] == {"long_audio": "cut", "score_tiled_tail": True}
    pretrain.print_report(report_card)
    printed = capsys.readouterr().out
    assert "retrieval T2A R@1 (%)" in printed and "SED PSDS1 (0..1)" in printed


def test_retrieval_script(checkpoint, synthetic_corpus, report_card, tmp_path):
    result = run_main(zero_shot_retrieval.main, checkpoint, synthetic_corpus, tmp_path / "retrieval.json")
    assert RETRIEVAL_KEYS <= set(result) and result["num_audio"] == 6 and result["num_captions"] == 30
    assert result["run"]["checkpoint"] == str(checkpoint)
    assert_same_numbers(result, report_card["retrieval"], RETRIEVAL_KEYS)


def test_classification_script(checkpoint, synthetic_corpus, report_card, tmp_path):
    result = run_main(zero_shot_clas.main, checkpoint, synthetic_corpus, tmp_path / "cls.json", "--dataset", "esc50")
    assert result["dataset"] == "esc50" and result["prompt_template"] == "{} can be heard"
    assert set(result["per_fold_accuracy_percent"]) == {"1", "2", "3", "4", "5"}
    assert_same_numbers(result, report_card["classification"], ["accuracy_percent"])


def test_sed_script_with_plots(checkpoint, synthetic_corpus, report_card, tmp_path):
    result = run_main(zero_shot_sed.main, checkpoint, synthetic_corpus, tmp_path / "sed.json", "--plot", "2")
    assert_same_numbers(result, report_card["sed"], ["psds1", "psds2", "collar_f1", "segment_f1"])
    assert len(result["plots"]) == 2
    for plot in result["plots"]:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grounding_script(checkpoint, synthetic_corpus, report_card, tmp_path):
    result = run_main(zero_shot_grounding.main, checkpoint, synthetic_corpus, tmp_path / "tag.json")
    assert result["num_audio"] == 6 and result["num_phrases"] > 0
    assert_same_numbers(result, report_card["grounding"], ["psds_0.7", "psds_0.5", "psds_0.1"])


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_example_writes_a_figure(checkpoint, synthetic_corpus, tmp_path, capsys):
    out = tmp_path / "figures" / "example.png"
    audio = synthetic_corpus / "esc50" / "audio" / sorted((synthetic_corpus / "esc50" / "audio").iterdir())[0].name
    result = example.main(["--audio", str(audio), "--text", "male speech", "electric shaver", "--ckpt",
                           str(checkpoint), "--device", "cpu", "--out", str(out)])
    width, height = png_size(out)
    assert 600 <= width <= 3000 and 300 <= height <= 2000
    assert set(result["clip_similarity"]) == {"male speech", "electric shaver"}
    assert result["frame_similarity"].shape == (16, 2)            # 5 s clip: ceil(5 / (10 / 32)) frames
    printed = capsys.readouterr().out
    assert "clip-level" in printed and "frame-level" in printed


def test_missing_dataset_folder_names_the_layout(checkpoint, tmp_path, capsys):
    absent = tmp_path / "no_such_dataset"
    with pytest.raises(FileNotFoundError, match="(?s)no_such_dataset.*audio/.*metadata/eval.tsv"):
        zero_shot_sed.main(["--ckpt", str(checkpoint), "--data-root", str(absent), "--device", "cpu"])
    with pytest.raises(FileNotFoundError, match="meta/esc50.csv"):
        zero_shot_clas.main(["--ckpt", str(checkpoint), "--data-root", str(absent), "--device", "cpu"])
    code = run_script(zero_shot_grounding.main, ["--ckpt", str(checkpoint), "--data-root", str(absent)])
    assert code == 2 and "test.json" in capsys.readouterr().err


def test_synthetic_corpus_has_no_urbansound8k(checkpoint, synthetic_corpus):
    with pytest.raises(FileNotFoundError, match="no urbansound8k split"):
        zero_shot_clas.main(["--ckpt", str(checkpoint), "--data-root", str(synthetic_corpus),
                             "--dataset", "urbansound8k", "--device", "cpu"])


def test_missing_checkpoint_says_what_to_do(tmp_path, synthetic_corpus, capsys):
    with pytest.raises(FileNotFoundError, match="pretrain.py -c settings/quickstart.yaml"):
        zero_shot_retrieval.main(["--ckpt", str(tmp_path / "absent.pt"), "--data-root", str(synthetic_corpus)])
    assert run_script(zero_shot_clas.main, ["--ckpt", str(tmp_path / "absent.pt")]) == 2
    assert capsys.readouterr().err.startswith("error: checkpoint")


def test_sed_counts_skipped_files(model, synthetic_corpus, tmp_path):
    sed = shutil.copytree(synthetic_corpus / "sed", tmp_path / "sed")
    first = sorted((sed / "audio").iterdir())[0]
    first.write_bytes(b"not audio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # a class may lose its only event with the skipped clip
        result = evaluate_sed(model, sed / "audio", sed / "metadata" / "eval.tsv",
                              sed / "metadata" / "eval_durations.tsv", "cpu")
    assert result["num_skipped"] == 1 and result["skipped"][0]["path"].endswith(first.name)
    assert result["num_clips"] == 5


def test_classification_class_names(model, synthetic_corpus):
    audio = sorted((synthetic_corpus / "esc50" / "audio").iterdir())[:2]
    items = [ClassificationItem(path, "dog", None, index) for index, path in enumerate(audio)]
    result = evaluate_classification(model, items, ["dog_bark", "church bells"], "{} can be heard", "cpu")
    assert result["num_clips"] == 2 and result["per_fold_accuracy_percent"] == {}
    with pytest.raises(ValueError, match="more than once"):
        evaluate_classification(model, items, ["dog_bark", "dog bark"], "{}", "cpu")
    with pytest.raises(ValueError, match="empty"):
        evaluate_classification(model, items, ["dog", " _ "], "{}", "cpu")
    with pytest.raises(ValueError, match="prompt_template"):
        evaluate_classification(model, items, ["dog", "cat"], "a sound", "cpu")


@pytest.mark.slow
def test_script_runs_from_the_command_line(checkpoint, synthetic_corpus, tmp_path):
    out = tmp_path / "cls.json"
    completed = subprocess.run(
        [sys.executable, "zero_shot_clas.py", "--ckpt", str(checkpoint), "--data-root", str(synthetic_corpus),
         "--device", "cpu", "--num-workers", "0", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "accuracy_percent" in completed.stdout and json.loads(out.read_text())["num_clips"] == 13


def esc50_with_one_corrupt_file(synthetic_corpus: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the synthetic ESC-50 split whose first audio file is not audio: (folder, the corrupt file)."""
    esc50 = shutil.copytree(synthetic_corpus / "esc50", tmp_path / "ESC-50-master")
    corrupt = sorted((esc50 / "audio").iterdir())[0]
    corrupt.write_bytes(b"not audio")
    return esc50, corrupt


@pytest.mark.slow
def test_corrupt_file_from_the_command_line_default_and_strict(checkpoint, synthetic_corpus, tmp_path):
    """As a user runs it: by default the score is over the readable files and says so; --strict refuses."""
    esc50, corrupt = esc50_with_one_corrupt_file(synthetic_corpus, tmp_path)
    out = tmp_path / "cls.json"
    command = ["zero_shot_clas.py", "--ckpt", str(checkpoint), "--data-root", str(esc50),
               "--device", "cpu", "--num-workers", "0", "--out", str(out)]
    default = run_python(command, timeout=120)  # started warm (tests/warm_python.py); the test above starts cold
    assert default.returncode == 0, default.stderr
    assert "scored 12 of 13 files" in default.stdout and corrupt.name in default.stdout
    result = json.loads(out.read_text())
    assert result["complete"] is False and result["num_files"] == 13 and result["num_scored"] == 12
    assert [entry["path"] for entry in result["skipped"]] == [str(corrupt)]
    out.unlink()
    strict = run_python([*command, "--strict"], timeout=120)
    assert strict.returncode == 1
    [error] = [line for line in strict.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: 1 of 13 audio file(s)") and str(corrupt) in error
    assert "Traceback" not in strict.stderr and "accuracy_percent" not in strict.stdout and not out.exists()


def test_complete_set_says_so(checkpoint, synthetic_corpus, tmp_path, capsys):
    result = run_main(zero_shot_clas.main, checkpoint, synthetic_corpus, tmp_path / "cls.json", "--strict")
    assert result["complete"] is True and result["skipped"] == [] and result["num_scored"] == 13
    assert "scored 13 of 13 files (complete)" in capsys.readouterr().out


@pytest.mark.parametrize("script", [zero_shot_retrieval, zero_shot_sed, zero_shot_grounding])
def test_strict_in_every_script(script, checkpoint, synthetic_corpus, tmp_path, capsys):
    """One unreadable file of each task's split: scored over the rest by default, exit 1 naming it with --strict."""
    corpus = shutil.copytree(synthetic_corpus, tmp_path / "corpus",
                             ignore=shutil.ignore_patterns("train*", "esc50"))
    task = {zero_shot_retrieval: "retrieval", zero_shot_sed: "sed", zero_shot_grounding: "grounding"}[script]
    audio = sorted(path for path in (corpus / task).rglob("*.wav"))
    corrupt = audio[0]
    corrupt.write_bytes(b"")
    argv = ["--ckpt", str(checkpoint), "--data-root", str(corpus), "--device", "cpu", "--num-workers", "0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # a class may lose its only event with the skipped clip
        assert run_script(script.main, [*argv, "--out", str(tmp_path / "out.json")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["complete"] is False and result["num_scored"] == result["num_files"] - 1
    assert result["skipped"][0]["path"] == str(corrupt)
    assert f"scored {result['num_scored']} of {result['num_files']} files" in capsys.readouterr().out
    assert run_script(script.main, [*argv, "--strict"]) == 1
    captured = capsys.readouterr()
    assert str(corrupt) in captured.err and "psds" not in captured.out and "R1" not in captured.out


def test_sed_explicit_files_and_mid_label_map(checkpoint, synthetic_corpus, report_card, tmp_path):
    """AudioSet-strong style: MIDs in the tsv, a mid,name map; the same classes give the same numbers."""
    metadata = synthetic_corpus / "sed" / "metadata"
    lines = (metadata / "eval.tsv").read_text().splitlines()
    labels = sorted({line.split("\t")[3] for line in lines[1:]})
    mid_of = {label: f"/m/{index:03d}" for index, label in enumerate(labels)}
    rows = ["segment_id\tstart_time_seconds\tend_time_seconds\tlabel"]
    rows += ["\t".join([*line.split("\t")[:3], mid_of[line.split("\t")[3]]]) for line in lines[1:]]
    (tmp_path / "strong.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mids.tsv").write_text("".join(f"{mid}\t{label}\n" for label, mid in mid_of.items()))
    result = run_main(zero_shot_sed.main, checkpoint, tmp_path / "unused", tmp_path / "sed.json",
                      "--tsv", str(tmp_path / "strong.tsv"), "--durations-tsv", str(metadata / "eval_durations.tsv"),
                      "--audio-dir", str(synthetic_corpus / "sed" / "audio"), "--label-map", str(tmp_path / "mids.tsv"))
    assert_same_numbers(result, report_card["sed"], ["psds1", "psds2", "collar_f1", "segment_f1"])


def test_precision_option_reaches_the_evaluation(checkpoint, synthetic_corpus, monkeypatch):
    from tools.config import ConfigError
    from tools.eval.cli import load_script_config

    seen: list[str] = []

    def record_precision(*args, precision, **kwargs):
        seen.append(precision)
        return {"num_audio": 0}

    monkeypatch.setattr(zero_shot_retrieval, "evaluate_retrieval", record_precision)
    common = ["--ckpt", str(checkpoint), "--data-root", str(synthetic_corpus), "--device", "cpu"]
    zero_shot_retrieval.main(common)
    zero_shot_retrieval.main([*common, "--precision", "bf16"])
    assert seen == ["float32", "bf16"]  # float32 by default: exact numbers on every device
    with pytest.raises(ConfigError, match="eval.precision"):
        load_script_config(zero_shot_retrieval.parse_args([*common, "--set", "eval.precision=fp8"]))
