"""Tests of the synthetic corpus generator (data_handling.synthetic)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_handling.synthetic import (
    EVENT_TYPES,
    SoundEvent,
    caption_for,
    corpus_exists,
    event_phrase,
    generate_corpus,
    render_scene,
)
from data_handling.synthetic.__main__ import main as cli_main
from data_handling.synthetic.captions import (
    FRAMES,
    OVERLAP_CONNECTORS,
    SEQUENTIAL_CONNECTORS,
    split_article,
)
from data_handling.synthetic.scenes import add_event, clip_rng

SMALL = {"num_train": 8, "num_test": 6, "num_esc_per_class": 2}
STFT_WINDOW = 4096  # 7.8 Hz bins: resolves the 40 Hz guard between the hum and engine bands
STFT_HOP = 1024
SAMPLE_RATE = 32000
MIN_EVENT_EXCESS_DB = 3.0


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def strong_labels(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """filename -> [(onset, offset, label)] in file order."""
    labels: dict[str, list[tuple[float, float, str]]] = {}
    for row in read_tsv(path):
        labels.setdefault(row["filename"], []).append(
            (float(row["onset"]), float(row["offset"]), row["event_label"])
        )
    return labels


def nouns_of(label: str) -> list[list[str]]:
    """Word lists of the synonyms (without article) of the class with this SED label."""
    return [split_article(s)[1].split(" ") for s in EVENT_TYPES[label.replace("_", " ")].synonyms]


def find_words(words: list[str], needle: list[str], start: int) -> int:
    """Index of the first occurrence of needle in words at or after start, or -1."""
    for index in range(start, len(words) - len(needle) + 1):
        if words[index : index + len(needle)] == needle:
            return index
    return -1


def assert_mentions_in_order(caption: str, labels: list[str]) -> None:
    """Each label's synonym appears in the caption, in the given order."""
    words, position = caption.split(" "), 0
    for label in labels:
        hits = [(i, len(n)) for n in nouns_of(label) if (i := find_words(words, n, position)) >= 0]
        assert hits, f"{label!r} not mentioned after word {position} in {caption!r}"
        index, length = min(hits)
        position = index + length


