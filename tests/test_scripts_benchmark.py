"""Smoke test of the end-to-end benchmark of zero_shot_clas.py (benchmarks/scripts.py), tiny preset."""

from __future__ import annotations

import csv
import json

from benchmarks.scripts import ESC50_CATEGORIES, main, markdown


def test_scripts_benchmark_tiny(tmp_path):
    out = tmp_path / "report.json"
    report = main(["--preset", "tiny", "--clips", "10", "--repeats", "1", "--model-repeats", "1",
                   "--workdir", str(tmp_path / "work"), "--out", str(out)])
    assert json.loads(out.read_text())["settings"]["clips"] == 10

    rows = list(csv.DictReader(open(tmp_path / "work" / "ESC-50-master" / "meta" / "esc50.csv")))
    assert list(rows[0]) == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert [row["category"] for row in rows] == list(ESC50_CATEGORIES[:10])
    assert all(row["filename"] == f"{row['fold']}-{row['src_file']}-A-{row['target']}.wav" for row in rows)

    assert set(report) >= {"settings", "machine", "python_startup_s", "script", "split", "accuracy_matches",
                           "reference"}
    script = report["script"]
    assert script["succeeded"] and [run["returncode"] for run in script["runs"]] == [0]
    assert script["command"][1] == "zero_shot_clas.py"
    assert script["accuracy_percent"] is not None
    assert script["accuracy_percent"] == report["split"]["accuracy_percent"]
    assert report["accuracy_matches"]
    split = report["split"]
    assert split["num_clips"] == 10
    assert set(split["stages_s"]) == {"import", "config_and_model_load", "evaluate", "audio_embedding",
                                      "audio_model", "audio_waiting_for_loader", "text_embedding", "metrics",
                                      "other_csv_prompts"}
    assert split["decode_alone"]["clips"] == 10
    assert split["model_alone"]["batch_size"] == split["batch_size"]
    assert "zero_shot_clas.py, wall" in markdown(report)
