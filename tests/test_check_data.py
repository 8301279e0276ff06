"""python -m tools.check_data: the report on the training data, its table and its exit status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from data_handling.training_items import prepare_training_items
from tests.test_caption_dataset import WavCapsFixture, make_wavcaps_fixture, wavcaps, write_json, write_noise
from tests.warm_python import run_python
from tools.check_data import main

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def corpus(tmp_path) -> WavCapsFixture:
    return make_wavcaps_fixture(tmp_path)


def data_args(corpus: WavCapsFixture, out: Path, *extra: str) -> list[str]:
    return ["--json", *corpus.json_files, "--blacklist", str(corpus.blacklist), "--audio-root",
            str(corpus.audio_root), "--set", "data_args.batch_size=2", "--out", str(out), *extra]


def test_report_counts_as_training_reads(corpus, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(data_args(corpus, out)) == 0
    report = json.loads(out.read_text())
    rows = [(Path(record["path"]).parent.name, record["blacklist_list"], record["clips"], record["captions"],
             record["clips_blacklisted"], record["missing_files"]) for record in report["json_files"]]
    assert rows == [("FreeSound", "FreeSound", 1, 1, 1, 0), ("SoundBible", None, 1, 1, 0, 0),
                    ("AudioSet_SL", "AudioSet", 1, 1, 1, 0), ("Clotho", "FreeSound", 1, 5, 1, 0),
                    ("AudioCaps", None, 1, 2, 0, 0), ("BBC_Sound_Effects", None, 2, 2, 0, 1)]
    totals = report["totals"]
    assert [totals[key] for key in ("clips", "captions", "clips_blacklisted", "missing_files")] == [7, 12, 3, 1]
    assert totals["duration_histogram"] == {"<5": 1, "5-10": 3, "10-15": 1, "15-20": 0, "20-25": 5, "25-30": 0,
                                            ">=30": 1}
    assert totals["batches_per_epoch"] == 3  # floor(3 / 2) + floor(5 / 2)
    assert "unreadable_files" not in totals and report["ambiguous_file_names"] == 0
    assert "gone.flac" in report["json_files"][-1]["missing_examples"][0]
    found = prepare_training_items(corpus.json_files, blacklist=corpus.blacklist, audio_root=corpus.audio_root,
                                   skip_missing=True)
    assert sum(totals["duration_histogram"].values()) == len(found)
    printed = capsys.readouterr().out
    assert "bbc_final.json" in printed and "total" in printed and f"report: {out}" in printed
    assert "missing in" in printed and "--decode opens each header" in printed


def test_strict_and_decode(corpus, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(data_args(corpus, out, "--strict")) == 1  # one file missing
    assert "1 audio files missing or unreadable" in capsys.readouterr().err
    (corpus.audio_root / "AudioSet_SL_flac" / "Ydef.flac").write_bytes(b"not audio at all" * 10)
    assert main(data_args(corpus, out, "--decode")) == 0
    report = json.loads(out.read_text())
    assert [record["unreadable_files"] for record in report["json_files"]] == [0, 0, 1, 0, 0, 0]
    assert report["totals"]["unreadable_files"] == 1
    assert "Ydef.flac" in report["json_files"][2]["unreadable_examples"][0]
    assert "unreadable" in capsys.readouterr().out


def test_strict_passes_when_every_file_is_there(corpus, tmp_path):
    (corpus.audio_root / "BBC_Sound_Effects_flac" / "gone.flac").write_bytes(
        (corpus.audio_root / "BBC_Sound_Effects_flac" / "bbc1.flac").read_bytes())
    assert main(data_args(corpus, tmp_path / "r.json", "--strict", "--decode")) == 0


@pytest.mark.parametrize("breakage, message", [
    ("blacklist", "error: blacklist .*bl.json: expected"),
    ("json", "error: training json file not found: .*nothere.json"),
    ("nothing", "error: give a training YAML"),
])
def test_configuration_errors_exit_2(corpus, tmp_path, capsys, breakage, message):
    args = data_args(corpus, tmp_path / "r.json")
    if breakage == "blacklist":
        bad = tmp_path / "bl.json"
        bad.write_text(json.dumps(["100"]))
        args[args.index("--blacklist") + 1] = str(bad)
    elif breakage == "json":
        args.insert(1, str(tmp_path / "nothere.json"))
    else:
        args = ["--out", str(tmp_path / "r.json")]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert re.match(message, error)


@pytest.mark.slow
def test_command_line_with_a_yaml(corpus, tmp_path):
    config = {"json_files": corpus.json_files, "blacklist": str(corpus.blacklist), "output_dir": str(tmp_path),
              "data_args": {"audio_root": str(corpus.audio_root), "skip_missing": True}}
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = run_python(["-m", "tools.check_data", "-c", str(config_path)], cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"report: {tmp_path / 'check_data.json'}" in result.stdout
    report = json.loads((tmp_path / "check_data.json").read_text())
    assert report["totals"]["captions"] == 12 and report["batch_size"] == 128 and report["drop_last"] is True
    assert report["totals"]["batches_per_epoch"] == 0


@pytest.mark.slow
def test_command_line_never_pairs_soundbible_clips_with_freesound_files(tmp_path):
    """WavCaps' SoundBible json as shipped (sb_final.json, 1232 clips, "audio" the placeholder) in a folder
    that names nothing, beside FreeSound's json; under audio_root only FreeSound's audio, named 2218.wav and
    2219.flac like two SoundBible ids: every SoundBible clip is missing, FreeSound's are found."""
    root = tmp_path / "audio_root"
    write_noise(root / "FreeSound_flac" / "2218.wav", 0.1)
    write_noise(root / "FreeSound_flac" / "2219.flac", 0.1)
    soundbible = write_json(tmp_path / "downloads" / "sb_final.json", wavcaps([
        {"id": str(1500 + k), "audio": "wav_path", "caption": "a bell", "duration": 1.0} for k in range(1232)]))
    freesound = write_json(tmp_path / "downloads" / "FreeSound" / "fsd_final.json", wavcaps([
        {"id": "2218", "audio": "/mnt/data/FreeSound_flac/2218.wav", "caption": "rain", "duration": 1.0},
        {"id": "2219", "audio": "/mnt/data/FreeSound_flac/2219.flac", "caption": "wind", "duration": 1.0}]))
    out = tmp_path / "report.json"
    result = run_python(["-m", "tools.check_data", "--json", str(soundbible), str(freesound), "--audio-root",
                         str(root), "--out", str(out), "--strict"], cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 1, result.stderr  # --strict: files are missing
    assert "error: 1232 audio files missing or unreadable (--strict)" in result.stderr
    rows = {cells[0]: cells for cells in map(str.split, result.stdout.splitlines()) if cells and cells[0].endswith(".json")}
    assert rows[str(soundbible)][2:6] == ["1232", "1232", "0", "1232"]  # clips, captions, blacklisted, missing
    assert rows[str(freesound)][2:6] == ["2", "2", "0", "0"]
    assert "2 clips missing because their file name is only under another dataset's folders" in result.stdout
    assert re.search(r"missing in .*sb_final.json: 'wav_path' \(id '1500'\): no file named '1500.wav'", result.stdout)
    report = json.loads(out.read_text())
    assert [record["missing_files"] for record in report["json_files"]] == [1232, 0]
    listed = {record["id"]: record["reason"] for record in report["json_files"][0]["missing"]}
    assert len(listed) == 1232 and report["refused_other_dataset"] == 2
    assert listed["2218"].startswith("'2218.wav' is only under folders of FreeSound (not SoundBible)")
    assert listed["2219"].startswith("'2219.flac' is only under folders of FreeSound (not SoundBible)")


def test_empty_captions_are_reported(tmp_path, capsys):
    write_noise(tmp_path / "audio" / "a.flac", 0.1)
    path = write_json(tmp_path / "train.json", wavcaps([
        {"id": "a", "audio": "audio/a.flac", "caption": "", "duration": 0.1},
        {"id": "b", "audio": "audio/a.flac", "caption": " ", "duration": 0.1},
        {"id": "c", "audio": "audio/a.flac", "caption": "a dog", "duration": 0.1}]))
    out = tmp_path / "report.json"
    assert main(["--json", str(path), "--out", str(out), "--strict"]) == 0  # empty captions are no error
    report = json.loads(out.read_text())
    assert report["json_files"][0]["empty_captions"] == 2 and report["totals"]["empty_captions"] == 2
    printed = capsys.readouterr().out
    assert "empty captions" in printed.splitlines()[0]
    assert "2 empty captions: kept and trained on, as the reference" in printed


def test_the_quickstart_yaml_checks_its_synthetic_training_split(synthetic_corpus, tmp_path, capsys):
    config_path = tmp_path / "quickstart.yaml"
    config_path.write_text(yaml.safe_dump({"synthetic": {"root": str(synthetic_corpus)}, "output_dir": str(tmp_path),
                                           "data_args": {"batch_size": 4, "drop_last": False}}))
    assert main(["-c", str(config_path)]) == 0
    report = json.loads((tmp_path / "check_data.json").read_text())
    assert [record["path"] for record in report["json_files"]] == [str(synthetic_corpus / "train" / "train.json")]
    assert report["totals"]["clips"] == 16 and "incomplete batches kept" in capsys.readouterr().out
