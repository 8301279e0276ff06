"""Smoke tests of the end-to-end benchmark of the scripts (benchmarks/scripts.py) and of the detection and search
benchmarks (benchmarks/detection.py), at small sizes."""

from __future__ import annotations

import csv
import json
import sys
import time

import pytest

import benchmarks.scripts
from benchmarks.scripts import ESC50_CATEGORIES, main, markdown
from tests.warm_python import run_python
from tools.eval.loader_defaults import usable_cpus

STAGES = ("import", "config_and_model_load", "evaluate", "audio_embedding", "audio_model",
          "audio_waiting_for_loader", "text_embedding", "metrics_and_other")


@pytest.fixture
def warm_processes(monkeypatch):
    """The benchmark's processes (each script, its in-process split, the training runs) start warm
    (tests/warm_python.py): each is still a process of its own whose exit status, output and results the
    benchmark reads; only its import stage is no longer timed from nothing."""
    def warm_timed_run(command: list[str], env: dict[str, str] | None = None) -> dict:
        assert command[0] == sys.executable, command
        start = time.perf_counter()
        done = run_python(command[1:], env=env)
        return {"wall_s": time.perf_counter() - start, "returncode": done.returncode,
                "stdout_tail": done.stdout[-2000:], "stderr_tail": done.stderr[-2000:]}

    monkeypatch.setattr(benchmarks.scripts, "timed_run", warm_timed_run)


@pytest.mark.slow
def test_scripts_benchmark_esc50_tiny(tmp_path, warm_processes):
    out = tmp_path / "report.json"
    report = main(["--preset", "tiny", "--tasks", "esc50", "--clips", "esc50=10", "--repeats", "1",
                   "--model-repeats", "1", "--workdir", str(tmp_path / "work"), "--out", str(out)])
    assert json.loads(out.read_text())["settings"]["clips"]["esc50"] == 10

    rows = list(csv.DictReader(open(tmp_path / "work" / "ESC-50-master" / "meta" / "esc50.csv")))
    assert list(rows[0]) == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert [row["category"] for row in rows] == list(ESC50_CATEGORIES[:10])
    assert all(row["filename"] == f"{row['fold']}-{row['src_file']}-A-{row['target']}.wav" for row in rows)

    assert set(report) >= {"settings", "machine", "python_startup_s", "scripts", "training", "reference"}
    assert report["python_startup_s"] > 0 and report["reference"] is None and report["training"] is None
    run = report["scripts"]["esc50"]
    assert run["succeeded"] and [one["returncode"] for one in run["runs"]] == [0]
    assert run["command"][1] == "zero_shot_clas.py"
    accuracy = run["runs"][-1]["result"]["accuracy_percent"]
    assert accuracy is not None and accuracy == run["split"]["metrics"]["accuracy_percent"]
    assert run["metrics_match"]
    split = run["split"]
    assert split["num_clips"] == 10
    assert set(split["stages_s"]) == {"import", "config_and_model_load", "evaluate", "audio_embedding",
                                      "audio_model", "audio_waiting_for_loader", "text_embedding",
                                      "metrics_and_other"}
    assert split["batch_size"] == 4 and split["num_workers"] == (0 if usable_cpus() <= 2 else 1)  # auto, CPU
    assert split["decode_alone"]["clips"] == 10
    assert split["model_alone"]["batch_size"] == split["batch_size"]
    assert "| zero_shot_clas.py | 10 |" in markdown(report)


def test_the_reference_comparison_needs_the_esc50_task_and_a_checkout(tmp_path):
    with pytest.raises(SystemExit, match="add esc50"):
        main(["--preset", "tiny", "--tasks", "sed", "--reference-checkout", str(tmp_path),
              "--workdir", str(tmp_path / "work")])
    with pytest.raises(FileNotFoundError, match="expected the file"):
        main(["--preset", "tiny", "--tasks", "esc50", "--reference-checkout", str(tmp_path),
              "--workdir", str(tmp_path / "work")])