def band_power_per_frame(pcm: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """[num_frames] power inside band_hz of each Hann-windowed STFT frame of pcm [num_samples]."""
    samples = pcm.astype(np.float64) / 32768
    frames = np.lib.stride_tricks.sliding_window_view(samples, STFT_WINDOW)[::STFT_HOP] * np.hanning(
        STFT_WINDOW
    )
    freqs = np.fft.rfftfreq(STFT_WINDOW, 1 / SAMPLE_RATE)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return spectrum[:, (freqs >= band_hz[0]) & (freqs <= band_hz[1])].sum(1)


def check_ground_truth_energy(pcm: np.ndarray, events: list[tuple[float, float, str]]) -> int:
    """Assert that every class's band is loud exactly where the ground truth says; return #checks (0 if
    the clip has too little event-free time to measure the background)."""
    num_frames = (pcm.size - STFT_WINDOW) // STFT_HOP + 1
    starts = np.arange(num_frames) * STFT_HOP / SAMPLE_RATE
    ends = starts + STFT_WINDOW / SAMPLE_RATE

    def outside(segments: list[tuple[float, float, str]]) -> np.ndarray:
        mask = np.ones(num_frames, dtype=bool)
        for onset, offset, _ in segments:
            mask &= (ends <= onset) | (starts >= offset)
        return mask

    event_free = outside(events)
    if event_free.sum() < 5:
        return 0
    checks = 0
    for event_type in EVENT_TYPES.values():
        power = band_power_per_frame(pcm, event_type.band_hz)
        background_db = 10 * np.log10(power[event_free].mean())
        own = [e for e in events if e[2] == event_type.label]
        for onset, offset, _ in own:
            inside = (starts >= onset) & (ends <= offset)
            excess = 10 * np.log10(power[inside].mean()) - background_db
            assert excess >= MIN_EVENT_EXCESS_DB, (
                f"{event_type.name} at {onset}-{offset}: only {excess:.1f} dB"
            )
            checks += 1
        silent = outside(own)
        excess = 10 * np.log10(power[silent].mean()) - background_db
        assert excess < MIN_EVENT_EXCESS_DB, f"{event_type.name} band {excess:.1f} dB up where it is absent"
        checks += 1
    return checks


# ----------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus_a")
    summary = generate_corpus(out, seed=0, num_workers=2, **SMALL)
    return out, summary


# ----------------------------------------------------------------------------------------------------
# Classes
# ----------------------------------------------------------------------------------------------------


def test_event_types_are_distinct_recipes_with_disjoint_bands() -> None:
    assert len(EVENT_TYPES) >= 12
    bands = sorted(t.band_hz for t in EVENT_TYPES.values())
    assert bands[0][0] >= 40 and bands[-1][1] <= 14000
    for (_, high), (next_low, _) in zip(bands, bands[1:], strict=False):
        assert high < next_low
    for event_type in EVENT_TYPES.values():
        assert len(event_type.synonyms) >= 2
        assert 0.5 <= event_type.duration_s[0] < event_type.duration_s[1] <= 4.0


def test_synonyms_never_match_another_class_or_the_templates() -> None:
    template_words = [
        *SEQUENTIAL_CONNECTORS,
        *OVERLAP_CONNECTORS,
        *(p + " " + s for p, s in FRAMES),
        "with in the background",
        "short brief long loud soft quiet faint rising falling rapid slow "
        "heavy light high pitched low pitched deep",
    ]
    for name, event_type in EVENT_TYPES.items():
        for noun in nouns_of(event_type.label):
            others = [s for other, t in EVENT_TYPES.items() if other != name for s in t.synonyms]
            for text in [*others, *template_words]:
                assert find_words(text.split(" "), noun, 0) < 0, f"{noun} of {name} inside {text!r}"


# ----------------------------------------------------------------------------------------------------
# Determinism and layout
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_bytes_any_worker_count_and_other_seed_differs(corpus, tmp_path: Path) -> None:
    out_a, _ = corpus
    generate_corpus(tmp_path / "b", seed=0, num_workers=1, **SMALL)
    generate_corpus(tmp_path / "c", seed=1, num_workers=2, **SMALL)
    files_a, files_b, files_c = all_files(out_a), all_files(tmp_path / "b"), all_files(tmp_path / "c")
    assert files_a.keys() == files_b.keys() == files_c.keys()
    assert files_a == files_b
    differing = [name for name in files_a if files_a[name] != files_c[name]]
    wavs = [name for name in files_a if name.endswith(".wav")]
    assert set(wavs) <= set(differing)
    assert "train/train.json" in differing and "sed/metadata/eval.tsv" in differing


def test_summary_and_done_marker(corpus) -> None:
    out, summary = corpus
    assert corpus_exists(out)
    assert summary["seconds"] > 0 and summary["num_audio_files"] == 8 + 3 * 6 + 2 * len(EVENT_TYPES)
    for path in summary["paths"].values():
        assert Path(path).exists(), path
    marker = json.loads((out / "DONE").read_text())
    assert marker["seed"] == 0 and marker["num_train"] == 8 and marker["events"] == sorted(EVENT_TYPES)


def test_metadata_files_parse_in_their_dataset_formats(corpus) -> None:
    from sed_scores_eval import io

    out, _ = corpus
    classes = json.loads((out / "classes.json").read_text())["events"]
    assert [c["name"] for c in classes] == sorted(EVENT_TYPES)
    train = json.loads((out / "train/train.json").read_text())
    assert train["num_captions_per_audio"] == 1 and len(train["data"]) == 8
    assert all((out / "train" / entry["audio"]).is_file() for entry in train["data"])
    retrieval = json.loads((out / "retrieval/test.json").read_text())
    assert retrieval["num_captions_per_audio"] == 5 and len(retrieval["data"]) == 6
    assert all((out / "retrieval" / entry["audio"]).is_file() for entry in retrieval["data"])

    ground_truth = io.read_ground_truth_events(out / "sed/metadata/eval.tsv")
    durations = io.read_audio_durations(out / "sed/metadata/eval_durations.tsv")
    assert sorted(durations) == [f"sed_{i:05d}" for i in range(6)] and set(durations.values()) == {10.0}
    assert set(ground_truth) <= set(durations)
    labels = {t.label for t in EVENT_TYPES.values()}
    for events in ground_truth.values():
        for onset, offset, label in events:
            assert 0 <= onset < offset <= 10.0 and label in labels
            assert round(onset, 3) == onset and round(offset, 3) == offset

    grounding = json.loads((out / "grounding/test.json").read_text())
    assert [g["audio_id"] for g in grounding] == [f"grd_{i:05d}.wav" for i in range(6)]
    assert len({g["audiocap_id"] for g in grounding}) == 6
    assert set(io.read_audio_durations(out / "grounding/durations.tsv").values()) == {10.0}

    with (out / "esc50/meta/esc50.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert len(rows) == 2 * len(EVENT_TYPES)
    folds = [int(row["fold"]) for row in rows]
    assert (
        set(folds) == {1, 2, 3, 4, 5}
        and max(folds.count(f) for f in range(1, 6)) - min(folds.count(f) for f in range(1, 6)) <= 1
    )
    for row in rows:
        assert row["filename"] == f"{row['fold']}-{row['src_file']}-A-{row['target']}.wav"
        assert sorted(EVENT_TYPES)[int(row["target"])].replace(" ", "_") == row["category"]
        assert row["esc10"] == "False" and row["take"] == "A"
        assert (out / "esc50/audio" / row["filename"]).is_file()


def test_audio_is_32k_mono_pcm16_of_the_stated_duration(corpus) -> None:
    out, _ = corpus
    wavs = sorted(out.rglob("*.wav"))
    assert len(wavs) == 8 + 3 * 6 + 2 * len(EVENT_TYPES)
    for wav in wavs:
        info = sf.info(wav)
        expected = 5.0 if wav.parent.parent.name == "esc50" else 10.0
        assert (info.samplerate, info.channels, info.subtype) == (32000, 1, "PCM_16")
        assert info.frames == int(expected * 32000)
        pcm, _ = sf.read(wav, dtype="int16")
        assert 0 < np.abs(pcm.astype(np.int32)).max() < 32767


# ----------------------------------------------------------------------------------------------------
# Ground truth is where the sound is
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_written_ground_truth_matches_audio_energy(corpus) -> None:
    out, _ = corpus
    checks = 0
    for split, labels_file in (
        ("sed", "sed/metadata/eval.tsv"),
        ("train", "train/events.tsv"),
        ("grounding", "grounding/events.tsv"),
    ):
        for filename, events in strong_labels(out / labels_file).items():
            pcm, _ = sf.read(out / split / "audio" / filename, dtype="int16")
            checks += check_ground_truth_energy(pcm, events)
    assert checks >= 50, "too few clips had event-free time to measure the background"


@pytest.mark.slow
def test_ground_truth_matches_audio_energy_over_many_scenes() -> None:
    types = list(EVENT_TYPES.values())
    checks = 0
    for index in range(12):
        pcm, events = render_scene(clip_rng(1234, 9, index), types, num_events=2)
        checks += check_ground_truth_energy(
            pcm, [(e.onset, e.offset, EVENT_TYPES[e.name].label) for e in events]
        )
    assert checks >= 100


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_event_is_non_zero_exactly_between_its_onset_and_offset(name: str) -> None:
    num_samples = 10 * SAMPLE_RATE
    flat_background = np.full(num_samples // 2 + 1, 1 / (num_samples // 2 + 1))
    for index in range(3):
        mixture = np.zeros(num_samples, dtype=np.float32)
        event = add_event(clip_rng(5, 0, index), mixture, flat_background, EVENT_TYPES[name], snr_db=10.0)
        assert round(event.onset, 3) == event.onset and round(event.offset, 3) == event.offset
        onset, offset = round(event.onset * 1000) * 32, round(event.offset * 1000) * 32  # 32 samples per ms
        assert not mixture[:onset].any() and not mixture[offset:].any()
        assert mixture[onset] != 0 and mixture[offset - 1] != 0


# ----------------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------------


def test_captions_mention_every_event_in_onset_order(corpus) -> None:
    out, _ = corpus
    retrieval = json.loads((out / "retrieval/test.json").read_text())["data"]
    labels = strong_labels(out / "retrieval/events.tsv")
    for entry in retrieval:
        captions = [entry[f"caption_{k}"] for k in range(1, 6)]
        assert len(set(captions)) == 5
        for caption in captions:
            assert_mentions_in_order(caption, [label for _, _, label in labels[Path(entry["audio"]).name]])
    train_labels = strong_labels(out / "train/events.tsv")
    for entry in json.loads((out / "train/train.json").read_text())["data"]:
        assert_mentions_in_order(
            entry["caption"], [label for _, _, label in train_labels[Path(entry["audio"]).name]]
        )


def test_grounding_phrases_index_their_words_and_segments_are_the_events(corpus) -> None:
    out, _ = corpus
    labels = strong_labels(out / "grounding/events.tsv")
    for entry in json.loads((out / "grounding/test.json").read_text()):
        words = entry["tokens"].split(" ")
        assert entry["tokens"] == entry["tokens"].lower() and all(words)
        events = labels[entry["audio_id"]]
        assert [p["segments"] for p in entry["phrases"]] == [[[onset, offset]] for onset, offset, _ in events]
        previous_end = -1
        for phrase, (_, _, label) in zip(entry["phrases"], events, strict=True):
            start, end = phrase["start_index"], phrase["end_index"]
            assert previous_end < start <= end
            assert " ".join(words[start : end + 1]) == phrase["phrase"]
            assert any(find_words(phrase["phrase"].split(" "), noun, 0) >= 0 for noun in nouns_of(label))
            previous_end = end


def test_caption_for_returns_spans_in_input_order() -> None:
    later = SoundEvent("siren", 5.0, 8.0, pitch=0.5, length_fraction=0.5, snr_db=15.0)
    earlier = SoundEvent("dog bark", 1.0, 2.0, pitch=0.5, length_fraction=0.5, snr_db=15.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        caption, spans = caption_for([later, earlier], rng)
        words = caption.split(" ")
        assert spans[1][1] < spans[0][0]
        assert "siren" in words[spans[0][0] : spans[0][1] + 1]
        assert {"dog", "bark"} & set(words[spans[1][0] : spans[1][1] + 1])
        assert_mentions_in_order(caption, ["dog_bark", "siren"])


def test_adjectives_follow_the_sampled_parameters() -> None:
    loud_long_high = SoundEvent("whistle", 0.0, 2.0, pitch=0.9, length_fraction=0.9, snr_db=24.0)
    soft_short_low = SoundEvent("whistle", 0.0, 0.7, pitch=0.1, length_fraction=0.1, snr_db=6.0)
    rng = np.random.default_rng(0)
    loud_words = {w for _ in range(50) for w in event_phrase(loud_long_high, rng)}
    soft_words = {w for _ in range(50) for w in event_phrase(soft_short_low, rng)}
    assert {"loud", "long", "high"} <= loud_words and not {
        "soft",
        "quiet",
        "faint",
        "short",
        "low",
    } & loud_words
    assert {"short", "low"} <= soft_words and not {"loud", "long", "high"} & soft_words
    assert {"soft", "quiet", "faint"} & soft_words


def test_overlap_and_sequence_use_the_right_connectors() -> None:
    first = SoundEvent("bell", 1.0, 3.0, pitch=0.5, length_fraction=0.5, snr_db=15.0)
    overlapping = SoundEvent("rain", 2.0, 5.0, pitch=0.5, length_fraction=0.5, snr_db=15.0)
    following = SoundEvent("rain", 4.0, 6.0, pitch=0.5, length_fraction=0.5, snr_db=15.0)
    rng = np.random.default_rng(0)
    quiet_overlapping = SoundEvent("rain", 2.0, 5.0, pitch=0.5, length_fraction=0.5, snr_db=6.0)
    for _ in range(20):
        overlap_caption = caption_for([first, overlapping], rng)[0]
        sequence_caption = caption_for([first, following], rng)[0]
        assert any(f" {c} " in overlap_caption for c in OVERLAP_CONNECTORS)
        assert not any(f" {c} " in overlap_caption for c in SEQUENTIAL_CONNECTORS)
        assert any(f" {c} " in sequence_caption for c in SEQUENTIAL_CONNECTORS)
        assert not any(f" {c} " in sequence_caption for c in OVERLAP_CONNECTORS)
    background_captions = [caption_for([first, quiet_overlapping], rng)[0] for _ in range(20)]
    assert any(c.endswith("in the background") for c in background_captions)


# ----------------------------------------------------------------------------------------------------
# Options and bad input
# ----------------------------------------------------------------------------------------------------


def test_event_subset_and_cli(tmp_path: Path) -> None:
    summary = cli_main(
        [
            "--out",
            str(tmp_path / "sub"),
            "--num-train",
            "2",
            "--num-test",
            "2",
            "--num-esc-per-class",
            "1",
            "--seed",
            "3",
            "--events",
            "siren,dog_bark",
        ]
    )
    assert summary["events"] == ["dog bark", "siren"]
    classes = json.loads((tmp_path / "sub/classes.json").read_text())["events"]
    assert [c["name"] for c in classes] == ["dog bark", "siren"]
    labels = {row["event_label"] for row in read_tsv(tmp_path / "sub/sed/metadata/eval.tsv")}
    assert labels <= {"dog_bark", "siren"}


@pytest.mark.parametrize(
    "bad",
    [
        {"num_train": 0},
        {"num_test": -1},
        {"num_esc_per_class": 0},
        {"num_train": 2.5},
        {"event_names": ["siren", "kazoo"]},
        {"event_names": []},
    ],
)
def test_bad_arguments_raise_before_writing(tmp_path: Path, bad: dict) -> None:
    arguments = {"num_train": 2, "num_test": 2, "num_esc_per_class": 1, **bad}
    with pytest.raises(ValueError, match="kazoo|positive|empty") as error:
        generate_corpus(tmp_path / "out", **arguments)
    assert "choose" in str(error.value) or "pass" in str(error.value) or "name" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_input_as_system_exit(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown event type"):
        cli_main(["--out", str(tmp_path / "out"), "--events", "kazoo"])
    with pytest.raises(SystemExit, match="num_train must be a positive integer"):
        cli_main(["--out", str(tmp_path / "out"), "--num-train", "0"])
    assert not (tmp_path / "out").exists()


def test_unwritable_output_raises_before_writing(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        generate_corpus(blocker / "corpus", num_train=1, num_test=1)
    with pytest.raises(ValueError, match="is a file"):
        generate_corpus(blocker, num_train=1, num_test=1)
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            generate_corpus(locked / "corpus", num_train=1, num_test=1)
        assert not any(locked.iterdir())


def test_non_empty_output_needs_overwrite_which_removes_only_the_corpus(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty.*overwrite"):
        generate_corpus(out, num_train=1, num_test=1, num_esc_per_class=1)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert not corpus_exists(out)

    generate_corpus(out, num_train=2, num_test=1, num_esc_per_class=1, overwrite=True)
    (out / "train/audio/stale.wav").write_bytes(b"old")
    generate_corpus(out, num_train=1, num_test=1, num_esc_per_class=1, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "train/audio").iterdir()) == ["train_00000.wav"]
    assert corpus_exists(out)
