"""Metadata files written with a UTF-8 byte order mark (as spreadsheet programs save csv) are read as the
reference reads them: with pandas, whose readers skip the mark, so the header check passes and the first
field is not "\ufeff..."."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_handling.eval_sets.classification import read_esc50, read_vggsound_test_csv
from data_handling.eval_sets.sed import read_sed_tsv
from data_handling.metadata_files import load_json
from tools.detect.inputs import collect_audio_files

BOM = "\ufeff"


def write_with_bom(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BOM + text, encoding="utf-8")
    return path


def test_csv_header_with_bom_as_pandas_reads_it(tmp_path):
    csv_path = write_with_bom(tmp_path / "meta" / "esc50.csv",
                              "filename,fold,target,category\n1-100-A-1.wav,1,1,rooster\n1-200-A-0.wav,2,0,dog\n")
    assert list(pd.read_csv(csv_path).columns)[0] == "filename"  # the reference's reader
    items, class_names = read_esc50(tmp_path, check_audio=False)
    assert class_names == ["dog", "rooster"]
    assert [item.audio_path.name for item in items] == list(pd.read_csv(csv_path)["filename"])


def test_tsv_headers_with_bom_as_pandas_reads_them(tmp_path):
    events = write_with_bom(tmp_path / "eval.tsv", "filename\tonset\toffset\tevent_label\na.wav\t0.5\t2.0\tdog\n")
    durations = write_with_bom(tmp_path / "durations.tsv", "filename\tduration\na.wav\t10.0\n")
    assert list(pd.read_csv(events, sep="\t").columns)[0] == "filename"
    annotations = read_sed_tsv(events, durations)
    assert annotations.ground_truth == {"a": [(0.5, 2.0, "dog")]} and annotations.durations == {"a": 10.0}


def test_headerless_csv_with_bom_keeps_its_first_file_name(tmp_path):
    csv_path = write_with_bom(tmp_path / "vggsound_test.csv", "abc_000030.mp4,dog barking\n")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "abc_000030.wav").write_bytes(b"")
    reference = pd.read_csv(csv_path, names=["filename", "class"])
    vggsound = read_vggsound_test_csv(csv_path, tmp_path / "audio")
    assert reference["filename"][0] == "abc_000030.mp4"
    assert [item.audio_path.name for item in vggsound.items] == ["abc_000030.wav"] and vggsound.num_missing == 0


def test_json_and_file_lists_with_bom(tmp_path):
    assert load_json(write_with_bom(tmp_path / "a.json", '{"data": []}'), "json", "") == {"data": []}
    listed = tmp_path / "clip.wav"
    listed.write_bytes(b"")
    assert collect_audio_files([write_with_bom(tmp_path / "files.txt", f"{listed}\n")]) == [listed]
