"""Training data: the reference's json and blacklist rules, audio path resolution, the dataset, collate.

The fixtures reproduce the real files' quirks: WavCaps "audio" values are absolute paths of the
authors' machine, SoundBible's are the placeholder "wav_path", Clotho items carry a relative "wav",
ids are strings, the blacklist is {"AudioSet": [...], "FreeSound": [...]}.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_handling.audio_io import AudioReadError
from data_handling.audio_paths import AudioPathResolver, datasets_named_by
from data_handling.blacklist import blacklist_key_for, read_blacklist
from data_handling.caption_dataset import CaptionAudioDataset, collate_captions
from data_handling.caption_rows import CaptionItem
from data_handling.caption_sources import read_json_files, read_wavcaps_jsons
from data_handling.training_items import MissingAudioFilesError, prepare_training_items, resolve_audio_paths

RATE = 8000  # small files, fast tests
FOREIGN = "/mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms"  # the authors' machine


def write_json(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def write_noise(path: Path, seconds: float, rate: int = RATE, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, round(seconds * rate)).astype(np.float32)
    sf.write(path, noise, rate, subtype="FLOAT" if path.suffix == ".wav" else None)  # flac: 16-bit
    return path


def wavcaps(entries: list[dict], per_audio: int = 1) -> dict:
    return {"num_captions_per_audio": per_audio, "data": entries}


def clotho_item(clip_id: str, audio: str, duration: float, count: int = 5, **extra) -> dict:
    return {"id": clip_id, "audio": audio, **{f"caption_{k}": f"{clip_id} caption {k}." for k in
                                              range(1, count + 1)}, "duration": duration, **extra}


@dataclass
class WavCapsFixture:
    """Six json files in the reference's order and layout, a blacklist, and an audio root."""

    json_files: list[str]
    blacklist: Path
    audio_root: Path


def make_wavcaps_fixture(tmp_path: Path) -> WavCapsFixture:
    """Kept clips (clip index: file, id, how its audio is found):
    0 FreeSound "101" (by name); 1 SoundBible "100" (placeholder: id + .flac, two files of that name,
    FreeSound's never taken); 2 AudioSet "Ydef.wav" (by name); 3 Clotho "river.wav" (5 captions, by
    "wav"; a 3 s file); 4 AudioCaps multi-caption "Yzzz.wav" (2 captions, relative path); 5 BBC
    "Yabc.wav" (missing everywhere); 6 BBC "bbc1" (by name, no json duration: 0.25 s from the header).
    Blacklisted: FreeSound "100", AudioSet "Yabc.wav", Clotho "102". 12 captions kept, 11 found.
    """
    root, meta = tmp_path / "audio_root", tmp_path / "json_files"
    for relative in ("FreeSound_flac/100.flac", "FreeSound_flac/101.flac", "SoundBible_flac/100.flac",
                     "AudioSet_SL_flac/Yabc.flac", "AudioSet_SL_flac/Ydef.flac", "AudioCaps/ac1.wav",
                     "BBC_Sound_Effects_flac/bbc1.flac"):
        write_noise(root / relative, 0.25)
    write_noise(root / "Clotho" / "waveforms" / "train" / "river.wav", 3.0, seed=3)
    files = [
        write_json(meta / "FreeSound" / "fsd_final.json", wavcaps([
            {"id": "100", "audio": f"{FOREIGN}/FreeSound_flac/100.flac", "caption": "A door creaks.",
             "duration": 4.0},
            {"id": "101", "audio": f"{FOREIGN}/FreeSound_flac/101.flac", "caption": "Rain falls , softly.",
             "duration": 12.0}])),
        write_json(meta / "SoundBible" / "sb_final.json", wavcaps([
            {"id": "100", "audio": "wav_path", "caption": "A bell rings.", "duration": 5.0}])),
        write_json(meta / "AudioSet_SL" / "as_final.json", wavcaps([
            {"id": "Yabc.wav", "audio": f"{FOREIGN}/AudioSet_SL_flac/Yabc.flac", "caption": "Speech.",
             "duration": 10.0},
            {"id": "Ydef.wav", "audio": f"{FOREIGN}/AudioSet_SL_flac/Ydef.flac", "caption": "Music plays.",
             "duration": 30.0}])),
        write_json(meta / "Clotho" / "clotho_train.json", wavcaps([
            clotho_item("river.wav", f"{FOREIGN}/Clotho_flac/river.wav", 20.0,
                        wav="Clotho/waveforms/train/river.wav"),
            clotho_item("102", f"{FOREIGN}/Clotho_flac/102.wav", 22.0)], per_audio=5)),
        write_json(meta / "AudioCaps" / "audiocaps_multi.json", wavcaps([
            clotho_item("Yzzz.wav", "AudioCaps/ac1.wav", 7.5, count=3, num_captions=2)], per_audio=5)),
        write_json(meta / "BBC_Sound_Effects" / "bbc_final.json", wavcaps([
            {"id": "Yabc.wav", "audio": f"{FOREIGN}/BBC_Sound_Effects_flac/gone.flac", "caption": "Gone.",
             "duration": 40.0},
            {"id": "bbc1", "audio": f"{FOREIGN}/BBC_Sound_Effects_flac/bbc1.flac", "caption": "A gong."}])),
    ]
    blacklist = write_json(meta / "blacklist" / "blacklist_exclude_all_ac.json",
                           {"AudioSet": ["Yabc.wav", "Yzzz.wav"], "FreeSound": ["100", "102"]})
    return WavCapsFixture([str(path) for path in files], blacklist, root)