@pytest.mark.slow
@pytest.mark.parametrize("tasks", ["sed,grounding", "retrieval,train"])  # two halves: two workers run them at once
def test_scripts_benchmark_runs_every_other_script_and_training_tiny(tmp_path, synthetic_corpus, tiny_text_dir,
                                                                     tasks, warm_processes):
    """benchmarks.scripts on tiny data sets shaped as AudioSet-strong, AudioGrounding and Clotho (ESC-50:
    the test above) and two short training runs (the quickstart on the tests' corpus with the tiny text tower,
    batches of 4): every script succeeds, its in-process split gives the script's numbers, and the stages add
    up."""
    corpus = [f"synthetic.root={synthetic_corpus}", "synthetic.num_train=16", "synthetic.num_test=6",
              f"text_encoder_args.type={tiny_text_dir}", "text_encoder_args.pretrained=false",
              "data_args.batch_size=4"]
    report = main(["--preset", "tiny", "--tasks", tasks, "--clips", "sed=4,grounding=3,retrieval=3",
                   "--model-repeats", "1", "--train-steps", "1,3",
                   *[item for override in corpus for item in ("--train-set", override)],
                   "--workdir", str(tmp_path / "suite"), "--out", str(tmp_path / "suite.json")])
    scripts = set(tasks.split(",")) - {"train"}
    assert set(report["scripts"]) == scripts
    for task, run in report["scripts"].items():
        assert run["succeeded"], (task, run["runs"][-1]["stderr_tail"])
        assert run["metrics_match"], (task, run["runs"][-1]["result"], run["split"]["metrics"])
        stages = run["split"]["stages_s"]
        assert 0 < stages["audio_model"] <= stages["audio_embedding"] <= stages["evaluate"]
        assert run["split"]["decode_alone"]["clips"] == {"sed": 4, "grounding": 3, "retrieval": 3}[task]
    if "retrieval" in scripts:
        assert report["scripts"]["retrieval"]["split"]["num_clips"] == 3
    if "train" in tasks:
        assert report["training"]["s_per_step"] is not None and set(report["training"]["runs"]) == {"1", "3"}
    else:
        assert report["training"] is None
    if "grounding" in scripts:
        assert "zero_shot_grounding.py" in markdown(report)


@pytest.mark.slow
def test_detection_throughput_benchmark_tiny(tiny_config, synthetic_corpus, tmp_path):
    """benchmarks.detection (the throughput figures of docs/detection.md and docs/search.md) runs on a tiny model
    and the small corpus."""
    from benchmarks.detection import main as detection_main
    from tests.conftest import write_tiny_checkpoint

    result = detection_main(["throughput", "--ckpt", str(write_tiny_checkpoint(tiny_config, tmp_path)),
                             "--data", str(synthetic_corpus)])
    assert result["index_files_per_second"] > 0 and result["detect_real_time_factor_overlap_0.5"] > 0
    assert set(result["matmul_ms_per_query"]) == {"10000", "100000", "1000000"}


def test_detection_search_speed_tiny():
    """`benchmarks.detection search-speed` (docs/search.md's per-query table) on the tiny preset, 20 files."""
    from benchmarks.detection import main as detection_main

    result = detection_main(["search-speed", "--preset", "tiny", "--files", "20", "--queries", "2"])
    assert result["files"] == 20 and result["model"] == "tiny (random weights)"
    for part in ("text_embedding", "page_data_rank_clip", "page_data_rank_frame", "http_rank_clip",
                 "search_query_rank_clip"):
        assert result[part]["wall"] > 0 and result[part]["cpu"] >= 0, part


def test_detection_search_scale_small():
    """`benchmarks.detection search-scale` (docs/search.md's approximate-index table) at 20,000 clustered rows:
    scanning every list finds the exact top 10; fewer lists find fewer."""
    from benchmarks.detection import main as detection_main
    from tools.detect.approximate import number_of_lists

    lists = number_of_lists(20_000)
    result = detection_main(["search-scale", "--rows", "20000", "--embed-size", "32", "--queries", "5",
                             "--nprobe", "1", str(lists), "--clustered"])
    assert result["lists"] == lists and result["train_seconds"] >= 0 and result["add_seconds"] >= 0
    assert result[f"nprobe_{lists}"]["recall_at_10"] == 1.0 and result[f"nprobe_{lists}"]["median_ms"] > 0
    assert result["nprobe_1"]["recall_at_10"] < 1.0


def test_scripts_benchmark_reports_the_median_split_run():
    from benchmarks.scripts import median_split, parse_args

    def split(evaluate: float) -> dict:
        return {"num_clips": 10, "model_alone": {"s_per_clip": 0.09}, "decode_alone": {"s_per_clip": 0.01},
                "text_alone_s": 0.0, "stages_s": {"evaluate": evaluate}}

    runs = [split(1.2), split(1.0), split(1.1), split(1.3)]
    ratio, floor, chosen = median_split(runs)
    assert floor == pytest.approx(1.0) and ratio == pytest.approx(1.1) and chosen is runs[2]
    row = markdown({"scripts": {"sed": {"split": {**chosen, "script": "zero_shot_sed.py", "batch_size": 4,
                                                  "num_workers": 0, "torch_threads": 2, "device": "cpu",
                                                  "stages_s": dict.fromkeys(STAGES, 1.0)},
                                        "wall_s_median": 5.0, "clips_per_s": 2.0, "evaluation_over_floor": ratio,
                                        "evaluation_over_floor_all": [1.2, 1.0, 1.1, 1.3]}},
                     "python_startup_s": 0.05}).splitlines()[2]
    assert row.endswith("| 1.100 (1.200, 1.000, 1.100, 1.300) |")
    with pytest.raises(SystemExit):
        parse_args(["--split-repeats", "0"])
