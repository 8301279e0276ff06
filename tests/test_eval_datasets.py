"""Readers of the evaluation dataset layouts, on tiny fixture files written in tmp_path."""

import json
from pathlib import Path

import pytest

from data_handling.audio_paths import (
    AUDIO_EXTENSIONS,
    audio_files_by_stem,
    clip_id_from_filename,
    find_audio_files,
)
from data_handling.class_names import merge_class_names, normalize_class_name, normalize_class_names
from data_handling.eval_sets.classification import (
    read_esc50,
    read_urbansound8k,
    read_vggsound,
    read_vggsound_test_csv,
)
from data_handling.eval_sets.grounding import (
    GROUNDING_FOLDER_LAYOUT,
    read_grounding_durations,
    read_grounding_json,
)
from data_handling.eval_sets.layouts import EVAL_LAYOUTS, find_eval_files
from data_handling.eval_sets.retrieval import read_retrieval_json
from data_handling.eval_sets.sed import SED_FOLDER_LAYOUT, load_label_map, read_sed_tsv


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- retrieval json
def test_retrieval_json_both_caption_layouts(tmp_path):
    touch(tmp_path / "audio" / "a.wav")
    touch(tmp_path / "other" / "b.flac")
    content = {"num_captions_per_audio": 2, "data": [
        {"id": 7, "audio": "audio/a.wav", "caption_2": "second", "caption_1": "first"},
        {"audio": str(tmp_path / "other" / "b.flac"), "caption": ["x", "y"]},
    ]}
    items = read_retrieval_json(write(tmp_path / "test.json", json.dumps(content)))
    assert items[0].audio_path == tmp_path / "audio" / "a.wav"
    assert items[0].captions == ["first", "second"] and items[0].id == "7"
    assert items[1].id == "b" and items[1].captions == ["x", "y"]


def test_retrieval_json_audio_root_and_errors(tmp_path):
    touch(tmp_path / "wavs" / "a.wav")
    path = write(tmp_path / "meta" / "test.json", json.dumps({"data": [{"audio": "a.wav", "caption": "one"}]}))
    assert read_retrieval_json(path, audio_root=tmp_path / "wavs")[0].audio_path == tmp_path / "wavs" / "a.wav"
    with pytest.raises(FileNotFoundError, match="a.wav"):
        read_retrieval_json(path)  # resolved against the json's folder: missing
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_retrieval_json(tmp_path / "missing.json")
    bad_count = {"num_captions_per_audio": 5, "data": [{"audio": "a.wav", "caption_1": "one"}]}
    with pytest.raises(ValueError, match="num_captions_per_audio"):
        read_retrieval_json(write(tmp_path / "bad.json", json.dumps(bad_count)), check_audio=False)
    with pytest.raises(ValueError, match="captions"):
        read_retrieval_json(write(tmp_path / "bad2.json", json.dumps({"data": [{"audio": "a.wav"}]})))


def test_retrieval_json_as_wavcaps_writes_it(tmp_path):
    """WavCaps' Clotho test json: "audio" is a path of the authors' machine, "wav" is relative to the data
    folder above the json, and five ids are "Not found". Clips are numbered by position; ids repeat."""
    data = tmp_path / "data"
    touch(data / "Clotho" / "waveforms" / "test" / "a.wav")
    touch(data / "Clotho" / "waveforms" / "test" / "b.wav")
    touch(tmp_path / "elsewhere" / "c.wav")
    entries = [
        {"id": "Not found", "audio": "/mnt/fast/datasets/Clotho/waveforms/test/a.wav",
         "wav": "Clotho/waveforms/test/a.wav", "caption_1": "one", "duration": 20.0},
        {"id": "Not found", "audio": "/mnt/fast/datasets/Clotho/waveforms/test/b.wav",
         "wav": "Clotho/waveforms/test/b.wav", "caption_1": "two", "duration": 25.0},
        {"id": "c", "audio": "/mnt/fast/datasets/Clotho/waveforms/test/c.wav", "wav": "Clotho/elsewhere/c.wav",
         "caption_1": "three"},
        {"id": "d", "audio": "/mnt/fast/datasets/Clotho/waveforms/test/d.wav", "caption_1": "four"},
    ]
    json_path = write(data / "Clotho" / "json_files" / "test.json",
                      json.dumps({"num_captions_per_audio": 1, "data": entries}))
    items = read_retrieval_json(json_path, check_audio=False, search_roots=[tmp_path / "elsewhere"])
    assert [item.id for item in items] == ["Not found", "Not found", "c", "d"]
    assert items[0].audio_path == data / "Clotho" / "waveforms" / "test" / "a.wav"      # "wav" above the json
    assert items[1].audio_path.name == "b.wav" and items[1].audio_path.is_file()
    assert items[2].audio_path == tmp_path / "elsewhere" / "c.wav"                      # by name, search root
    assert items[3].audio_path == Path("/mnt/fast/datasets/Clotho/waveforms/test/d.wav")  # unresolved: as given
    with pytest.raises(FileNotFoundError, match="1 audio file.*d.wav"):
        read_retrieval_json(json_path, search_roots=[tmp_path / "elsewhere"])
    root_items = read_retrieval_json(json_path, audio_root=data, check_audio=False)
    assert root_items[0].audio_path == data / "Clotho" / "waveforms" / "test" / "a.wav"
    assert not root_items[2].audio_path.is_file()                                       # not under the audio root


