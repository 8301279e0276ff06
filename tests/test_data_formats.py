"""Training data in other formats than WavCaps json (tables, labelled folders, Hugging Face datasets): the same
rows and batches as an equivalent WavCaps json, caption templates per epoch, and the bad inputs."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from data_handling.caption_dataset import CaptionAudioDataset, collate_captions
from data_handling.caption_sources import read_json_files, source_format
from data_handling.samplers import DurationBucketBatchSampler
from data_handling.source_records import SourceOptions, template_caption
from data_handling.training_items import prepare_training_items

RATE = 8000
CLIPS = {"a": 3.0, "b": 12.0, "c": 4.5, "d": 7.0, "e": 11.0, "f": 2.0}  # id -> seconds
CAPTIONS = {"a": ["a dog barks.", "a dog is barking"], "b": ["rain falls"], "c": ["a bell rings", "bells", "ding"],
            "d": ["wind blows"], "e": ["a car passes", "traffic"], "f": ["silence"]}
LABELS = {"a": "dog_bark", "b": "rain", "c": "dog_bark", "d": "rain", "e": "rain", "f": "dog_bark"}


def write_noise(path: Path, seconds: float, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, round(seconds * RATE)).astype(np.float32)
    sf.write(path, noise, RATE, subtype="FLOAT")
    return path


def write_table(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writerows([header, *rows])
    return path


@dataclass
class Corpus:
    root: Path
    reference_json: Path  # WavCaps json with the captions
    labels_json: Path  # WavCaps json with the label captions


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    for seed, (clip, seconds) in enumerate(CLIPS.items()):
        write_noise(tmp_path / "audio" / f"{clip}.wav", seconds, seed)
    reference = {"num_captions_per_audio": 1, "data": [
        {"id": clip, "audio": f"audio/{clip}.wav", "caption": CAPTIONS[clip], "duration": seconds}
        for clip, seconds in CLIPS.items()]}
    (tmp_path / "reference.json").write_text(json.dumps(reference))
    ordered = sorted(CLIPS, key=lambda clip: (LABELS[clip], clip))  # the labelled folder's order
    labels = {"num_captions_per_audio": 1, "data": [
        {"id": clip, "audio": f"audio/{clip}.wav", "caption": f"{LABELS[clip].replace('_', ' ')} can be heard",
         "duration": CLIPS[clip]} for clip in ordered]}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    return Corpus(tmp_path, tmp_path / "reference.json", tmp_path / "labels.json")


def row_view(items) -> list[tuple]:
    return [(item.clip_id, item.caption, item.clip_index, round(item.duration, 6), item.audio_path.resolve())
            for item in items]


def repeated_rows_csv(corpus: Corpus, with_duration: bool = True) -> Path:
    header = ["audio", "caption"] + (["duration"] if with_duration else [])
    rows = [[f"audio/{clip}.wav", caption] + ([seconds] if with_duration else [])
            for clip, seconds in CLIPS.items() for caption in CAPTIONS[clip]]
    return write_table(corpus.root / "captions.csv", header, rows)


def numbered_columns_tsv(corpus: Corpus) -> Path:
    rows = [[f"audio/{clip}.wav", *CAPTIONS[clip], *[""] * (3 - len(CAPTIONS[clip]))] for clip in CLIPS]
    return write_table(corpus.root / "captions.tsv", ["audio", "caption", "caption_2", "caption_3"], rows)


def hf_dataset(corpus: Corpus, as_bytes: bool, labelled: bool = False, parquet: bool = False) -> Path:
    import datasets

    audio = [{"bytes": (corpus.root / f"audio/{clip}.wav").read_bytes() if as_bytes else None,
              "path": f"{clip}.wav" if as_bytes else str(corpus.root / f"audio/{clip}.wav")} for clip in CLIPS]
    columns: dict[str, list] = {"audio": audio, "id": list(CLIPS)}
    if labelled:
        classes = sorted(set(LABELS.values()))
        columns["label"] = [classes.index(LABELS[clip]) for clip in CLIPS]
    else:
        columns["caption"] = [CAPTIONS[clip] for clip in CLIPS]
    dataset = datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio())
    if labelled:
        dataset = dataset.cast_column("label", datasets.ClassLabel(names=sorted(set(LABELS.values()))))
    target = corpus.root / ("hf.parquet" if parquet else "hf_saved")
    if parquet:
        dataset.to_parquet(str(target))
    else:
        dataset.save_to_disk(str(target))
    return target


@pytest.mark.slow
@pytest.mark.parametrize("make", ["repeated_rows_csv", "repeated_rows_no_duration", "numbered_columns_tsv",
                                  "hf_bytes", "hf_paths_parquet"])
def test_caption_formats_give_the_rows_of_the_wavcaps_json(corpus, make):
    path = {"repeated_rows_csv": lambda: repeated_rows_csv(corpus),
            "repeated_rows_no_duration": lambda: repeated_rows_csv(corpus, with_duration=False),
            "numbered_columns_tsv": lambda: numbered_columns_tsv(corpus),
            "hf_bytes": lambda: hf_dataset(corpus, as_bytes=True),
            "hf_paths_parquet": lambda: hf_dataset(corpus, as_bytes=False, parquet=True)}[make]()
    expected = row_view(prepare_training_items([corpus.reference_json]))
    rows = prepare_training_items([path])
    if make == "hf_bytes":  # read from the cache the bytes were written to once, beside the dataset
        assert all(item.audio_path.parent == corpus.root / "hf_saved.audio" for item in rows)
        assert [sf.read(item.audio_path)[0].tolist() for item in rows[:1]] == \
               [sf.read(corpus.root / "audio/a.wav")[0].tolist()]
        expected = [row[:4] for row in expected]
        rows_view = [row[:4] for row in row_view(rows)]
    else:
        rows_view = row_view(rows)
    assert rows_view == expected


@pytest.mark.parametrize("make", ["folder", "labels_csv", "hf_classlabel"])
def test_labelled_formats_give_the_rows_of_the_wavcaps_json(corpus, make):
    if make == "folder":
        path = corpus.root / "classes"
        for clip, label in LABELS.items():
            write_noise(path / label / f"{clip}.wav", CLIPS[clip], list(CLIPS).index(clip))
        expected = row_view(prepare_training_items([corpus.labels_json]))
        expected = [row[:4] for row in expected]
        assert [row[:4] for row in row_view(prepare_training_items([path]))] == expected
        return
    ordered = sorted(CLIPS, key=lambda clip: (LABELS[clip], clip))
    if make == "labels_csv":
        path = write_table(corpus.root / "labels.csv", ["audio", "label"],
                           [[f"audio/{clip}.wav", LABELS[clip]] for clip in ordered])
        assert row_view(prepare_training_items([path])) == row_view(prepare_training_items([corpus.labels_json]))
    else:
        path = hf_dataset(corpus, as_bytes=False, labelled=True)
        by_id = {row[0]: row[1:4] for row in row_view(prepare_training_items([corpus.labels_json]))}
        rows = row_view(prepare_training_items([path]))
        assert [(row[0], row[1], row[3]) for row in rows] == [(clip, by_id[clip][0], by_id[clip][2]) for clip in CLIPS]


def test_several_labels_of_one_clip(corpus):
    path = write_table(corpus.root / "multi.tsv", ["audio", "label"],
                       [["audio/a.wav", "dog_bark;rain"], ["audio/b.wav", "rain"], ["audio/a.wav", "wind"]])
    rows = prepare_training_items([path])
    assert [(row.clip_id, row.caption, row.labels) for row in rows] == [
        ("a", "dog bark and rain and wind can be heard", ("dog bark", "rain", "wind")),
        ("b", "rain can be heard", ("rain",))]


def batches(items, seed: int, epoch: int = 0, templates=()) -> list[dict]:
    dataset = CaptionAudioDataset(items, sample_rate=RATE, max_length=5.0, caption_templates=templates, seed=seed)
    dataset.set_epoch(epoch)
    sampler = DurationBucketBatchSampler(dataset.durations, batch_size=2, shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    torch.manual_seed(seed)
    return [collate_captions([dataset[index] for index in batch]) for batch in sampler]


def test_a_table_gives_the_batches_of_the_wavcaps_json(corpus):
    from_json = batches(prepare_training_items([corpus.reference_json]), seed=3)
    from_table = batches(prepare_training_items([repeated_rows_csv(corpus)]), seed=3)
    assert len(from_json) == len(from_table) > 2
    for left, right in zip(from_json, from_table, strict=True):
        assert left["captions"] == right["captions"] and torch.equal(left["idx"], right["idx"])
        assert torch.equal(left["audio"], right["audio"])


def test_caption_templates_are_drawn_per_clip_and_epoch_and_repeat_on_resume(corpus):
    path = write_table(corpus.root / "labels.csv", ["audio", "label"],
                       [[f"audio/{clip}.wav", LABELS[clip]] for clip in CLIPS])
    templates = ["{} can be heard", "the sound of {}", "{}"]
    items = prepare_training_items([path], options=SourceOptions(tuple(templates)))
    dataset = CaptionAudioDataset(items, sample_rate=RATE, caption_templates=templates, seed=5)
    drawn = {}
    for epoch in range(4):
        dataset.set_epoch(epoch)
        drawn[epoch] = [dataset.caption(index) for index in range(len(items))]
    assert all(caption in {label_caption.replace("{}", item.labels[0]) for label_caption in templates}
               for item, caption in zip(items, drawn[0], strict=True))
    assert len({tuple(captions) for captions in drawn.values()}) > 1  # epochs differ
    assert len({caption.split(" ")[-1] for captions in drawn.values() for caption in captions}) > 1
    resumed = CaptionAudioDataset(items, sample_rate=RATE, caption_templates=templates, seed=5)
    torch.manual_seed(123)
    np.random.seed(7)  # no running RNG state takes part
    resumed.set_epoch(2)
    assert [resumed.caption(index) for index in range(len(items))] == drawn[2]
    assert drawn[2][1] == template_caption(items[1].labels, templates, 5, 2, 1)


def test_source_formats_are_told_apart(corpus):
    assert source_format(corpus.reference_json) == "wavcaps"
    assert source_format(repeated_rows_csv(corpus)) == "table"
    assert source_format(numbered_columns_tsv(corpus)) == "table"
    assert source_format(hf_dataset(corpus, as_bytes=False)) == "hf_dataset"
    assert source_format(corpus.root / "audio") == "labelled_folder"


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_audio_is_skipped_and_counted_or_an_error_when_strict(corpus, caplog):
    path = write_table(corpus.root / "t.csv", ["audio", "caption"],
                       [["audio/a.wav", "x"], ["audio/gone.wav", "y"], ["audio/b.wav", "z"]])
    (corpus.root / "broken.wav").write_bytes(b"not audio at all")
    path_broken = write_table(corpus.root / "u.csv", ["audio", "caption"], [["broken.wav", "q"], ["audio/c.wav", "r"]])
    contents = read_json_files([path, path_broken])
    assert [item.clip_id for part in contents for item in part.items] == ["a", "b", "c"]
    assert [part.skipped for part in contents] == [{"audio file missing or unreadable": 1}] * 2
    assert "gone.wav" in caplog.text and "broken.wav" in caplog.text
    with pytest.raises(ValueError, match=r"t.csv, row 3: audio file missing or unreadable.*strict"):
        read_json_files([path], options=SourceOptions(strict=True))


def test_empty_captions_are_skipped_and_counted(corpus):
    path = write_table(corpus.root / "t.csv", ["audio", "caption"],
                       [["audio/a.wav", "x"], ["audio/b.wav", "  "], ["audio/c.wav", "z"], ["audio/a.wav", ""]])
    labels = write_table(corpus.root / "l.csv", ["audio", "label"], [["audio/a.wav", "dog"], ["audio/b.wav", ";"]])
    captions, labelled = read_json_files([path, labels])
    assert [(item.clip_id, item.caption) for item in captions.items] == [("a", "x"), ("c", "z")]
    assert captions.skipped == {"empty caption": 2} and labelled.skipped == {"empty caption": 1}
    assert captions.num_clips == 2 and labelled.items[0].clip_index == 2


@pytest.mark.parametrize("header, expected", [(["file", "caption"], "audio"), (["audio", "text"], "caption")])
def test_a_missing_column_is_one_line_naming_file_and_columns(corpus, header, expected):
    path = write_table(corpus.root / "t.csv", header, [["audio/a.wav", "x"]])
    with pytest.raises(ValueError) as error:
        read_json_files([path])
    message = str(error.value)
    assert "\n" not in message and str(path) in message and f"found columns {header}" in message


def test_a_dataset_without_its_columns_is_an_error(corpus):
    import datasets

    path = corpus.root / "ds"
    datasets.Dataset.from_dict({"audio": ["audio/a.wav"], "text": ["x"]}).save_to_disk(str(path))
    with pytest.raises(ValueError, match=r"ds: expected an audio column and a 'caption' or 'label' column; "
                                         r"found columns \['audio', 'text'\]"):
        read_json_files([path])


def test_a_labels_folder_needs_two_classes(corpus):
    write_noise(corpus.root / "one" / "only" / "a.wav", 1.0)
    with pytest.raises(ValueError, match="found 1 class folder.*at least two classes"):
        read_json_files([corpus.root / "one"])


def test_bad_input_exits_2_from_check_data_and_pretrain(corpus, tmp_path, capsys):
    import pretrain
    from tools.check_data import main as check_data_main

    path = write_table(corpus.root / "t.csv", ["file", "caption"], [["audio/a.wav", "x"]])
    out = tmp_path / "out"
    assert check_data_main(["--json", str(path), "--out", str(out / "report.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "found columns ['file', 'caption']" in error
    assert len(error.splitlines()) == 1 and not out.exists()
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"json_files": [str(path)], "output_dir": str(out), "device": "cpu"}))
    assert pretrain.main(["-c", str(config)]) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and "found columns ['file', 'caption']" in error_lines[0]
    assert not out.exists()


def test_caption_templates_are_validated_by_the_config():
    from tools.config import ConfigError, parse_config

    assert parse_config({"data_args": {"caption_templates": ["{}", "a {} sound"]}}).data_args.caption_templates == \
        ["{}", "a {} sound"]
    with pytest.raises(ConfigError, match="caption_templates.*'{}' once"):
        parse_config({"data_args": {"caption_templates": ["no slot"]}})


def test_check_data_reads_a_table(corpus, tmp_path, capsys):
    from tools.check_data import main as check_data_main

    table = repeated_rows_csv(corpus)
    with open(table, "a") as handle:
        handle.write("audio/gone.wav,lost,1.0\n")
    assert check_data_main(["--json", str(table), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["clips"] == len(CLIPS) and report["totals"]["captions"] == 10
    assert report["json_files"][0]["skipped"] == {"audio file missing or unreadable": 1}
    assert "skipped in " in capsys.readouterr().out


def test_bytes_are_written_once(corpus):
    path = hf_dataset(corpus, as_bytes=True)
    first = prepare_training_items([path])
    stamps = {item.audio_path: item.audio_path.stat().st_mtime_ns for item in first}
    second = prepare_training_items([path])
    assert {item.audio_path: item.audio_path.stat().st_mtime_ns for item in second} == stamps
    assert io.BytesIO  # bytes decoded by soundfile from the cache files


def test_a_dataset_dict_gives_its_train_split_and_string_labels(corpus):
    import datasets

    train = datasets.Dataset.from_dict({"audio": [str(corpus.root / "audio/a.wav"), str(corpus.root / "audio/b.wav")],
                                        "label": ["dog_bark;rain", "rain"]})
    test = datasets.Dataset.from_dict({"audio": [str(corpus.root / "audio/c.wav")], "label": ["wind"]})
    datasets.DatasetDict({"test": test, "train": train}).save_to_disk(str(corpus.root / "dd"))
    rows = prepare_training_items([corpus.root / "dd"])
    assert [(row.clip_id, row.caption) for row in rows] == [("a", "dog bark and rain can be heard"),
                                                            ("b", "rain can be heard")]
    datasets.DatasetDict({"test": test, "dev": train}).save_to_disk(str(corpus.root / "dd2"))
    with pytest.raises(ValueError, match=r"splits \['test', 'dev'\] and none named 'train'"):
        prepare_training_items([corpus.root / "dd2"])