@pytest.fixture
def corpus(tmp_path) -> WavCapsFixture:
    return make_wavcaps_fixture(tmp_path)


# ----------------------------------------------------------------------------------------------------
# Blacklist: the list is chosen per json file by its path; ids compared as they appear
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, per_audio, key", [
    ("data/json_files/FreeSound/fsd_final.json", 1, "FreeSound"),
    ("data/json_files/AudioSet_SL/as_final.json", 1, "AudioSet"),
    ("data/json_files/AudioCaps/audiocaps_train_final.json", 1, "AudioSet"),
    ("data/FreeSound_and_AudioSet/x.json", 1, "FreeSound"),  # FreeSound is tested first
    ("data/json_files/Clotho/clotho_train_final.json", 5, "FreeSound"),
    ("data/json_files/Clotho/clotho_single.json", 1, None),  # the Clotho rule is for multi-caption files
    ("data/json_files/AudioCaps/audiocaps_multi.json", 5, None),
    ("data/json_files/FreeSound/fsd_multi.json", 5, None),
    ("data/json_files/SoundBible/sb_final.json", 1, None),
    ("data/json_files/BBC_Sound_Effects/bbc_final.json", 1, None),
    ("data/json_files/freesound/lower_case.json", 1, None),  # the match is case-sensitive
])
def test_blacklist_list_chosen_by_path(path, per_audio, key):
    assert blacklist_key_for(path, per_audio) == key


def test_blacklist_applies_per_dataset(corpus, caplog):
    with caplog.at_level(logging.INFO, logger="data_handling.wavcaps"):
        contents = read_json_files(corpus.json_files, corpus.audio_root, corpus.blacklist)
    kept = {Path(file.path).parent.name: [item.clip_id for item in file.items] for file in contents}
    assert kept == {"FreeSound": ["101"], "SoundBible": ["100"], "AudioSet_SL": ["Ydef.wav"],
                    "Clotho": ["river.wav"] * 5, "AudioCaps": ["Yzzz.wav"] * 2,
                    "BBC_Sound_Effects": ["Yabc.wav", "bbc1"]}
    assert [(file.blacklist_key, file.num_blacklisted) for file in contents] == [
        ("FreeSound", 1), (None, 0), ("AudioSet", 1), ("FreeSound", 1), (None, 0), (None, 0)]
    assert "fsd_final.json: 1 of 2 clips blacklisted (FreeSound list)" in caplog.text
    assert "sb_final.json: 0 of 1 clips blacklisted (no list applies to this path)" in caplog.text


def test_blacklist_of_the_published_size(tmp_path):
    """The published blacklist_exclude_all_ac.json: 50,725 AudioSet and 5,929 FreeSound ids, strings."""
    audioset_ids = [f"Y{number:011d}.wav" for number in range(50_725)]
    freesound_ids = [str(100_000 + number) for number in range(5_929)]
    blacklist_path = write_json(tmp_path / "blacklist_exclude_all_ac.json",
                                {"AudioSet": audioset_ids, "FreeSound": freesound_ids})
    blacklist = read_blacklist(blacklist_path)
    assert len(blacklist.ids_for("AudioSet")) == 50_725 and len(blacklist.ids_for("FreeSound")) == 5_929
    audioset = write_json(tmp_path / "AudioSet_SL" / "as_final.json", wavcaps([
        {"id": audioset_ids[-1], "audio": "a.flac", "caption": "speech", "duration": 10.0},
        {"id": "Yunlisted.wav", "audio": "b.flac", "caption": "music", "duration": 10.0}]))
    freesound = write_json(tmp_path / "FreeSound" / "fsd_final.json", wavcaps([
        {"id": freesound_ids[0], "audio": "c.flac", "caption": "rain", "duration": 10.0},
        {"id": audioset_ids[0], "audio": "d.flac", "caption": "wind", "duration": 10.0}]))
    kept = read_wavcaps_jsons([audioset, freesound], blacklist=blacklist)
    assert [item.clip_id for item in kept] == ["Yunlisted.wav", audioset_ids[0]]  # never across datasets