# ---------------------------------------------------------------- ESC-50 / UrbanSound8K / VGGSound
ESC50_CSV = """filename,fold,target,category,esc10,src_file,take
1-100-A-1.wav,1,1,rooster,False,100,A
1-200-A-0.wav,1,0,dog,True,200,A
2-300-A-2.wav,2,2,chirping_birds,False,300,A
"""


def test_esc50(tmp_path):
    write(tmp_path / "meta" / "esc50.csv", ESC50_CSV)
    for name in ("1-100-A-1.wav", "1-200-A-0.wav", "2-300-A-2.wav"):
        touch(tmp_path / "audio" / name)
    items, class_names = read_esc50(tmp_path)
    assert class_names == ["dog", "rooster", "chirping birds"]  # ordered by target
    assert [(item.class_name, item.class_index, item.fold) for item in items] == [
        ("rooster", 1, 1), ("dog", 0, 1), ("chirping birds", 2, 2)]
    assert items[0].audio_path == tmp_path / "audio" / "1-100-A-1.wav"


def test_esc50_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"meta/esc50.csv"):
        read_esc50(tmp_path)
    write(tmp_path / "meta" / "esc50.csv", ESC50_CSV.replace(",1,1,rooster", ",one,1,rooster"))
    with pytest.raises(ValueError, match="line 2.*fold"):
        read_esc50(tmp_path, check_audio=False)
    write(tmp_path / "meta" / "esc50.csv", ESC50_CSV)
    with pytest.raises(FileNotFoundError, match="3 audio file"):
        read_esc50(tmp_path)


def test_esc50_duplicate_class_names_are_merged(tmp_path):
    write(tmp_path / "meta" / "esc50.csv", "filename,fold,target,category\na.wav,1,0,dog_bark\nb.wav,2,1,dog bark\n")
    with pytest.warns(UserWarning, match="merged"):
        items, class_names = read_esc50(tmp_path, check_audio=False)
    assert class_names == ["dog bark"] and [item.class_index for item in items] == [0, 0]


def test_urbansound8k(tmp_path):
    write(tmp_path / "metadata" / "UrbanSound8K.csv",
          "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
          "100-1-0-0.wav,100,0,1,1,5,1,car_horn\n"
          "200-0-0-0.wav,200,0,1,1,10,0,air_conditioner\n")
    touch(tmp_path / "audio" / "fold5" / "100-1-0-0.wav")
    touch(tmp_path / "audio" / "fold10" / "200-0-0-0.wav")
    items, class_names = read_urbansound8k(tmp_path)
    assert class_names == ["air conditioner", "car horn"]
    assert items[1].audio_path == tmp_path / "audio" / "fold10" / "200-0-0-0.wav"
    assert (items[0].fold, items[0].class_index) == (5, 1)
    with pytest.raises(FileNotFoundError, match="UrbanSound8K.csv"):
        read_urbansound8k(tmp_path / "nowhere")


