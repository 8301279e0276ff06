"""detect.py and tools/detect: decisions, streaming, outputs scored by sed_scores_eval, calibration, bad input."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import detect
import tools.detect.streaming as streaming
from data_handling.synthetic.events import EVENT_TYPES
from models.ase_model import ASE, check_waveform
from models.factory import model_from_checkpoint
from models.windowing import FRAME_HOP_SECONDS, FRAMES_PER_WINDOW, prepare_waveform
from tests.long_recording import make_long_recording
from tools.detect.detector import StreamOptions, detect_files
from tools.detect.events import DecisionSettings, close_gaps, drop_short_runs
from tools.detect.streaming import FrameStream
from tools.eval.cli import run_script
from tools.eval.grounding_metrics import active_regions, join_close_regions
from tools.eval.sed import evaluate_sed
from tools.tiny_model import tiny_config_dict

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "outputs" / "quickstart" / "best.pt"
needs_quickstart = pytest.mark.skipif(not QUICKSTART.is_file(), reason="outputs/quickstart/best.pt is absent "
                                      "(python pretrain.py -c settings/quickstart.yaml trains it)")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def sed_paths(corpus: Path) -> tuple[Path, Path, Path]:
    sed = corpus / "sed"
    return sed / "audio", sed / "metadata" / "eval.tsv", sed / "metadata" / "eval_durations.tsv"


def run_detect(checkpoint: Path, *args: str) -> dict:
    return detect.main(["--ckpt", str(checkpoint), "--device", "cpu", "--num-workers", "0", *args])


# ----------------------------------------------------------------------------------------------------
# Decisions
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_decision_curves_threshold_like_gap_joining_and_min_length(seed):
    """Thresholding the closed and opened curve = thresholding, joining gaps, dropping short runs."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        length, gap, min_frames = int(rng.integers(1, 40)), int(rng.integers(0, 4)), int(rng.integers(1, 5))
        scores, threshold = rng.random((length, 1)), float(rng.random())
        decided = drop_short_runs(close_gaps(scores, gap), min_frames)[:, 0] > threshold
        expected = np.zeros(length, dtype=bool)
        for start, end in active_regions(join_close_regions(scores[:, 0] > threshold, gap)):
            expected[start:end] = end - start >= min_frames
        assert (decided == expected).all()


def test_decision_settings_frames_and_errors():
    settings = DecisionSettings(join_gap_seconds=0.5, min_length_seconds=0.6)
    assert (settings.gap_frames, settings.min_frames) == (1, 2)
    with pytest.raises(ValueError, match="score must be one of"):
        DecisionSettings(score="logit")


# ----------------------------------------------------------------------------------------------------
# Streaming
# ----------------------------------------------------------------------------------------------------
def test_stream_equals_whole_file_windows_with_bounded_buffer(model, tmp_path):
    """35.3 s at 44.1 kHz: streamed frames = encode_long_audio's of the whole file; a batch holds <= 2 windows."""
    rng = np.random.default_rng(0)
    path = tmp_path / "long.wav"
    sf.write(str(path), (0.1 * rng.standard_normal(int(35.3 * 44100))).astype(np.float32), 44100)
    stream = FrameStream(model, path, "cpu", overlap=0.0, windows_per_batch=2)
    streamed = torch.cat([chunk.frames for chunk in stream])
    from data_handling.audio_io import load_audio

    waveform = torch.from_numpy(load_audio(path, 32000))
    with torch.no_grad():
        model.eval()
        whole, _ = model.encode_long_audio(prepare_waveform(waveform, 32000, "tile"))
    assert streamed.shape == whole.shape == (113, 32)
    assert torch.allclose(streamed, whole, atol=1e-5)
    assert stream.peak_batch_samples <= 2 * 320000
    overlapped = FrameStream(model, path, "cpu", overlap=0.5, windows_per_batch=2)
    assert torch.cat([chunk.frames for chunk in overlapped]).shape == (113, 32)
    assert overlapped.window_starts() == [0, 16, 32, 48, 64, 80, 96]


