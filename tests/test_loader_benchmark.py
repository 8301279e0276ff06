"""The loader benchmark runs end to end on a few short files and prints its tables."""

from __future__ import annotations

import json

from benchmarks import loader


def test_loader_benchmark_small_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loader, "wavcaps_like_durations", lambda count, seed: [3.0, 12.5, 10.0, 1.5][:count])
    monkeypatch.setattr(loader, "SINGLE_FILE_SECONDS", (2.0, 14.0))
    out = tmp_path / "run.json"
    assert loader.main(["--workdir", str(tmp_path / "work"), "--clips", "4", "--batch-size", "2", "--batches", "3",
                        "--repeats", "1", "--out", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert list(report["ways"]) == list(loader.WAYS)
    for figures in report["ways"].values():
        assert figures["clips"] == 6 and figures["clips_per_s"] > 0
    assert [row["file_seconds"] for row in report["single_files"]] == [2.0, 14.0]
    printed = capsys.readouterr().out
    assert "| shards, indexed |" in printed and "workers for paper size, bf16, compiled (H200)" in printed
    assert loader.main(["--table", str(out)]) == 0
    assert capsys.readouterr().out.strip() == printed.strip()
    needed = loader.workers_needed(100.0)
    assert needed == {"paper size, bf16, eager (H200)": 6, "paper size, bf16, compiled (H200)": 19}