def test_vggsound_skips_missing_files(tmp_path):
    csv_path = write(tmp_path / "vggsound.csv",
                     'abc,30,"dog barking",test\n'
                     'def,5,"male speech, man speaking",test\n'
                     'ghi,0,"dog barking",train\n'
                     'jkl,12,"playing_drums",test\n')
    touch(tmp_path / "audio" / "abc_000030.flac")
    touch(tmp_path / "audio" / "abc_000030.mp3")
    touch(tmp_path / "audio" / "def_000005.mp3")
    items, class_names, num_missing, _ = read_vggsound(csv_path, tmp_path / "audio")
    assert class_names == ["dog barking", "male speech, man speaking", "playing drums"]
    assert num_missing == 1  # jkl has no file; ghi is train
    assert [item.audio_path.name for item in items] == ["abc_000030.flac", "def_000005.mp3"]
    assert items[1].class_index == 1 and items[1].fold is None
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_vggsound(tmp_path / "nope.csv", tmp_path / "audio")
    with pytest.raises(ValueError, match="4 fields"):
        read_vggsound(write(tmp_path / "bad.csv", "abc,30,test\n"), tmp_path / "audio")


# ---------------------------------------------------------------- SED tsv
def test_sed_tsv_desed_layout_with_bad_rows(tmp_path):
    events = write(tmp_path / "eval.tsv",
                   "filename\tonset\toffset\tevent_label\n"
                   "a.wav\t0.5\t2.0\tDog_Bark\n"
                   "a.wav\t3.0\t3.0\tAlarm\n"        # onset >= offset: skipped
                   "b.wav\t1.0\t4.0\talarm\n"
                   "c.wav\t\t\t\n"                   # empty label (clip without events): skipped
                   "b.wav\t5.0\t6.0\tDog bark\n")    # the text of Dog_Bark, another label: another class
    durations = write(tmp_path / "durations.tsv", "filename\tduration\na.wav\t10.0\nb.wav\t9.5\nc.wav\t10\n")
    with pytest.warns(UserWarning, match="kept as separate classes"):
        annotations = read_sed_tsv(events, durations)
    assert annotations.num_skipped == 2
    assert annotations.class_names == ["Dog bark", "Dog_Bark", "alarm"]
    assert [annotations.text_of(name) for name in annotations.class_names] == ["dog bark", "dog bark", "alarm"]
    assert annotations.ground_truth["a"] == [(0.5, 2.0, "Dog_Bark")]
    assert annotations.ground_truth["b"] == [(1.0, 4.0, "alarm"), (5.0, 6.0, "Dog bark")]
    assert annotations.ground_truth["c"] == []
    assert annotations.durations == {"a": 10.0, "b": 9.5, "c": 10.0}
    assert annotations.label_to_class["alarm"] == "alarm"
    assert annotations.audio_files["b"] == "b.wav"


def test_sed_labels_are_one_class_only_when_identical(tmp_path):
    """The reference: one score column per distinct label (sorted labels), each prompted with
    label.replace('_', ' ').lower(); labels differing in case or '_' are not merged."""
    labels = ["Dog", "dog", "dog_bark", "dog bark", "Siren"]
    events = write(tmp_path / "eval.tsv", "filename\tonset\toffset\tevent_label\n" + "".join(
        f"a.wav\t{index}.0\t{index}.5\t{label}\n" for index, label in enumerate(labels))
                   + "b.wav\t1.0\t2.0\tdog\n")
    durations = write(tmp_path / "durations.tsv", "filename\tduration\na.wav\t10.0\nb.wav\t10.0\n")
    with pytest.warns(UserWarning, match="kept as separate classes"):
        annotations = read_sed_tsv(events, durations)
    reference_columns = sorted(set(labels))
    reference_texts = {label: label.replace("_", " ").lower() for label in reference_columns}
    assert len(annotations.class_names) == len(reference_columns) == 5
    assert {annotations.label_to_class[label]: reference_texts[label] for label in labels} == {
        name: annotations.text_of(name) for name in annotations.class_names}
    assert [label for *_, label in annotations.ground_truth["a"]] == ["Dog", "dog", "dog_bark", "dog bark", "siren"]
    assert annotations.ground_truth["b"] == [(1.0, 2.0, "dog")]