def test_short_file_keeps_frames_of_real_audio(model, tmp_path):
    path = tmp_path / "short.flac"
    sf.write(str(path), np.full(int(3.2 * 16000), 0.1, dtype=np.float32), 16000)
    result = next(detect_files(model, [path], ["a bell"], options=StreamOptions(progress=False)))
    assert result.smoothed.shape == (11, 1)
    assert result.boundaries[-1] == pytest.approx(3.2)


@pytest.mark.slow
def test_long_file_memory_is_bounded(model, tmp_path):
    """A 10-minute file: Python-side allocations stay far below the file's samples (76.8 MB as float32)."""
    path = make_long_recording(tmp_path / "ten_minutes.wav", 600.0, [("rain", 100.0, 2.0)])
    tracemalloc.start()
    result = next(detect_files(model, [path], ["rain", "hiss"], options=StreamOptions(batch_size=4,
                                                                                     progress=False)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.smoothed.shape == (1920, 2)
    assert peak < 30e6, f"peak traced allocation {peak / 1e6:.1f} MB"


WELL_DETECTED = ("rain", "hiss", "bird chirp", "whistle", "engine")


@needs_quickstart
def test_long_file_events_found_within_one_frame(tmp_path):
    """Events placed at known times in a 10-minute file are found at those times within one frame."""
    rng = np.random.default_rng(1)
    events, onset = [], 7.3
    while onset < 585:
        name = WELL_DETECTED[len(events) % len(WELL_DETECTED)]
        length = round(float(rng.uniform(1.5, 2.5)), 3)
        events.append((name, round(onset, 3), length))
        onset += length + float(rng.uniform(8, 20))
    path = make_long_recording(tmp_path / "ten_minutes.wav", 600.0, events)
    quickstart = model_from_checkpoint(QUICKSTART, None, "cpu")
    settings = DecisionSettings(join_gap_seconds=0.7, min_length_seconds=0.6)
    result = next(detect_files(quickstart, [path], list(WELL_DETECTED), settings,
                               options=StreamOptions(progress=False)))
    for name, onset, length in events:
        found = [event for event in result.events if event.label == name and event.onset < onset + length
                 and onset < event.offset]
        assert len(found) == 1, (name, onset, found)
        assert abs(found[0].onset - onset) <= FRAME_HOP_SECONDS + 1e-6, (name, onset, found)
        assert abs(found[0].offset - (onset + length)) <= FRAME_HOP_SECONDS + 1e-6, (name, onset, found)


class BandEnergyOracle(ASE):
    """The tiny ASE with its network replaced by an oracle that knows the synthetic corpus's frequency bands.

    Only `encode_audio` (window waveforms -> frames) and `embed_text` (queries -> embeddings) are replaced;
    everything around them (windows read from the file, resampling, batching, overlap averaging, frame
    times, scores, smoothing, decisions) is the real pipeline. A frame embedding is computed from the
    window the pipeline hands over, never from the file: per frame of 10 / 32 s of that window, the power in
    each class's band (`EVENT_TYPES[name].band_hz`) relative to the window's median frame in that band
    (the background: an event covers at most 9 of a window's 32 frames, and events of one class are
    minutes apart), as max(0, log ratio), followed by a constant 1 (so a background frame points away from
    every class). A query is the one-hot of its class, so its cosine with a frame is at most about 0.1 in
    background and about 0.98 inside an event (20 dB in-band SNR).
    """

    CLASSES = tuple(EVENT_TYPES)

    def __init__(self, config: dict):
        super().__init__(config)
        self.batch_shapes: list[tuple[int, ...]] = []

    def encode_audio(self, audio: torch.Tensor, need_clip_features: bool = True) -> tuple[None, torch.Tensor]:
        check_waveform(audio)
        self.batch_shapes.append(tuple(audio.shape))
        frame = audio.shape[1] // FRAMES_PER_WINDOW
        spectrum = torch.fft.rfft(audio[:, :frame * FRAMES_PER_WINDOW].float().reshape(audio.shape[0], -1, frame))
        power = spectrum.real.square() + spectrum.imag.square()                           # [B, 32, bins]
        hertz = torch.fft.rfftfreq(frame, 1.0 / self.sample_rate)
        in_band = torch.stack([(hertz >= EVENT_TYPES[name].band_hz[0]) & (hertz <= EVENT_TYPES[name].band_hz[1])
                               for name in self.CLASSES], dim=-1).float()                 # [bins, C]
        bands = power @ in_band                                                           # [B, 32, C]
        background = bands.median(dim=1, keepdim=True).values.clamp_min(1e-12)
        excess = torch.log(bands.clamp_min(1e-12) / background).clamp_min(0.0)
        return None, torch.cat([excess, torch.ones_like(excess[..., :1])], dim=-1)      # [B, 32, C + 1]

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return torch.eye(len(self.CLASSES) + 1)[[self.CLASSES.index(text) for text in texts]]


class RecordingFrameStream(FrameStream):
    """FrameStream that keeps its instances, to read `peak_batch_samples` after detect_files."""

    instances: list[FrameStream] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingFrameStream.instances.append(self)


@pytest.fixture(scope="module")
def oracle_recording(tmp_path_factory) -> tuple[Path, list[tuple[str, float, float]]]:
    """A 10-minute 44.1 kHz file (so every window is resampled to 32 kHz) holding 36 events of all 13 classes
    at random whole-ms onsets (any phase relative to the frame grid), 1.5 to 2.5 s long, 8 to 20 s apart."""
    rng = np.random.default_rng(2)
    events, onset = [], 5.123
    while onset < 585:
        name = BandEnergyOracle.CLASSES[len(events) % len(BandEnergyOracle.CLASSES)]
        length = round(float(rng.uniform(1.5, 2.5)), 3)
        events.append((name, round(onset, 3), length))
        onset += length + float(rng.uniform(8, 20))
    path = make_long_recording(tmp_path_factory.mktemp("oracle") / "ten_minutes.wav", 600.0, events,
                               sample_rate=44100)
    return path, events


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_long_file_events_found_within_one_frame_by_oracle(tiny_text_dir, oracle_recording, overlap, monkeypatch):
    """The same acceptance item as test_long_file_events_found_within_one_frame, without a trained model: the
    real detect_files pipeline with only the network replaced by BandEnergyOracle finds every event of a
    10-minute 44.1 kHz file once, onset and offset within one frame (10 / 32 s), with bounded memory.

    Decisions: cosine scores, threshold 0.5 (the default; background frames score ~0.1, event frames ~0.98,
    a frame partly covered by an event lands either side of it, which keeps the error below one frame);
    median filter of 3 frames (the SED protocol's; it leaves step edges in place and removes one-frame noise
    blips); join gaps up to 1 s (3 frames: the pauses inside intermittent classes such as knock or clicking,
    far below the >= 8 s between events); minimum length 0.6 s (2 frames; events last >= 1.5 s). Any shift
    of frame times or of window offsets by a frame moves onsets or offsets out of the tolerance. Memory:
    tracemalloc sees numpy (decoding, resampling, scores), not torch's buffers; those are bounded by the
    batch (`peak_batch_samples`, and the window batches the oracle is handed).
    """
    path, truth = oracle_recording
    oracle = BandEnergyOracle(tiny_config_dict(tiny_text_dir))
    RecordingFrameStream.instances = []
    monkeypatch.setattr(streaming, "FrameStream", RecordingFrameStream)
    settings = DecisionSettings(score="cosine", median_frames=3, join_gap_seconds=1.0, min_length_seconds=0.6)
    batch_size = 4
    tracemalloc.start()
    try:
        result = next(detect_files(oracle, [path], list(BandEnergyOracle.CLASSES), settings, default_threshold=0.5,
                                   device="cpu", options=StreamOptions(overlap=overlap, batch_size=batch_size,
                                                                       num_workers=0, progress=False)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.smoothed.shape == (1920, len(BandEnergyOracle.CLASSES))
    for name, onset, length in truth:
        found = [event for event in result.events if event.label == name and event.onset < onset + length
                 and onset < event.offset]
        assert len(found) == 1, (name, onset, length, found)
        assert abs(found[0].onset - onset) <= FRAME_HOP_SECONDS + 1e-6, (name, onset, length, found)
        assert abs(found[0].offset - (onset + length)) <= FRAME_HOP_SECONDS + 1e-6, (name, onset, length, found)
    assert len(result.events) == len(truth), "detections that match no event"
    (stream,) = RecordingFrameStream.instances
    assert 0 < stream.peak_batch_samples <= batch_size * 320000
    assert max(shape[0] for shape in oracle.batch_shapes) <= batch_size
    assert {shape[1] for shape in oracle.batch_shapes} == {320000}
    assert sum(shape[0] for shape in oracle.batch_shapes) == len(stream.window_starts())
    assert peak < 15e6, f"peak traced allocation {peak / 1e6:.1f} MB (the file as float32: 76.8 MB)"


# ----------------------------------------------------------------------------------------------------
# detect.py: outputs scored by sed_scores_eval, calibration
# ----------------------------------------------------------------------------------------------------
def test_detect_outputs_give_evaluate_sed_psds(checkpoint, model, synthetic_corpus, tmp_path):
    audio, tsv, durations = sed_paths(synthetic_corpus)
    summary = run_detect(checkpoint, str(audio), "--classes-from", str(tsv), "--out-dir", str(tmp_path / "out"),
                         "--ground-truth", str(tsv))
    reference = evaluate_sed(model, audio, tsv, durations, "cpu", num_workers=0)
    for key in ("psds1", "psds2", "collar_f1", "segment_f1"):
        assert summary["scores"][key] == pytest.approx(reference[key], abs=1e-6), key
    from sed_scores_eval.base_modules.detection import scores_to_event_list
    from sed_scores_eval.base_modules.io import read_sed_scores

    thresholds = json.loads((tmp_path / "out" / "detections.json").read_text())["thresholds"]
    scores = read_sed_scores(tmp_path / "out" / "scores")
    expected = sorted((f"{clip}.wav", round(on, 4), round(off, 4), label)
                      for clip, events in scores_to_event_list(scores, thresholds).items()
                      for on, off, label in events)
    rows = [line.split("\t") for line in (tmp_path / "out" / "events.tsv").read_text().splitlines()[1:]]
    assert sorted((name, float(on), float(off), label) for name, on, off, label, _ in rows) == expected


def test_calibration_raises_f1_and_is_applied(checkpoint, synthetic_corpus, tmp_path):
    audio, tsv, _ = sed_paths(synthetic_corpus)
    calibration = tmp_path / "calibration.json"
    summary = run_detect(checkpoint, "--calibrate", str(tsv), "--calibration-out", str(calibration),
                         "--join-gap", "0.5")
    assert summary["collar_f1_after"] >= summary["collar_f1_before"]
    content = json.loads(calibration.read_text())
    assert content["settings"]["join_gap_seconds"] == 0.5 and len(content["thresholds"]) == summary["num_classes"]
    result = run_detect(checkpoint, str(audio), "--classes-from", str(tsv), "--thresholds", str(calibration),
                        "--out-dir", str(tmp_path / "out"))
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert written["thresholds"] == content["thresholds"] and written["run"]["settings"]["join_gap_seconds"] == 0.5
    assert result["num_files"] == 6
    with pytest.raises(ValueError, match="hold for"):
        run_detect(checkpoint, str(audio), "--classes-from", str(tsv), "--thresholds", str(calibration),
                   "--join-gap", "0", "--out-dir", str(tmp_path / "other"))


def test_plot_and_unreadable_files(checkpoint, synthetic_corpus, tmp_path):
    audio, _, _ = sed_paths(synthetic_corpus)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    listing = tmp_path / "files.txt"
    listing.write_text(f"{audio / 'sed_00000.wav'}\nbroken.wav\nmissing.wav\n")
    summary = run_detect(checkpoint, str(listing), "--query", "a bell rings", "--plot", "--out-dir",
                         str(tmp_path / "out"))
    assert summary["num_files"] == 1 and summary["num_skipped"] == 2
    assert {Path(entry["path"]).name for entry in summary["skipped"]} == {"broken.wav", "missing.wav"}
    assert (tmp_path / "out" / "plots" / "sed_00000.png").is_file()


def test_scoring_with_an_unreadable_file_default_and_strict(checkpoint, synthetic_corpus, tmp_path, capsys):
    """--ground-truth scores the readable files and says 'scored N of M files'; --strict: exit 1 naming the
    file, before any score (the detections already written stay)."""
    import shutil

    shutil.copytree(synthetic_corpus / "sed", tmp_path / "sed")
    audio, tsv, _ = sed_paths(tmp_path)
    broken = sorted(audio.iterdir())[0]
    broken.write_bytes(b"not audio")
    args = [str(audio), "--classes-from", str(tsv), "--ground-truth", str(tsv)]
    summary = run_detect(checkpoint, *args, "--out-dir", str(tmp_path / "out"))
    scores = summary["scores"]
    assert scores["complete"] is False and scores["num_scored"] == scores["num_files"] - 1
    assert [entry["path"] for entry in scores["skipped"]] == [str(broken)]
    assert f"scored {scores['num_scored']} of {scores['num_files']} files" in capsys.readouterr().out
    base = ["--ckpt", str(checkpoint), "--device", "cpu", "--num-workers", "0", "--strict"]
    assert run_script(detect.main, [*base, *args, "--out-dir", str(tmp_path / "strict")]) == 1
    captured = capsys.readouterr()
    assert str(broken) in captured.err and "psds1" not in captured.out
    assert (tmp_path / "strict" / "detections.json").is_file()
    assert run_script(detect.main, [*base, "--calibrate", str(tsv), "--calibration-out",
                                    str(tmp_path / "calibration.json")]) == 1
    assert str(broken) in capsys.readouterr().err and not (tmp_path / "calibration.json").exists()


@pytest.mark.parametrize("case", ["empty_queries", "empty_folder", "no_events"])
def test_bad_input_is_one_line_error(checkpoint, synthetic_corpus, tmp_path, capsys, case):
    audio, _, _ = sed_paths(synthetic_corpus)
    empty = tmp_path / "empty"
    empty.mkdir()
    queries = tmp_path / "queries.txt"
    queries.write_text("# nothing\n\n")
    no_events = tmp_path / "metadata" / "eval.tsv"
    no_events.parent.mkdir()
    no_events.write_text("filename\tonset\toffset\tevent_label\n")
    (no_events.parent / "eval_durations.tsv").write_text("filename\tduration\nsed_00000.wav\t10.0\n")
    (tmp_path / "audio").mkdir()
    args = {"empty_queries": [str(audio), "--queries-file", str(queries)],
            "empty_folder": [str(empty), "--query", "a bell"],
            "no_events": ["--calibrate", str(no_events)]}[case]
    code = run_script(detect.main, ["--ckpt", str(checkpoint), "--device", "cpu", *args])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and error[0].startswith("error: ")
    assert {"empty_queries": "query list is empty", "empty_folder": "holds no audio file",
            "no_events": "has no event"}[case] in error[0]