def test_ids_compared_as_they_appear_not_by_file_stem(tmp_path):
    path = write_json(tmp_path / "FreeSound" / "fsd.json", wavcaps([
        {"id": "7", "audio": "100.flac", "caption": "stem listed, id not", "duration": 1.0},
        {"id": 101, "audio": "a.flac", "caption": "an integer id is not the string '101'", "duration": 1.0},
        {"id": "101", "audio": "b.flac", "caption": "listed", "duration": 1.0},
        {"id": " 100", "audio": "c.flac", "caption": "not the same string", "duration": 1.0}]))
    blacklist = write_json(tmp_path / "bl.json", {"AudioSet": [], "FreeSound": ["100", "101"]})
    assert [item.clip_id for item in read_wavcaps_jsons([path], blacklist=blacklist)] == ["7", "101", " 100"]


def test_clip_indices_count_kept_clips(corpus):
    items = read_wavcaps_jsons(corpus.json_files, corpus.audio_root, corpus.blacklist)
    assert [item.clip_index for item in items] == [0, 1, 2, 3, 3, 3, 3, 3, 4, 4, 5, 6]
    without = read_wavcaps_jsons(corpus.json_files, corpus.audio_root)
    assert len({item.clip_index for item in without}) == 10 and len(without) == 19


def test_several_blacklist_files_merge_per_dataset(corpus, tmp_path):
    first = write_json(tmp_path / "more" / "a.json", {"AudioSet": ["Yabc.wav"], "FreeSound": []})
    second = write_json(tmp_path / "more" / "b.json", {"FreeSound": ["100", "102"]})
    for blacklist in ([first, second], tmp_path / "more", [str(tmp_path / "more")]):
        contents = read_json_files(corpus.json_files, corpus.audio_root, blacklist)
        assert [file.num_blacklisted for file in contents] == [1, 0, 1, 1, 0, 0]
    merged = read_blacklist([first, second])
    assert merged.ids_for("FreeSound") == {"100", "102"} and merged.ids_for("AudioSet") == {"Yabc.wav"}


@pytest.mark.parametrize("content, message", [
    (["Yabc.wav", "100"], "plain list of ids"),
    ({"AudioSet": "Yabc.wav"}, "list of ids under 'AudioSet'"),
    ({"FreeSound": [["100"]]}, "must be strings"),
])
def test_blacklist_of_the_wrong_shape(tmp_path, content, message):
    blacklist = write_json(tmp_path / "bl.json", content)
    with pytest.raises(ValueError, match=message) as error:
        read_blacklist(blacklist)
    assert "bl.json" in str(error.value) and '"AudioSet": [id, ...]' in str(error.value)


def test_unused_blacklist_keys_are_reported(tmp_path, caplog):
    blacklist = write_json(tmp_path / "bl.json", {"AudioSet": [], "BBC": ["x"]})
    with caplog.at_level(logging.WARNING, logger="data_handling.blacklist"):
        read_blacklist(blacklist)
    assert "['BBC'] are not used" in caplog.text


