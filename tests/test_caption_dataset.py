"""WavCaps json reading, blacklist, caption preprocessing, the training dataset and its collate."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_handling.audio_io import AudioReadError
from data_handling.caption_dataset import (
    CaptionAudioDataset,
    CaptionItem,
    check_audio_files,
    collate_captions,
    read_wavcaps_jsons,
)
from data_handling.text_preprocess import preprocess_caption

RATE = 8000  # small files, fast tests


def write_json(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def write_noise(path: Path, seconds: float, rate: int = RATE, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, round(seconds * rate)).astype(np.float32)
    sf.write(path, noise, rate, subtype="FLOAT")
    return path


def wavcaps(entries: list[dict], per_audio: int = 1) -> dict:
    return {"num_captions_per_audio": per_audio, "data": entries}


# ----------------------------------------------------------------------------------------------------
# Caption preprocessing
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("A dog barks, then a car passes.", "a dog barks then a car passes"),
    ('  Someone\u2019s "loud" HIGH-pitched   whistle!?  ', "someone's loud high pitched whistle"),
    ("'Quoted' dogs' bark; (x) [y] {z} a/b a\\b a_b a*b a|b", "quoted dogs bark x y z a b a b a b a b a b"),
    ("Rain at 10.5 kHz: don't stop", "rain at 10 5 khz don't stop"),
    ("Ça VA\tbien\n", "ça va bien"),
    ("...", ""),
])
def test_preprocess_caption(raw, expected):
    assert preprocess_caption(raw) == expected


def test_preprocess_caption_rejects_non_strings():
    with pytest.raises(TypeError, match="str"):
        preprocess_caption(None)


# ----------------------------------------------------------------------------------------------------
# Json reading and blacklist
# ----------------------------------------------------------------------------------------------------
def test_single_and_multi_caption_entries(tmp_path):
    first = write_json(tmp_path / "a" / "first.json", wavcaps([
        {"id": "c0", "audio": "audio/c0.wav", "caption": "One.", "duration": 3.0},
        {"id": "c1", "audio": "audio/c1.wav", "caption": ["Two a", "Two b", "Two c"], "duration": 12.5},
    ]))
    second = write_json(tmp_path / "b" / "second.json", wavcaps([
        {"id": "c2", "audio": str(tmp_path / "abs" / "c2.flac"), "caption_1": "x", "caption_2": "y",
         "duration": 7},
    ], per_audio=2))
    items = read_wavcaps_jsons([str(first), second])
    assert [item.clip_index for item in items] == [0, 1, 1, 1, 2, 2]
    assert [item.caption for item in items] == ["One.", "Two a", "Two b", "Two c", "x", "y"]
    assert [item.clip_id for item in items] == ["c0", "c1", "c1", "c1", "c2", "c2"]
    assert items[1].duration == 12.5 and isinstance(items[4].duration, float)
    assert items[0].audio_path == tmp_path / "a" / "audio" / "c0.wav"  # relative to the json's folder
    assert items[4].audio_path == tmp_path / "abs" / "c2.flac"  # absolute paths are kept


def test_relative_paths_with_audio_root(tmp_path):
    path = write_json(tmp_path / "meta" / "train.json",
                      wavcaps([{"id": "c0", "audio": "sub/c0.wav", "caption": "x", "duration": 1.0}]))
    root = tmp_path / "data_root"
    items = read_wavcaps_jsons([path], audio_root=str(root))
    assert items[0].audio_path == root / "sub" / "c0.wav"


def test_missing_duration_read_from_header(tmp_path):
    write_noise(tmp_path / "c0.wav", 1.25)
    path = write_json(tmp_path / "t.json", wavcaps([{"id": "c0", "audio": "c0.wav", "caption": "x"}]))
    assert read_wavcaps_jsons([path])[0].duration == pytest.approx(1.25)


def _three_clips(tmp_path: Path) -> Path:
    return write_json(tmp_path / "train.json", wavcaps([
        {"id": "keep", "audio": "audio/keep.wav", "caption": "a", "duration": 1.0},
        {"id": "Yid_listed", "audio": "audio/x.wav", "caption": ["b", "c"], "duration": 1.0},
        {"id": "other", "audio": "audio/stem_listed.flac", "caption": "d", "duration": 1.0},
    ]))


def test_blacklist_file_by_id_and_stem(tmp_path, caplog):
    blacklist = write_json(tmp_path / "bl.json", {"AudioSet": ["Yid_listed"], "FreeSound": ["stem_listed"]})
    with caplog.at_level(logging.INFO, logger="data_handling.caption_dataset"):
        items = read_wavcaps_jsons([_three_clips(tmp_path)], blacklist=blacklist)
    assert [item.clip_id for item in items] == ["keep"]
    assert items[0].clip_index == 0
    assert "dropped 3 captions of 2 clips" in caplog.text


def test_blacklist_folder_of_lists_and_dicts(tmp_path):
    folder = tmp_path / "blacklists"
    write_json(folder / "one.json", ["Yid_listed"])
    write_json(folder / "two.json", {"BBC": ["stem_listed"]})
    (folder / "notes.txt").write_text("ignored")
    items = read_wavcaps_jsons([_three_clips(tmp_path)], blacklist=folder)
    assert [item.clip_id for item in items] == ["keep"]


def test_missing_json_and_blacklist_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        read_wavcaps_jsons([tmp_path / "nothere.json"])
    with pytest.raises(FileNotFoundError, match="nobl.json"):
        read_wavcaps_jsons([_three_clips(tmp_path)], blacklist=tmp_path / "nobl.json")


@pytest.mark.parametrize("entry, message", [
    ({"id": "bad", "caption": "x", "duration": 1.0}, "'audio'"),
    ({"id": "bad", "audio": "a.wav", "duration": 1.0}, "caption"),
    ({"id": "bad", "audio": "a.wav", "caption": ["ok", 3], "duration": 1.0}, "non-empty string"),
    ({"id": "bad", "audio": "a.wav", "caption": [], "duration": 1.0}, "caption"),
    ({"id": "bad", "audio": "a.wav", "caption": "x", "duration": "long"}, "duration"),
    ({"id": "bad", "audio": "a.wav", "caption": "x", "duration": -1}, "duration"),
])
def test_malformed_entry_names_file_and_entry(tmp_path, entry, message):
    good = {"id": "good", "audio": "g.wav", "caption": "x", "duration": 1.0}
    path = write_json(tmp_path / "broken.json", wavcaps([good, entry]))
    with pytest.raises(ValueError, match=message) as error:
        read_wavcaps_jsons([path])
    assert "broken.json" in str(error.value) and "data[1]" in str(error.value) and "'bad'" in str(error.value)


def test_malformed_file_layout(tmp_path):
    with pytest.raises(ValueError, match="'data' list"):
        read_wavcaps_jsons([write_json(tmp_path / "list.json", [1, 2])])
    (tmp_path / "text.json").write_text("{not json")
    with pytest.raises(ValueError, match="text.json"):
        read_wavcaps_jsons([tmp_path / "text.json"])


def test_check_audio_files_reports_missing(tmp_path, caplog):
    present = write_noise(tmp_path / "here.wav", 0.1)
    items = [CaptionItem(present, "x", 0, 0.1, "here")]
    items += [CaptionItem(tmp_path / f"gone{k}.wav", "x", k + 1, 1.0, f"g{k}") for k in range(7)]
    items.append(CaptionItem(tmp_path / "gone0.wav", "second caption", 1, 1.0, "g0"))
    with caplog.at_level(logging.WARNING, logger="data_handling.caption_dataset"):
        missing = check_audio_files(items, max_report=2)
    assert missing == [tmp_path / f"gone{k}.wav" for k in range(7)]
    assert "7 of 8 audio files are missing" in caplog.text and "gone1.wav" in caplog.text
    assert "gone2.wav" not in caplog.text and "5 more" in caplog.text


# ----------------------------------------------------------------------------------------------------
# Dataset and collate
# ----------------------------------------------------------------------------------------------------
@pytest.fixture
def clips(tmp_path) -> list[CaptionItem]:
    """A 3 s clip, a 1 s clip, a missing file."""
    long_clip = write_noise(tmp_path / "long.wav", 3.0, seed=1)
    short_clip = write_noise(tmp_path / "short.wav", 1.0, seed=2)
    return [CaptionItem(long_clip, "A LONG, noisy clip.", 0, 3.0, "long"),
            CaptionItem(short_clip, "Short!", 1, 1.0, "short"),
            CaptionItem(tmp_path / "missing.wav", "gone", 2, 2.0, "missing")]


def test_item_fields_and_random_crop(clips):
    dataset = CaptionAudioDataset(clips, sample_rate=RATE, max_length=2.0, train=True)
    sample = dataset[0]
    assert sample["audio"].dtype == torch.float32 and sample["audio"].shape == (2 * RATE,)
    assert sample["caption"] == "a long noisy clip" and sample["idx"] == 0 and sample["path"].endswith("long.wav")
    assert dataset[1]["audio"].shape == (RATE,)  # shorter than max_length: whole
    assert dataset.durations == [3.0, 1.0, 2.0]


def test_crop_is_a_window_of_the_file_and_follows_torch_seed(clips):
    full = CaptionAudioDataset(clips, RATE, max_length=0)[0]["audio"]
    assert full.shape == (3 * RATE,)
    dataset = CaptionAudioDataset(clips, RATE, max_length=2.0, train=True)
    torch.manual_seed(123)
    first = [dataset[0]["audio"] for _ in range(4)]
    torch.manual_seed(123)
    second = [dataset[0]["audio"] for _ in range(4)]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    offsets = set()
    for crop in first:
        offset = int(torch.nonzero(full == crop[0])[0])
        assert torch.equal(full[offset:offset + 2 * RATE], crop)
        offsets.add(offset)
    assert len(offsets) > 1  # the offset is random


def test_eval_mode_keeps_the_start(clips):
    dataset = CaptionAudioDataset(clips, RATE, max_length=2.0, train=False)
    full = CaptionAudioDataset(clips, RATE, max_length=0)[0]["audio"]
    assert torch.equal(dataset[0]["audio"], full[:2 * RATE])


def test_missing_file_skipped_or_fatal(clips, caplog):
    with caplog.at_level(logging.WARNING, logger="data_handling.caption_dataset"):
        assert CaptionAudioDataset(clips, RATE)[2] is None
    assert "missing.wav" in caplog.text
    with pytest.raises(AudioReadError, match="missing.wav"):
        CaptionAudioDataset(clips, RATE, strict=True)[2]


def test_corrupt_file_skipped(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF garbage" * 20)
    dataset = CaptionAudioDataset([CaptionItem(corrupt, "x", 0, 1.0, "c")], RATE)
    assert dataset[0] is None and dataset.num_failures == 1


def test_collate_pads_and_counts_skips(clips):
    dataset = CaptionAudioDataset(clips, RATE, max_length=2.0)
    batch = collate_captions([dataset[1], dataset[2], dataset[0]])
    assert batch["audio"].shape == (2, 2 * RATE) and batch["audio"].dtype == torch.float32
    assert batch["lengths"].tolist() == [RATE, 2 * RATE] and batch["lengths"].dtype == torch.long
    assert torch.count_nonzero(batch["audio"][0, RATE:]) == 0
    assert torch.equal(batch["audio"][0, :RATE], dataset[1]["audio"])
    assert batch["idx"].tolist() == [1, 0] and batch["idx"].dtype == torch.long
    assert batch["captions"] == ["short", "a long noisy clip"]
    assert [Path(p).name for p in batch["paths"]] == ["short.wav", "long.wav"]
    assert batch["num_skipped"] == 1


def test_collate_all_skipped():
    batch = collate_captions([None, None])
    assert batch["audio"].shape == (0, 0) and batch["num_skipped"] == 2
    assert batch["captions"] == [] and batch["idx"].shape == (0,) and batch["lengths"].shape == (0,)


def test_dataloader_with_workers_is_seeded_by_torch(clips):
    """Workers draw their crops from torch's RNG, seeded from the main process: a reseed repeats them."""
    dataset = CaptionAudioDataset(clips, RATE, max_length=2.0)
    pickle.dumps(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=1, collate_fn=collate_captions)
    torch.manual_seed(7)
    first = list(loader)
    torch.manual_seed(7)
    second = list(loader)
    assert len(first) == 1 and first[0]["num_skipped"] == 1 and first[0]["audio"].shape == (2, 2 * RATE)
    assert torch.equal(first[0]["audio"], second[0]["audio"])


def test_negative_max_length_rejected(clips):
    with pytest.raises(ValueError, match="max_length"):
        CaptionAudioDataset(clips, RATE, max_length=-1)