def test_sed_tsv_audioset_layout_with_label_map(tmp_path):
    events = write(tmp_path / "audioset_eval_strong.tsv",
                   "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
                   "Yabc_30000\t0.0\t1.5\t/m/0bt9lr\n"
                   "Yabc_30000\t2.0\t3.0\t/m/05tny_\n")
    durations = write(tmp_path / "durations.tsv", "filename\tduration\nYabc_30000.wav\t10.0\n")
    ontology = write(tmp_path / "ontology.json", json.dumps([{"id": "/m/0bt9lr", "name": "Dog"},
                                                            {"id": "/m/05tny_", "name": "Bark"}]))
    annotations = read_sed_tsv(events, durations, label_map=load_label_map(ontology))
    assert annotations.class_names == ["bark", "dog"]
    assert annotations.ground_truth["Yabc_30000"] == [(0.0, 1.5, "dog"), (2.0, 3.0, "bark")]
    with pytest.raises(ValueError, match="missing from the label map"):
        read_sed_tsv(events, durations, label_map={"/m/0bt9lr": "Dog"})


def test_sed_tsv_errors(tmp_path):
    durations = write(tmp_path / "durations.tsv", "filename\tduration\na.wav\t10.0\n")
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_sed_tsv(tmp_path / "missing.tsv", durations)
    bad_header = write(tmp_path / "bad.tsv", "file\tstart\tend\tlabel\na.wav\t0\t1\tdog\n")
    with pytest.raises(ValueError, match="column sets"):
        read_sed_tsv(bad_header, durations)
    no_duration = write(tmp_path / "events.tsv", "filename\tonset\toffset\tevent_label\nz.wav\t0\t1\tdog\n")
    with pytest.raises(ValueError, match="no duration"):
        read_sed_tsv(no_duration, durations)


def test_label_map_csv_layouts(tmp_path):
    indices = write(tmp_path / "class_labels_indices.csv",
                    'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n')
    assert load_label_map(indices) == {"/m/09x0r": "Speech", "/m/05zppz": "Male speech, man speaking"}
    plain = write(tmp_path / "map.tsv", "/m/a\tDog\n/m/b\tCat\n")
    assert load_label_map(plain) == {"/m/a": "Dog", "/m/b": "Cat"}


def test_class_name_helpers():
    assert normalize_class_name("Dog_bark ", lower=True) == "dog bark"
    with pytest.raises(ValueError, match="empty class name"):
        normalize_class_name(" _ ")
    assert clip_id_from_filename("Y-abc_0.000_10.000.wav") == "Y-abc_0.000_10.000"
    assert clip_id_from_filename("Y-abc_0.000_10.000") == "Y-abc_0.000_10.000"


def test_class_names_of_prompts_must_be_distinct():
    assert normalize_class_names(["dog_bark", " church   bells "]) == ["dog bark", "church bells"]
    with pytest.raises(ValueError, match=r"positions \[1\] are empty"):
        normalize_class_names(["dog", " _ "])
    with pytest.raises(ValueError, match=r"\['dog bark'\] appear more than once"):
        normalize_class_names(["dog_bark", "dog bark"])
    with pytest.warns(UserWarning, match="merged"):
        assert merge_class_names(["dog_bark", "dog bark", "cat"]) == (["dog bark", "cat"],
                                                                      {"dog_bark": 0, "dog bark": 0, "cat": 1})


# ---------------------------------------------------------------- audio files named by metadata
def test_one_extension_order_wav_first(tmp_path):
    assert AUDIO_EXTENSIONS == (".wav", ".flac", ".mp3", ".ogg")
    for name in ("a.flac", "a.wav", "b.ogg", "b.mp3", "c.flac", "c.FLAC", "notes.txt", "d.0.wav"):
        touch(tmp_path / name)
    assert audio_files_by_stem(tmp_path) == {"a": tmp_path / "a.wav", "b": tmp_path / "b.mp3",
                                             "c": tmp_path / "c.FLAC", "d.0": tmp_path / "d.0.wav"}


def test_find_audio_files_by_name_then_by_stem(tmp_path):
    for name in ("x.flac", "x.wav", "y.mp3", "Y-abc_0.000_10.000.flac"):
        touch(tmp_path / name)
    names = ["x.flac", "x", "y.wav", "Y-abc_0.000_10.000", "z.wav", "y.mp4"]
    assert find_audio_files(tmp_path, names) == [
        tmp_path / "x.flac",                      # the file named, as it stands
        tmp_path / "x.wav",                       # by stem: .wav before .flac
        tmp_path / "y.mp3",                       # another audio extension
        tmp_path / "Y-abc_0.000_10.000.flac",     # a name with dots and no extension
        tmp_path / "z.wav",                       # nowhere: the direct path (reported missing later)
        tmp_path / "y.mp4"]                       # only audio extensions are stripped