def test_missing_json_and_blacklist_name_the_path(tmp_path, corpus):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        read_wavcaps_jsons([tmp_path / "nothere.json"])
    with pytest.raises(FileNotFoundError, match="nobl.json"):
        read_wavcaps_jsons(corpus.json_files, blacklist=tmp_path / "nobl.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.json"):
        read_blacklist(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty.*null for no blacklist"):
        read_blacklist("")


# ----------------------------------------------------------------------------------------------------
# Captions per item: single, Clotho, other multi-caption files
# ----------------------------------------------------------------------------------------------------
def test_rows_per_layout(corpus):
    items = read_wavcaps_jsons(corpus.json_files, corpus.audio_root, corpus.blacklist)
    assert [item.caption for item in items[3:10]] == [f"river.wav caption {k}." for k in range(1, 6)] + [
        "Yzzz.wav caption 1.", "Yzzz.wav caption 2."]  # num_captions 2 although caption_3 exists
    assert items[0].caption == "Rain falls , softly."  # raw; the dataset preprocesses it
    assert items[1].audio_ref == "wav_path" and items[3].wav == "Clotho/waveforms/train/river.wav"
    assert items[8].audio_path == corpus.audio_root / "AudioCaps" / "ac1.wav"  # relative: under audio_root
    assert items[11].duration is None and items[0].duration == 12.0


def test_caption_list_and_multi_caption_fallback(tmp_path):
    single = write_json(tmp_path / "a" / "single.json", wavcaps([
        {"id": "c0", "audio": "c0.wav", "caption": ["Two a", "Two b"], "duration": 3.0}]))
    multi = write_json(tmp_path / "b" / "multi.json", wavcaps([
        {"id": "c1", "audio": "c1.wav", "caption_1": "x", "caption_2": "y", "caption_3": "z", "duration": 3}],
        per_audio=2))
    items = read_wavcaps_jsons([single, multi])
    assert [(item.caption, item.clip_index) for item in items] == [("Two a", 0), ("Two b", 0), ("x", 1), ("y", 1)]
    assert items[0].audio_path == tmp_path / "a" / "c0.wav"  # relative to the json's folder


def good_entry(clip_id: str = "good") -> dict:
    return {"id": clip_id, "audio": "g.wav", "caption": "x", "duration": 1.0}


@pytest.mark.parametrize("entry, message", [
    ({"id": "bad", "caption": "x", "duration": 1.0}, "'audio'"),
    ({"id": "bad", "audio": "a.wav", "duration": 1.0}, "'caption'"),
    ({"id": "bad", "audio": "a.wav", "caption_1": "x", "duration": 1.0}, "'caption'"),
    ({"id": "bad", "audio": "a.wav", "caption": ["ok", 3], "duration": 1.0}, "'caption' as a string"),
    ({"id": "bad", "audio": "a.wav", "caption": None, "duration": 1.0}, "'caption' as a string"),
    ({"id": "bad", "audio": "a.wav", "caption": "x", "duration": "long"}, "duration"),
    ({"id": "bad", "audio": "a.wav", "caption": "x", "duration": -1}, "duration"),
    ({"id": "bad", "audio": "a.wav", "caption": "x", "duration": 1, "wav": 3}, "'wav'"),
    ("not an object", "json object"),
])
def test_malformed_entry_names_file_and_entry(tmp_path, entry, message):
    path = write_json(tmp_path / "broken.json", wavcaps([good_entry(), entry]))
    with pytest.raises(ValueError, match=message) as error:
        read_wavcaps_jsons([path])
    assert "broken.json" in str(error.value) and "data[1]" in str(error.value)


def test_empty_captions_are_kept_counted_and_trained_on(tmp_path, tiny_text_dir, caplog):
    """The reference trains on an empty caption: its text preprocessing gives "" ("   " gives " "), which the
    tokenizer turns into [CLS] [SEP]. Kept as rows, counted per file, logged, and batched like any other."""
    from models.text_encoder import load_tokenizer

    write_noise(tmp_path / "audio" / "a.flac", 0.1)
    path = write_json(tmp_path / "train.json", wavcaps([
        {"id": "a", "audio": "audio/a.flac", "caption": "A bell.", "duration": 0.1},
        {"id": "b", "audio": "audio/a.flac", "caption": "", "duration": 0.1},
        {"id": "c", "audio": "audio/a.flac", "caption": ["   ", "x"], "duration": 0.1}]))
    with caplog.at_level(logging.WARNING):
        contents = read_json_files([path])[0]
    assert contents.num_empty_captions == 2 and len(contents.items) == 4
    assert "train.json: 2 empty captions, kept and trained on as the reference does (first: id 'b')" in caplog.text
    dataset = CaptionAudioDataset(prepare_training_items([path]), sample_rate=RATE, max_length=0)
    batch = collate_captions([dataset[index] for index in range(len(dataset))])
    assert batch["captions"] == ["a bell ", "", " ", "x"] and batch["idx"].tolist() == [0, 1, 2, 2]
    tokenizer = load_tokenizer(str(tiny_text_dir))
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert [tokenizer(caption)["input_ids"] for caption in batch["captions"][1:3]] == [special, special]


@pytest.mark.parametrize("folder, entry, message", [
    ("Clotho", clotho_item("bad", "a.wav", 1.0, count=4), "'caption_5'.*Clotho file with 5 captions"),
    ("AudioCaps", clotho_item("bad", "a.wav", 1.0, count=2, num_captions=3), "'caption_3'.*num_captions is 3"),
    ("AudioCaps", clotho_item("bad", "a.wav", 1.0, num_captions="5"), "'num_captions'"),
])
def test_malformed_multi_caption_entry(tmp_path, folder, entry, message):
    path = write_json(tmp_path / folder / "train.json", wavcaps([clotho_item("good", "g.wav", 1.0), entry],
                                                               per_audio=5))
    with pytest.raises(ValueError, match=message) as error:
        read_wavcaps_jsons([path])
    assert "train.json, data[1] (id 'bad')" in str(error.value)


def test_blacklisted_file_needs_ids(tmp_path):
    path = write_json(tmp_path / "FreeSound" / "fsd.json", wavcaps([{"audio": "a.wav", "caption": "x"}]))
    blacklist = write_json(tmp_path / "bl.json", {"FreeSound": ["1"]})
    with pytest.raises(ValueError, match="FreeSound list applies.*no 'id'"):
        read_wavcaps_jsons([path], blacklist=blacklist)


def test_malformed_file_layout(tmp_path):
    with pytest.raises(ValueError, match="'data' list"):
        read_wavcaps_jsons([write_json(tmp_path / "list.json", [1, 2])])
    with pytest.raises(ValueError, match="num_captions_per_audio"):
        read_wavcaps_jsons([write_json(tmp_path / "nocount.json", {"data": [good_entry()]})])
    (tmp_path / "text.json").write_text("{not json")
    with pytest.raises(ValueError, match="text.json"):
        read_wavcaps_jsons([tmp_path / "text.json"])


# ----------------------------------------------------------------------------------------------------
# Finding the audio files; prepare_training_items as training calls it
# ----------------------------------------------------------------------------------------------------
def test_foreign_paths_resolved_under_audio_root(corpus):
    items = read_wavcaps_jsons(corpus.json_files, corpus.audio_root, corpus.blacklist)
    resolver = AudioPathResolver(corpus.audio_root)
    resolution = resolve_audio_paths(items, resolver)
    root = corpus.audio_root
    found = {item.clip_id: item.audio_path for item in resolution.found}
    assert found == {"101": root / "FreeSound_flac" / "101.flac",  # by the name of "audio"
                     "100": root / "SoundBible_flac" / "100.flac",  # placeholder: id + .flac, SoundBible's
                     "Ydef.wav": root / "AudioSet_SL_flac" / "Ydef.flac",
                     "river.wav": root / "Clotho" / "waveforms" / "train" / "river.wav",  # by "wav"
                     "Yzzz.wav": root / "AudioCaps" / "ac1.wav",  # relative "audio", as it stands
                     "bbc1": root / "BBC_Sound_Effects_flac" / "bbc1.flac"}
    assert len(resolution.found) == 11 and resolver.ambiguous_lookups == 0  # FreeSound's 100.flac: never a candidate
    assert [(item.clip_id, item.audio_ref) for item in resolution.unresolved_clips] == [
        ("Yabc.wav", f"{FOREIGN}/BBC_Sound_Effects_flac/gone.flac")]


# Files of another dataset are never taken: FreeSound, SoundBible and AudioSet share numeric ids
COLLIDING_IDS = ["2217", "2218", "2219", "2220"]


def write_colliding_datasets(tmp_path: Path, freesound_audio: bool, soundbible_audio: bool) -> tuple[list[str], Path]:
    """WavCaps' SoundBible json as shipped (sb_final.json, every "audio" the placeholder) in a folder that names
    nothing, and a FreeSound json (fsd_final.json) for the ids 2218 and 2219; the audio of either dataset, or
    both, under audio_root: FreeSound_flac/2218.wav, 2219.flac and SoundBible_flac/2218.wav."""
    root = tmp_path / "audio_root"
    root.mkdir(parents=True, exist_ok=True)
    if freesound_audio:
        write_noise(root / "FreeSound_flac" / "2218.wav", 0.1)
        write_noise(root / "FreeSound_flac" / "2219.flac", 0.1)
    if soundbible_audio:
        write_noise(root / "SoundBible_flac" / "2218.wav", 0.1, seed=1)
    soundbible = write_json(tmp_path / "meta" / "sb_final.json", wavcaps([
        {"id": clip_id, "audio": "wav_path", "caption": f"bell {clip_id}", "duration": 1.0} for clip_id in COLLIDING_IDS]))
    freesound = write_json(tmp_path / "meta" / "fsd_final.json", wavcaps([
        {"id": "2218", "audio": f"{FOREIGN}/FreeSound_flac/2218.wav", "caption": "rain", "duration": 1.0},
        {"id": "2219", "audio": f"{FOREIGN}/FreeSound_flac/2219.flac", "caption": "wind", "duration": 1.0}]))
    return [str(soundbible), str(freesound)], root


@pytest.mark.parametrize("freesound_audio, soundbible_audio, expected", [
    (True, False, {"fsd_final.json": {"2218": "FreeSound_flac/2218.wav", "2219": "FreeSound_flac/2219.flac"}}),
    (False, True, {"sb_final.json": {"2218": "SoundBible_flac/2218.wav"}}),
    (True, True, {"sb_final.json": {"2218": "SoundBible_flac/2218.wav"},
                  "fsd_final.json": {"2218": "FreeSound_flac/2218.wav", "2219": "FreeSound_flac/2219.flac"}}),
    (False, False, {}),
])
def test_colliding_ids_never_take_another_datasets_file(tmp_path, freesound_audio, soundbible_audio, expected):
    json_files, root = write_colliding_datasets(tmp_path, freesound_audio, soundbible_audio)
    resolver = AudioPathResolver(root)
    resolution = resolve_audio_paths(read_wavcaps_jsons(json_files), resolver)
    found: dict[str, dict[str, str]] = {}
    for item in resolution.found:
        found.setdefault(Path(item.source).name, {})[item.clip_id] = item.audio_path.relative_to(root).as_posix()
    assert found == expected
    missing = resolution.missing_records()
    assert len(missing) == 6 - sum(len(paths) for paths in expected.values())  # counted ...
    refused = [record for record in missing if "only under folders of" in record["reason"]]  # ... and listed
    assert [(Path(record["source"]).name, record["id"]) for record in refused] == (
        [("sb_final.json", "2218")] * (freesound_audio and not soundbible_audio) + [("sb_final.json", "2219")]
        * freesound_audio + [("fsd_final.json", "2218")] * (soundbible_audio and not freesound_audio))
    assert resolver.other_dataset_refusals == len(refused)


def test_soundbible_json_over_freesound_audio_is_all_missing(tmp_path):
    """WavCaps' SoundBible json (1232 clips) with only FreeSound audio under audio_root: all 1232 missing."""
    root = tmp_path / "audio_root"
    write_noise(root / "FreeSound_flac" / "2218.wav", 0.1)
    write_noise(root / "FreeSound_flac" / "2219.flac", 0.1)
    path = write_json(tmp_path / "downloads" / "sb_final.json", wavcaps([
        {"id": str(2000 + k), "audio": "wav_path", "caption": "a bell", "duration": 1.0} for k in range(1232)]))
    with pytest.raises(MissingAudioFilesError, match=r"^1232 audio files"):
        prepare_training_items([path], audio_root=root)


@pytest.mark.parametrize("copies, taken", [(1, True), (2, False)])
def test_a_row_naming_no_dataset_takes_only_a_unique_name(tmp_path, copies, taken):
    root = tmp_path / "audio_root"
    for folder in ["FreeSound_flac", "SoundBible_flac"][:copies]:
        write_noise(root / folder / "bbc_2218.wav", 0.1)
    path = write_json(tmp_path / "meta" / "train.json", wavcaps([  # a file name does not name a dataset
        {"id": "2218", "audio": "/elsewhere/clips/bbc_2218.wav", "caption": "a bell", "duration": 1.0}]))
    resolver = AudioPathResolver(root)
    resolution = resolve_audio_paths(read_wavcaps_jsons([path]), resolver)
    assert [item.audio_path for item in resolution.found] == ([root / "FreeSound_flac" / "bbc_2218.wav"] if taken else [])
    if not taken:
        assert "2 files named 'bbc_2218.wav'" in resolution.missing_records()[0]["reason"]
        assert resolver.ambiguous_refusals == 1


@pytest.mark.parametrize("parts, datasets", [
    (("WavCaps", "data", "waveforms", "FreeSound_flac", "1.flac"), {"FreeSound"}),
    (("json_files", "SoundBible", "sb_final.json"), {"SoundBible"}),
    (("downloads", "sb_final.json"), {"SoundBible"}),
    (("my_audioset_work", "json", "bbc_final.json"), {"BBC Sound Effects"}),  # the nearest name wins
    (("data", "BBC_Sound_Effects_flac"), {"BBC Sound Effects"}),
    (("data", "AudioSet_SL"), {"AudioSet"}),
    (("data", "as_final.json"), {"AudioSet"}),
    (("data", "FreeSound_and_AudioSet"), {"FreeSound", "AudioSet"}),
    (("Clotho", "waveforms", "train", "river.wav"), {"Clotho"}),
    (("AudioCaps", "waveforms"), {"AudioCaps"}),
    (("data", "waveforms", "2218.wav"), set()),
])
def test_datasets_named_by_paths(parts, datasets):
    assert datasets_named_by(parts) == datasets


def test_existing_paths_are_kept_and_no_root_resolves_nothing(tmp_path):
    here = write_noise(tmp_path / "abs" / "c0.flac", 0.1)
    path = write_json(tmp_path / "meta" / "train.json", wavcaps([
        {"id": "c0", "audio": str(here), "caption": "x", "duration": 1.0},
        {"id": "c1", "audio": f"{FOREIGN}/c0.flac", "caption": "x", "duration": 1.0}]))
    resolution = resolve_audio_paths(read_wavcaps_jsons([path]), AudioPathResolver(None))
    assert [item.audio_path for item in resolution.found] == [here]
    assert [item.clip_id for item in resolution.unresolved] == ["c1"]


def test_placeholder_ids_follow_the_one_extension_order(tmp_path):
    """A SoundBible id is looked up as <id>.wav, then <id>.flac (AUDIO_EXTENSIONS, as the evaluation sets)."""
    root = tmp_path / "audio_root"
    for relative in ("SoundBible_flac/7.flac", "SoundBible_flac/7.wav", "SoundBible_flac/8.flac"):
        write_noise(root / relative, 0.1)
    path = write_json(tmp_path / "json_files" / "SoundBible" / "sb_final.json", wavcaps([
        {"id": "7", "audio": "wav_path", "caption": "a bell", "duration": 1.0},
        {"id": "8", "audio": "wav_path", "caption": "a gong", "duration": 1.0}]))
    resolution = resolve_audio_paths(read_wavcaps_jsons([path]), AudioPathResolver(root))
    assert [item.audio_path.relative_to(root).as_posix() for item in resolution.found] == [
        "SoundBible_flac/7.wav", "SoundBible_flac/8.flac"]


def test_clip_id_without_id_is_the_file_name_without_audio_extension(tmp_path):
    path = write_json(tmp_path / "t.json", wavcaps([
        {"audio": "Y-abc_0.000_10.000.flac", "caption": "x", "duration": 1.0},
        {"audio": "Y-def_0.000_10.000", "caption": "y", "duration": 1.0},
        {"id": None, "audio": "clip.mp4", "caption": "z", "duration": 1.0}]))
    assert [item.clip_id for item in read_wavcaps_jsons([path])] == [
        "Y-abc_0.000_10.000", "Y-def_0.000_10.000", "clip.mp4"]  # as clip ids of the evaluation sets


def test_unresolved_files_stop_before_training(corpus):
    with pytest.raises(MissingAudioFilesError) as error:
        prepare_training_items(corpus.json_files, blacklist=corpus.blacklist, audio_root=corpus.audio_root)
    message = str(error.value)
    assert message.startswith("1 audio files of the training json files were not found")
    assert "gone.flac" in message and "'Yabc.wav'" in message and "bbc_final.json" in message
    assert "data_args.audio_root" in message and "data_args.skip_missing" in message


def test_many_unresolved_files_are_counted(tmp_path):
    path = write_json(tmp_path / "t.json", wavcaps([
        {"id": f"c{k}", "audio": f"{FOREIGN}/c{k}.flac", "caption": "x", "duration": 1.0} for k in range(8)]))
    with pytest.raises(MissingAudioFilesError, match=r"^8 audio files.*c4\.flac'.*and 3 more") as error:
        prepare_training_items([path], audio_root=tmp_path)
    assert "c5.flac" not in str(error.value)


def test_skip_missing_drops_and_logs(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="data_handling.training_items"):
        items = prepare_training_items(corpus.json_files, blacklist=corpus.blacklist, audio_root=corpus.audio_root,
                                       skip_missing=True)
    assert len(items) == 11 and "Yabc.wav" not in {item.clip_id for item in items}
    assert "1 clips (1 captions) without an audio file are left out" in caplog.text
    assert items[-1].clip_id == "bbc1" and items[-1].duration == pytest.approx(0.25)  # from the header


def test_check_files_false_uses_paths_as_they_stand(corpus):
    items = prepare_training_items(corpus.json_files, blacklist=corpus.blacklist, audio_root=corpus.audio_root,
                                   check_files=False)
    assert len(items) == 12 and str(items[0].audio_path).startswith(FOREIGN)
    assert items[-1].duration == 0.0  # no header to read at the foreign path


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
    assert sample["caption"] == "a long noisy clip " and sample["idx"] == 0 and sample["path"].endswith("long.wav")
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
    assert batch["captions"] == ["short ", "a long noisy clip "]  # the reference's preprocessing
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


def test_only_the_first_seconds_are_decoded(tmp_path):
    item = CaptionItem(write_noise(tmp_path / "long.wav", 3.0, seed=4), "x", 0, 3.0, "long")
    full = CaptionAudioDataset([item], RATE, max_length=0, max_decode_seconds=0)[0]["audio"]
    assert full.shape == (3 * RATE,)
    head = CaptionAudioDataset([item], RATE, max_length=0, max_decode_seconds=1.5)[0]["audio"]
    assert torch.equal(head, full[:round(1.5 * RATE)])
    dataset = CaptionAudioDataset([item], RATE, max_length=1.0, max_decode_seconds=1.5)
    torch.manual_seed(0)
    offsets = set()
    for _ in range(30):
        crop = dataset[0]["audio"]
        offset = int(torch.nonzero(full == crop[0])[0])
        assert torch.equal(full[offset:offset + RATE], crop) and offset <= round(0.5 * RATE)
        offsets.add(offset)
    assert len(offsets) > 1  # uniform over the decoded 1.5 s
    assert CaptionAudioDataset([item], RATE).max_decode_seconds == 300.0  # the reference's duration=300
    with pytest.raises(ValueError, match="max_decode_seconds"):
        CaptionAudioDataset([item], RATE, max_decode_seconds=-1)


# ----------------------------------------------------------------------------------------------------
# Trainer._build_loader reads all of it from the config
# ----------------------------------------------------------------------------------------------------
def trainer_config(tiny_config: dict, corpus: WavCapsFixture, **data_args) -> dict:
    return {**tiny_config, "json_files": corpus.json_files, "blacklist": str(corpus.blacklist),
            "training": {"epochs": 1, "amp": "off"},
            "data_args": {"batch_size": 2, "num_workers": 0, "pin_memory": False,
                          "audio_root": str(corpus.audio_root), **data_args}}


def test_trainer_loader_follows_the_data_config(tiny_config, corpus, tmp_path):
    from tools.config import parse_config
    from tools.train.trainer import Trainer

    config = trainer_config(tiny_config, corpus, skip_missing=True, duration_bucket_edges=[6.0, 15.0],
                            drop_last=False, max_decode_seconds=2.5, resampler="soxr_hq")
    config["blacklist"] = [str(corpus.blacklist)]  # a list of files works too
    trainer = Trainer(parse_config(config), tmp_path / "exp")
    assert len(trainer.dataset) == 11 and trainer.dataset.max_decode_seconds == 2.5
    assert trainer.dataset.resampler == "soxr_hq"
    assert trainer.sampler.bucket_edges.tolist() == [6.0, 15.0] and trainer.sampler.drop_last is False
    assert trainer.sampler.bucket_sizes == [2, 3, 6] and len(trainer.sampler) == trainer.batches_per_epoch == 6
    batches = list(trainer.loader)
    lengths = {Path(path).name: int(length) for batch in batches
               for path, length in zip(batch["paths"], batch["lengths"], strict=True)}
    assert lengths["river.wav"] == round(2.5 * 32000)  # 3 s file, first 2.5 s decoded, at 32 kHz
    assert "rain falls softly " in {caption for batch in batches for caption in batch["captions"]}


def test_trainer_defaults_are_the_reference(tiny_config, corpus, tmp_path):
    from tools.config import ConfigError, parse_config
    from tools.train.trainer import Trainer

    with pytest.raises(MissingAudioFilesError, match="gone.flac"):
        Trainer(parse_config(trainer_config(tiny_config, corpus)), tmp_path / "exp")
    trainer = Trainer(parse_config(trainer_config(tiny_config, corpus, skip_missing=True)), tmp_path / "exp")
    assert trainer.sampler.bucket_edges.tolist() == [5, 10, 15, 20, 25, 30] and trainer.sampler.drop_last
    assert trainer.sampler.bucket_sizes == [1, 3, 1, 0, 5, 0, 1]
    assert len(trainer.sampler) == 1 + 2  # floor(3 / 2) + floor(5 / 2): incomplete batches dropped
    assert trainer.dataset.max_decode_seconds == 300.0
    assert trainer.dataset.resampler == "kaiser_best"  # resampy, as the reference's librosa 0.9.2
    with pytest.raises(ConfigError, match="'data_args.resampler' is 'sinc'; expected one of"):
        parse_config(trainer_config(tiny_config, corpus, resampler="sinc"))
    with pytest.raises(ValueError, match="no batch to train on.*data_args.drop_last: false"):
        Trainer(parse_config(trainer_config(tiny_config, corpus, skip_missing=True, batch_size=8)), tmp_path / "x")


def test_partial_decoding_gives_the_same_crops(tmp_path):
    """The same torch seed gives the same crops whether the whole file or only the window is decoded."""
    path = tmp_path / "long44k.flac"
    rng = np.random.default_rng(5)
    sf.write(path, (0.2 * rng.standard_normal(44100 * 4)).astype(np.float32), 44100)
    item = CaptionItem(path, "x", 0, 4.0, "long")
    crops = {}
    for partial in (True, False):
        dataset = CaptionAudioDataset([item], RATE, max_length=1.0, max_decode_seconds=3.0, partial_decoding=partial)
        torch.manual_seed(11)
        crops[partial] = [dataset[0]["audio"] for _ in range(5)]
    for fast, whole in zip(crops[True], crops[False], strict=True):
        assert fast.shape == whole.shape == (RATE,)
        torch.testing.assert_close(fast, whole, rtol=0, atol=2e-6)
    assert len({float(crop[0]) for crop in crops[True]}) > 1
