"""The zero-shot protocols against the reference's evaluation behaviour, on tiny fixtures made here.

Each test rebuilds what the reference computes (which audio the encoder sees, which frames are scored)
from the library's building blocks and compares it with what the protocol functions pass to the metrics.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import tools.eval.grounding
import tools.eval.retrieval
import tools.eval.sed
import zero_shot_clas
import zero_shot_grounding
import zero_shot_retrieval
import zero_shot_sed
from data_handling.audio_io import load_audio
from data_handling.eval_sets.classification import ClassificationItem
from data_handling.text_preprocess import preprocess_caption
from models.factory import model_from_checkpoint
from models.windowing import crop_start, encode_audio_windows
from tests.conftest import write_tiny_checkpoint
from tools.eval.classification import evaluate_classification
from tools.eval.embedding import embed_texts
from tools.eval.retrieval import evaluate_retrieval, reference_padding_spans
from tools.tiny_model import tiny_config_dict

SR = 32000
TEN_SECONDS = 10 * SR


@pytest.fixture(scope="module")
def checkpoint(tiny_text_dir, tmp_path_factory) -> Path:
    """A tiny model saved as pretrain.py does (weights and its own config). Its codebook temperature is 1,
    not 1000, so that the random model's clip embeddings differ clearly from one input to another."""
    config = tiny_config_dict(tiny_text_dir)
    config["codebook"] = {**config["codebook"], "temperature": 1.0}
    return write_tiny_checkpoint(config, tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def model(checkpoint):
    return model_from_checkpoint(checkpoint, None, "cpu")


def noise(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SR, subtype="FLOAT")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def clip_embedding(model, waveform: torch.Tensor) -> torch.Tensor:
    """What the reference's encoder gives for one prepared input: msc of its frames, normalised."""
    with torch.no_grad():
        _, clip = encode_audio_windows(model, waveform)
    return F.normalize(clip, dim=-1)


class Spy:
    """Records the arguments of a metric function as a protocol module calls it and returns its real result."""

    def __init__(self, monkeypatch, module, name: str):
        self.calls: list[tuple[tuple, dict]] = []
        real = getattr(module, name)

        def spy(*args, **kwargs):
            self.calls.append((args, kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)


# ----------------------------------------------------------------------------------------------------
# Retrieval: one seeded crop per long clip, the reference's batch padding, WavCaps' json quirks
# ----------------------------------------------------------------------------------------------------
RETRIEVAL_SECONDS = [1.0, 2.0, 1.5, 12.5, 3.0, 1.0, 4.0, 2.5]
"""8 clips x 5 captions = 40 rows: rows 0-31 (clips 0-6) form the first 32-row batch, rows 32-39 (clips 6-7)
the second; clip 3 is cropped to 10 s, so clips 0-6 are padded to 10 s, clip 7 to clip 6's 4 s."""
WORDS = ["dog", "bell", "rain", "car", "bird", "drum", "wind", "door"]


def make_retrieval_json(data: Path, wavcaps_quirks: bool) -> Path:
    """A Clotho-style test json under data/Clotho/json_files/ with audio in data/Clotho/waveforms/test/.

    With `wavcaps_quirks`, as WavCaps writes it: "audio" paths of the authors' machine, "wav" relative to
    the data folder two levels above the json, and ids "Not found" (twice); else plain relative paths and
    unique ids."""
    entries = []
    for position, seconds in enumerate(RETRIEVAL_SECONDS):
        name = f"clip{position}.wav"
        write_wav(data / "Clotho" / "waveforms" / "test" / name, noise(seconds, seed=position))
        entry = {"id": name, "audio": f"../waveforms/test/{name}", "wav": f"Clotho/waveforms/test/{name}",
                 "duration": seconds}
        if wavcaps_quirks:
            entry.update(id="Not found" if position in (1, 5) else name,
                         audio=f"/mnt/fast/nobackup/Clotho/waveforms/test/{name}")
        entry.update({f"caption_{k}": f"A {WORDS[position]} sound, number {k}." for k in range(1, 6)})
        entries.append(entry)
    return write_text(data / "Clotho" / "json_files" / "test.json",
                      json.dumps({"num_captions_per_audio": 5, "data": entries}))


@pytest.fixture(scope="module")
def retrieval_json(tmp_path_factory) -> Path:
    return make_retrieval_json(tmp_path_factory.mktemp("retrieval") / "data", wavcaps_quirks=True)


def reference_retrieval_similarity(model, json_path: Path, long_audio: str = "crop", padding: str = "batch",
                                   crop_seed: int = 0) -> torch.Tensor:
    """[N clips, 5N captions] cosine of what the reference (or the chosen switch) feeds the encoder."""
    entries = json.loads(json_path.read_text())["data"]
    root = json_path.parent.parent.parent
    waveforms = []
    for position, entry in enumerate(entries):
        waveform = torch.from_numpy(load_audio(root / entry["wav"], SR))
        if waveform.numel() > TEN_SECONDS and long_audio == "crop":
            start = crop_start(waveform.numel() - TEN_SECONDS, crop_seed, position)
            waveform = waveform[start:start + TEN_SECONDS]
        waveforms.append(waveform)
    lengths = [min(waveform.numel(), TEN_SECONDS) for waveform in waveforms]
    clips = []
    for position, waveform in enumerate(waveforms):
        batch = position * 5 // 32                                  # the batch of the clip's first caption row
        in_batch = [clip for clip in range(len(waveforms)) if batch * 32 <= clip * 5 + 4 and clip * 5 < batch * 32 + 32]
        target = max(lengths[clip] for clip in in_batch) if padding == "batch" else TEN_SECONDS
        clips.append(clip_embedding(model, F.pad(waveform, (0, max(0, target - waveform.numel())))))
    captions = [preprocess_caption(entry[f"caption_{k}"]) for entry in entries for k in range(1, 6)]
    return torch.stack(clips) @ embed_texts(model, captions, "cpu").T


def test_reference_padding_spans_match_a_row_by_row_simulation():
    rng = np.random.default_rng(0)
    for captions_per_clip in ([5] * 14, [1] * 40, rng.integers(1, 7, size=30).tolist()):
        rows = [clip for clip, count in enumerate(captions_per_clip) for _ in range(count)]
        first_row = [rows.index(clip) for clip in range(len(captions_per_clip))]
        expected = []
        for clip in range(len(captions_per_clip)):
            batch = first_row[clip] // 32
            in_batch = rows[batch * 32: batch * 32 + 32]
            expected.append((min(in_batch), max(in_batch)))
        assert reference_padding_spans(captions_per_clip) == expected
    assert reference_padding_spans([5] * 8)[6:] == [(0, 6), (6, 7)]


@pytest.mark.parametrize("wavcaps_quirks", [False, True])
def test_retrieval_defaults_are_the_reference_protocol(model, wavcaps_quirks, monkeypatch, tmp_path):
    """One seeded 10 s crop of the long clip, zero-padding to the 32-row batch's longest clip (stretched when
    the batch is shorter than 10 s); with WavCaps' quirks, clips numbered by position although two ids are
    "Not found", audio found through "wav" although "audio" does not exist; the same numbers whatever the
    batching."""
    retrieval_json = make_retrieval_json(tmp_path / "data", wavcaps_quirks)
    spy = Spy(monkeypatch, tools.eval.retrieval, "retrieval_metrics")
    first = evaluate_retrieval(model, retrieval_json, "cpu", batch_size=32)
    again = evaluate_retrieval(model, retrieval_json, "cpu", batch_size=3, num_workers=1)
    expected = reference_retrieval_similarity(model, retrieval_json)
    for (similarity, text_to_audio), _ in spy.calls:
        torch.testing.assert_close(similarity, expected, atol=1e-5, rtol=1e-5)
        assert text_to_audio.tolist() == np.repeat(np.arange(8), 5).tolist()
    assert first == again
    assert first["num_audio"] == 8 and first["num_captions"] == 40 and first["num_skipped"] == 0
    assert first["protocol"] == {"long_audio": "crop", "crop_seed": 0, "padding": "batch"}


def test_retrieval_switches_window_fixed_padding_and_seed(checkpoint, model, retrieval_json, monkeypatch, tmp_path):
    spy = Spy(monkeypatch, tools.eval.retrieval, "retrieval_metrics")
    result = zero_shot_retrieval.main(["--ckpt", str(checkpoint), "--json", str(retrieval_json), "--device", "cpu",
                                       "--num-workers", "0", "--long-audio", "window", "--fixed-padding",
                                       "--out", str(tmp_path / "retrieval.json")])
    assert result["protocol"] == {"long_audio": "window", "crop_seed": 0, "padding": "fixed"}
    windowed = spy.calls[-1][0][0]
    assert not torch.allclose(windowed, reference_retrieval_similarity(model, retrieval_json), atol=1e-4)
    entries = json.loads(retrieval_json.read_text())["data"]
    data = retrieval_json.parent.parent.parent

    def similarity_row(clip: int, waveform: torch.Tensor) -> torch.Tensor:
        captions = [preprocess_caption(entries[clip][f"caption_{k}"]) for k in range(1, 6)]
        return clip_embedding(model, waveform) @ embed_texts(model, captions).T

    long_clip = torch.from_numpy(load_audio(data / entries[3]["wav"], SR))            # 12.5 s: two windows
    torch.testing.assert_close(windowed[3, 15:20], similarity_row(3, long_clip), atol=1e-5, rtol=1e-5)
    short_clip = torch.from_numpy(load_audio(data / entries[7]["wav"], SR))           # 2.5 s: padded to 10 s
    padded = F.pad(short_clip, (0, TEN_SECONDS - short_clip.numel()))
    torch.testing.assert_close(windowed[7, 35:40], similarity_row(7, padded), atol=1e-5, rtol=1e-5)
    evaluate_retrieval(model, retrieval_json, "cpu", crop_seed=7)
    torch.testing.assert_close(spy.calls[-1][0][0], reference_retrieval_similarity(model, retrieval_json, crop_seed=7),
                               atol=1e-5, rtol=1e-5)


def test_retrieval_reports_unresolved_audio_and_goes_on(model, retrieval_json, tmp_path):
    content = json.loads(retrieval_json.read_text())
    content["data"][2]["wav"] = "Clotho/waveforms/test/absent.wav"
    content["data"][2]["audio"] = "/mnt/fast/nobackup/Clotho/waveforms/test/absent.wav"
    broken = write_text(retrieval_json.parent / "broken.json", json.dumps(content))
    result = evaluate_retrieval(model, broken, "cpu")
    assert result["num_skipped"] == 1 and result["num_audio"] == 7 and result["num_captions"] == 35
    assert result["skipped"][0]["path"].endswith("absent.wav") and "no such file" in result["skipped"][0]["reason"]


# ----------------------------------------------------------------------------------------------------
# Silent files are scored
# ----------------------------------------------------------------------------------------------------
def test_silent_clips_are_classified_not_skipped(model, tmp_path):
    items = [ClassificationItem(write_wav(tmp_path / "silent.wav", np.zeros(5 * SR, dtype=np.float32)), "dog", 1, 0),
             ClassificationItem(write_wav(tmp_path / "noise.wav", noise(5.0, seed=1)), "rain", 1, 1)]
    result = evaluate_classification(model, items, ["dog", "rain"], "{} can be heard", "cpu")
    assert result["num_skipped"] == 0 and result["num_clips"] == 2
    assert math.isfinite(result["accuracy_percent"])


# ----------------------------------------------------------------------------------------------------
# The reference's inference YAML with only its paths edited, on its parent-folder layout
# ----------------------------------------------------------------------------------------------------
REFERENCE_YAML = """embed_size: 1024
temp: 0.07
embed_regularization: true
device: "cuda"

audio_args:
  sr: 32000
  n_fft: 1024
  hop_length: 320
  f_min: 50
  f_max: 14000
  n_mels: 64
  max_length: 10
  mono: True


audio_encoder_args:
  type: "transformer"
  model: "htsat"
  pretrained: False
  freeze: False


text_encoder_args:
  type: 'bert-base-uncased'
  freeze: False


training:
  spec_augmentation: True
  epochs: 20
  clip_grad: 2
  dropout: 0.2

eval:
  data_root_dir: {data_root}/ # containing both metadate and audios
  ckpt: {ckpt} # './pretrained_models/models/model.pt'
"""
SED_EVENTS = {"short": [(0.5, 2.0, "Dog_bark")], "long": [(1.0, 3.0, "Rain"), (10.5, 11.5, "Dog_bark")],
              "silent": [(0.0, 4.0, "Rain")], "ten": [(2.0, 6.0, "Dog_bark")]}
SED_SECONDS = {"short": 4.0, "long": 12.0, "silent": 10.0, "ten": 10.0}


@pytest.fixture(scope="module")
def reference_data_root(tmp_path_factory) -> Path:
    """One parent folder with ESC-50, UrbanSound8K, VGGSound, AudioSet_SL and TAG in the reference's layout;
    a silent clip in each classification set."""
    root = tmp_path_factory.mktemp("reference_data")
    silent = np.zeros(5 * SR, dtype=np.float32)
    esc = root / "ESC-50-master"
    write_text(esc / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n"
               "1-1-A-0.wav,1,0,dog,True,1,A\n1-2-A-1.wav,1,1,church_bells,False,2,A\n2-3-A-0.wav,2,0,dog,True,3,A\n")
    for index, name in enumerate(["1-1-A-0.wav", "1-2-A-1.wav"]):
        write_wav(esc / "audio" / name, noise(5.0, seed=20 + index))
    write_wav(esc / "audio" / "2-3-A-0.wav", silent)
    us8k = root / "UrbanSound8K"
    write_text(us8k / "metadata" / "UrbanSound8K.csv", "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
               "1-0-0-0.wav,1,0,4,1,1,0,air_conditioner\n2-1-0-0.wav,2,0,4,1,2,1,car_horn\n")
    write_wav(us8k / "audio" / "fold1" / "1-0-0-0.wav", noise(4.0, seed=22))
    write_wav(us8k / "audio" / "fold2" / "2-1-0-0.wav", silent)
    vgg = root / "VGGSound"
    write_text(vgg / "metadata" / "vggsound_test.csv", "abc_000010.mp4,dog barking\ndef_000020.mp4,playing drums\n")
    write_wav(vgg / "audio" / "abc_000010.wav", noise(11.0, seed=23))
    write_wav(vgg / "audio" / "def_000020.wav", silent)
    audioset = root / "AudioSet_SL"
    rows = ["filename\tonset\toffset\tevent_label"]
    rows += [f"{clip}.flac\t{onset}\t{offset}\t{label}" for clip, events in SED_EVENTS.items()
             for onset, offset, label in events]
    write_text(audioset / "metadata" / "audioset_eval_strong.tsv", "\n".join(rows) + "\n")
    write_text(audioset / "metadata" / "audioset_eval_strong_durations.tsv",
               "filename\tduration\n" + "".join(f"{clip}.flac\t{seconds}\n" for clip, seconds in SED_SECONDS.items()))
    (audioset / "audio" / "AudioSet_SL_eval").mkdir(parents=True)
    for index, (clip, seconds) in enumerate(SED_SECONDS.items()):
        samples = np.zeros(round(seconds * SR), dtype=np.float32) if clip == "silent" else noise(seconds, seed=30 + index)
        sf.write(audioset / "audio" / "AudioSet_SL_eval" / f"{clip}.flac", samples, SR)
    tag = root / "TAG" / "test"
    grounding = [{"audio_id": "Y1.wav", "audiocap_id": 7, "tokens": ["a", "dog", "barks"],
                  "phrases": [{"phrase": "a dog", "start_index": 0, "end_index": 1, "segments": [[0.5, 2.0]]}]},
                 {"audio_id": "Y2.wav", "audiocap_id": 8, "tokens": ["rain"],
                  "phrases": [{"phrase": "rain", "start_index": 0, "end_index": 0, "segments": [[1.0, 3.5], [0, 0]]}]}]
    write_text(tag / "metadata" / "test.json", json.dumps(grounding))
    write_text(tag / "metadata" / "duration.csv", "audio_id\tduration\nY1.wav\t4.5\nY2.wav\t10.0\n")
    write_wav(tag / "audio" / "Y1.wav", noise(4.0, seed=40))
    write_wav(tag / "audio" / "Y2.wav", noise(10.0, seed=41))
    return root


@pytest.fixture
def reference_yaml(reference_data_root, checkpoint, tmp_path) -> Path:
    return write_text(tmp_path / "inference_cls.yaml",
                      REFERENCE_YAML.format(data_root=reference_data_root, ckpt=checkpoint))


def run_quietly(main, argv: list[str]) -> dict:
    """Run a script; the reference YAML asks for CUDA, which a CPU-only machine replaces with a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*CUDA is not available", category=UserWarning)
        return main(argv)


@pytest.mark.parametrize("dataset,num_clips", [("esc50", 3), ("urbansound8k", 2), ("vggsound", 2)])
def test_reference_yaml_runs_classification(reference_yaml, dataset, num_clips):
    result = run_quietly(zero_shot_clas.main, ["-c", str(reference_yaml), "--dataset", dataset])
    assert result["num_clips"] == num_clips and result["num_skipped"] == 0        # silent clips scored
    assert 0 <= result["accuracy_percent"] <= 100 and result["num_listed_without_file"] == 0
    assert result["protocol"]["long_audio"] == ("cut" if dataset == "vggsound" else "window")


def test_reference_yaml_runs_sed_with_the_reference_frames(reference_yaml, monkeypatch):
    """All 32 frames scored up to 10 s, also past the 4 s clip's end; the 12 s clip cut to its first 10 s;
    the silent clip scored; the tsv durations passed to the metrics."""
    spy = Spy(monkeypatch, tools.eval.sed, "sed_metrics")
    result = run_quietly(zero_shot_sed.main, ["-c", str(reference_yaml)])
    scores, _, durations = spy.calls[-1][0]
    assert sorted(scores) == ["long", "short", "silent", "ten"] and result["num_skipped"] == 0
    assert all(len(frame_scores) == 32 and frame_scores["offset"].iloc[-1] == pytest.approx(10.0)
               for frame_scores in scores.values())
    assert durations == SED_SECONDS
    assert result["num_clips"] == 4 and result["num_classes"] == 2
    assert result["protocol"] == {"long_audio": "cut", "score_tiled_tail": True}
    assert all(0.0 <= result[key] <= 1.0 for key in ("psds1", "psds2", "collar_f1", "segment_f1"))


def test_sed_switches_drop_the_tail_and_window_long_audio(reference_yaml, monkeypatch):
    spy = Spy(monkeypatch, tools.eval.sed, "sed_metrics")
    run_quietly(zero_shot_sed.main, ["-c", str(reference_yaml), "--drop-tiled-tail", "--long-audio", "window"])
    scores = spy.calls[-1][0][0]
    assert len(scores["short"]) == math.ceil(4.0 * 32 / 10) and scores["short"]["offset"].iloc[-1] == pytest.approx(4.0)
    assert len(scores["long"]) == math.ceil(12.0 * 32 / 10) and scores["long"]["offset"].iloc[-1] == pytest.approx(12.0)
    assert len(scores["ten"]) == 32


def test_sed_cut_scores_are_the_first_ten_seconds(model, reference_data_root, monkeypatch):
    spy = Spy(monkeypatch, tools.eval.sed, "sed_metrics")
    audioset = reference_data_root / "AudioSet_SL"
    tools.eval.sed.evaluate_sed(model, audioset / "audio" / "AudioSet_SL_eval",
                                 audioset / "metadata" / "audioset_eval_strong.tsv",
                                 audioset / "metadata" / "audioset_eval_strong_durations.tsv", "cpu")
    long_clip = torch.from_numpy(load_audio(audioset / "audio" / "AudioSet_SL_eval" / "long.flac", SR))
    with torch.no_grad():
        frames, _ = encode_audio_windows(model, long_clip[:TEN_SECONDS])
    class_embeds = embed_texts(model, ["dog bark", "rain"])
    expected = tools.eval.sed.sed_scores_from_frames({"long": (F.normalize(frames, dim=-1) @ class_embeds.T).numpy()},
                                                      ["dog bark", "rain"])["long"]
    np.testing.assert_allclose(spy.calls[-1][0][0]["long"][["dog bark", "rain"]].to_numpy(),
                               expected[["dog bark", "rain"]].to_numpy(), atol=1e-5)


def test_reference_yaml_runs_grounding_with_the_duration_file(reference_yaml, monkeypatch):
    spy = Spy(monkeypatch, tools.eval.grounding, "grounding_psds")
    result = run_quietly(zero_shot_grounding.main, ["-c", str(reference_yaml)])
    (probs, truth, durations), options = spy.calls[-1]
    assert durations == {"7_0": 4.5, "8_0": 10.0}                                  # duration.csv, not the audio
    assert options["clip_to_duration"] is False and all(len(values) == 32 for values in probs.values())
    assert result["num_phrases"] == 2 and result["protocol"] == {"long_audio": "window", "score_tiled_tail": True}
    run_quietly(zero_shot_grounding.main, ["-c", str(reference_yaml), "--drop-tiled-tail"])
    assert spy.calls[-1][1]["clip_to_duration"] is True


def test_crop_is_refused_where_timestamps_matter(model, reference_data_root):
    audioset = reference_data_root / "AudioSet_SL"
    with pytest.raises(ValueError, match="crop.*does not suit sed"):
        tools.eval.sed.evaluate_sed(model, audioset / "audio" / "AudioSet_SL_eval",
                                     audioset / "metadata" / "audioset_eval_strong.tsv",
                                     audioset / "metadata" / "audioset_eval_strong_durations.tsv", "cpu",
                                     long_audio="crop")


def test_sed_labels_differing_in_case_are_separate_columns_with_one_text(model, reference_data_root, monkeypatch,
                                                                          tmp_path):
    """As the reference: "Dog_bark" and "dog bark" are two score columns (two classes in the metrics), both
    scored with the text "dog bark"."""
    spy = Spy(monkeypatch, tools.eval.sed, "sed_metrics")
    audioset = reference_data_root / "AudioSet_SL"
    rows = ["filename\tonset\toffset\tevent_label", "short.flac\t0.5\t2.0\tDog_bark", "long.flac\t1.0\t3.0\tRain",
            "ten.flac\t2.0\t6.0\tdog bark"]
    tsv = write_text(tmp_path / "events.tsv", "\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="kept as separate classes"):
        result = tools.eval.sed.evaluate_sed(model, audioset / "audio" / "AudioSet_SL_eval", tsv,
                                             audioset / "metadata" / "audioset_eval_strong_durations.tsv", "cpu")
    scores, truth, _ = spy.calls[-1][0]
    assert result["num_classes"] == 3
    assert list(scores["ten"].columns) == ["onset", "offset", "Dog_bark", "dog bark", "rain"]
    assert truth["short"] == [(0.5, 2.0, "Dog_bark")] and truth["ten"] == [(2.0, 6.0, "dog bark")]
    np.testing.assert_array_equal(scores["ten"]["Dog_bark"].to_numpy(), scores["ten"]["dog bark"].to_numpy())