def test_folder_layout_descriptions_name_the_detected_paths():
    for relative in EVAL_LAYOUTS["sed"][0].files.values():
        assert f"<root>/{relative.rstrip('/')}" in SED_FOLDER_LAYOUT
    for relative in EVAL_LAYOUTS["grounding"][0].files.values():
        assert f"<root>/{relative.rstrip('/')}" in GROUNDING_FOLDER_LAYOUT


# ---------------------------------------------------------------- AudioGrounding json
GROUNDING = [
    {"audio_id": "Y1.wav", "audiocap_id": 101, "tokens": ["a", "dog", "barks", "then", "a", "car", "passes"],
     "phrases": [
         {"phrase": "a dog", "start_index": 0, "end_index": 1, "segments": [[0.5, 2.0], [0, 0], [4.0, 5.5]]},
         {"phrase": "a car", "start_index": 4, "end_index": 5, "segments": [[0, 0]]},
     ]},
    {"audio_id": "Y2.wav", "audiocap_id": 102, "tokens": ["music"],
     "phrases": [{"phrase": "music", "start_index": 0, "end_index": 0, "segments": [[0.0, 10.0]]}]},
]


def test_grounding_json(tmp_path):
    phrases = read_grounding_json(write(tmp_path / "test.json", json.dumps(GROUNDING)))
    assert [phrase.phrase_id for phrase in phrases] == ["101_0", "101_4", "102_0"]
    assert phrases[0].segments == [(0.5, 2.0), (4.0, 5.5)]
    assert phrases[1].segments == []  # only a [0, 0] placeholder
    assert (phrases[2].audio_id, phrases[2].phrase, phrases[2].segments) == ("Y2.wav", "music", [(0.0, 10.0)])


def test_grounding_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_grounding_json(tmp_path / "absent.json")
    duplicated = [GROUNDING[1], GROUNDING[1]]
    with pytest.raises(ValueError, match="duplicate phrase ids"):
        read_grounding_json(write(tmp_path / "dup.json", json.dumps(duplicated)))
    with pytest.raises(ValueError, match="audio_id"):
        read_grounding_json(write(tmp_path / "bad.json", json.dumps([{"phrases": []}])))


def test_grounding_durations_file(tmp_path):
    path = write(tmp_path / "duration.csv", "audio_id\tduration\nY1.wav\t9.5\nY2.wav\t10.0\n")
    assert read_grounding_durations(path) == {"Y1.wav": 9.5, "Y2.wav": 10.0}
    with pytest.raises(ValueError, match="column sets"):
        read_grounding_durations(write(tmp_path / "bad.csv", "id\tseconds\nY1.wav\t9.5\n"))


# ---------------------------------------------------------------- VGGSound test csv (the reference's layout)
def test_vggsound_test_csv_two_columns_without_header(tmp_path):
    csv_path = write(tmp_path / "vggsound_test.csv",
                     'abc_000030.mp4,dog barking\n"def_000005.mp4","male speech, man speaking"\n'
                     'ghi_000001.mp4,dog barking\njkl_000012.wav,playing_drums\n')
    touch(tmp_path / "audio" / "abc_000030.wav")       # the reference reads <name without .mp4>.wav
    touch(tmp_path / "audio" / "def_000005.flac")
    touch(tmp_path / "audio" / "jkl_000012.wav")
    vggsound = read_vggsound_test_csv(csv_path, tmp_path / "audio")
    assert vggsound.class_names == ["dog barking", "male speech, man speaking", "playing drums"]
    assert [item.audio_path.name for item in vggsound.items] == ["abc_000030.wav", "def_000005.flac", "jkl_000012.wav"]
    assert [item.class_index for item in vggsound.items] == [0, 1, 2] and vggsound.num_missing == 1
    with pytest.raises(ValueError, match="2 fields"):
        read_vggsound_test_csv(write(tmp_path / "bad.csv", "a.mp4,dog,test\n"), tmp_path / "audio")


def test_vggsound_reads_the_references_wav_before_the_listed_file(tmp_path):
    """The reference opens <name without its 4-character extension>.wav: a listed .mp4 beside it is not read."""
    csv_path = write(tmp_path / "vggsound_test.csv", "abc_000030.mp4,dog barking\nxyz_000001.mp4,cat\n")
    touch(tmp_path / "audio" / "abc_000030.mp4")
    touch(tmp_path / "audio" / "abc_000030.wav")
    vggsound = read_vggsound_test_csv(csv_path, tmp_path / "audio")
    assert [item.audio_path.name for item in vggsound.items] == ["abc_000030.wav"]
    assert vggsound.missing == [str(tmp_path / "audio" / "xyz_000001.wav")]   # the file the reference opens


# ---------------------------------------------------------------- dataset layouts under eval.data_root_dir
REFERENCE_LAYOUT_FILES = {
    "esc50": ["ESC-50-master/meta/esc50.csv", "ESC-50-master/audio/"],
    "urbansound8k": ["UrbanSound8K/metadata/UrbanSound8K.csv", "UrbanSound8K/audio/"],
    "vggsound": ["VGGSound/metadata/vggsound_test.csv", "VGGSound/audio/"],
    "sed": ["AudioSet_SL/metadata/audioset_eval_strong.tsv", "AudioSet_SL/metadata/audioset_eval_strong_durations.tsv",
            "AudioSet_SL/audio/AudioSet_SL_eval/"],
    "grounding": ["TAG/test/metadata/test.json", "TAG/test/audio/"],
}


def make_paths(root: Path, relative_paths: list[str]) -> None:
    """Empty files, and folders for the paths ending in '/'."""
    for relative in relative_paths:
        if relative.endswith("/"):
            (root / relative).mkdir(parents=True, exist_ok=True)
        else:
            touch(root / relative)


def test_reference_parent_folder_layouts_are_detected(tmp_path):
    for files in REFERENCE_LAYOUT_FILES.values():
        make_paths(tmp_path, files)
    assert find_eval_files(tmp_path, "esc50").folder == tmp_path / "ESC-50-master"
    assert find_eval_files(tmp_path, "urbansound8k").folder == tmp_path / "UrbanSound8K"
    vggsound = find_eval_files(tmp_path, "vggsound").paths
    assert vggsound["test_csv"] == tmp_path / "VGGSound" / "metadata" / "vggsound_test.csv"
    sed = find_eval_files(tmp_path, "sed").paths
    assert sed["audio"] == tmp_path / "AudioSet_SL" / "audio" / "AudioSet_SL_eval"
    assert sed["durations"].name == "audioset_eval_strong_durations.tsv"
    grounding = find_eval_files(tmp_path, "grounding").paths
    assert grounding["json"] == tmp_path / "TAG" / "test" / "metadata" / "test.json" and "durations" not in grounding
    touch(tmp_path / "TAG" / "test" / "metadata" / "duration.csv")
    assert find_eval_files(tmp_path, "grounding").paths["durations"].name == "duration.csv"


def test_own_folder_layouts_are_detected(tmp_path):
    make_paths(tmp_path / "esc", ["meta/esc50.csv", "audio/"])
    make_paths(tmp_path / "sed", ["metadata/eval.tsv", "metadata/eval_durations.tsv", "audio/"])
    make_paths(tmp_path / "vgg", ["vggsound.csv", "audio/"])
    make_paths(tmp_path / "tag", ["test.json", "audio/"])
    assert find_eval_files(tmp_path / "esc", "esc50").folder == tmp_path / "esc"
    assert find_eval_files(tmp_path / "sed", "sed").paths["events"] == tmp_path / "sed" / "metadata" / "eval.tsv"
    assert "csv" in find_eval_files(tmp_path / "vgg", "vggsound").paths
    assert find_eval_files(tmp_path / "tag", "grounding").paths["json"] == tmp_path / "tag" / "test.json"


def test_layout_errors_list_every_layout_tried(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        find_eval_files(tmp_path, "sed")
    message = str(error.value)
    assert len(EVAL_LAYOUTS["sed"]) == 3
    for relative in ("metadata/eval.tsv", "AudioSet_SL/metadata/audioset_eval_strong.tsv",
                     "audio/AudioSet_SL_eval/"):
        assert relative in message
    with pytest.raises(FileNotFoundError, match="not found"):
        find_eval_files(tmp_path / "absent", "esc50")
    with pytest.raises(ValueError, match="unknown evaluation task"):
        find_eval_files(tmp_path, "asr")
