"""Audio decoding: channel mixing, resampling, integer scaling, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf

from data_handling.audio_io import (
    AudioReadError,
    audio_duration,
    load_audio,
    load_audio_window,
    resampled_length,
)


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """float32 [samples] sine."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(440, 0.5, 32000, 0.6), tone(1000, 0.5, 32000, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 32000, subtype="FLOAT")
    mono = load_audio(path, 32000)
    assert mono.dtype == np.float32 and mono.shape == (16000,)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-6)


def test_many_channels_kept_when_not_mono(tmp_path):
    channels = np.stack([tone(200 * (c + 1), 0.25, 16000) for c in range(5)], axis=1)  # [frames, 5]
    path = tmp_path / "five.flac"
    sf.write(path, channels, 16000)
    kept = load_audio(path, 16000, mono=False)
    assert kept.shape == (5, 4000) and kept.dtype == np.float32
    np.testing.assert_allclose(kept, channels.T, atol=1e-4)  # 16-bit flac
    assert load_audio(path, 16000).shape == (4000,)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_resampling_keeps_length_and_frequency(tmp_path, suffix):
    path = tmp_path / f"tone{suffix}"
    sf.write(path, tone(1000, 2.0, 44100), 44100)
    audio = load_audio(path, 32000)
    assert audio.shape == (64000,)
    assert abs(peak_frequency(audio, 32000) - 1000) < 1.0
    np.testing.assert_allclose(np.sqrt(np.mean(audio[1000:-1000] ** 2)), 0.5 / np.sqrt(2), rtol=1e-2)


def test_int16_is_scaled_to_unit_range(tmp_path):
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    path = tmp_path / "int16.wav"
    sf.write(path, pcm, 32000, subtype="PCM_16")
    audio = load_audio(path, 32000)
    np.testing.assert_allclose(audio, pcm / 32768.0, atol=1e-7)
    assert audio.min() >= -1.0 and audio.max() < 1.0


def test_keep_native_rate(tmp_path):
    path = tmp_path / "native.wav"
    sf.write(path, tone(300, 0.1, 22050), 22050)
    assert load_audio(path, None).shape == (2205,)


def test_missing_file_raises_with_path(tmp_path):
    path = tmp_path / "absent.wav"
    with pytest.raises(AudioReadError, match="absent.wav.*no such file"):
        load_audio(path)
    with pytest.raises(AudioReadError, match="absent.wav"):
        audio_duration(path)


def test_corrupt_and_empty_files_raise(tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"this is not audio" * 50)
    with pytest.raises(AudioReadError, match="corrupt.flac"):
        load_audio(corrupt)
    with pytest.raises(AudioReadError, match="corrupt.flac"):
        audio_duration(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 32000)
    with pytest.raises(AudioReadError, match="no samples"):
        load_audio(empty)


def test_non_finite_samples_raise(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), 32000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="NaN"):
        load_audio(path)


def test_duration_from_header(tmp_path):
    path = tmp_path / "d.flac"
    sf.write(path, tone(440, 1.5, 48000), 48000)
    assert audio_duration(path) == pytest.approx(1.5)


def test_error_survives_pickling():
    error = pickle.loads(pickle.dumps(AudioReadError("/x/y.wav", "no such file")))
    assert isinstance(error, AudioReadError) and "/x/y.wav" in str(error) and error.reason == "no such file"


# ----------------------------------------------------------------------------------------------------
# Decoding only the start of a file (max_seconds; the reference's librosa.load(duration=300))
# ----------------------------------------------------------------------------------------------------
def ramp_file(path, seconds: float, rate: int) -> np.ndarray:
    """A float wav whose samples all differ, so a window's position is visible."""
    samples = np.linspace(-0.9, 0.9, round(seconds * rate), dtype=np.float32)
    sf.write(path, samples, rate, subtype="FLOAT")
    return samples


def test_max_seconds_returns_the_start(tmp_path):
    samples = ramp_file(tmp_path / "ramp.wav", 3.0, 8000)
    np.testing.assert_array_equal(load_audio(tmp_path / "ramp.wav", None, max_seconds=1.25), samples[:10000])
    np.testing.assert_array_equal(load_audio(tmp_path / "ramp.wav", None, max_seconds=0), samples)  # 0: all
    np.testing.assert_array_equal(load_audio(tmp_path / "ramp.wav", None, max_seconds=10.0), samples)
    sf.write(tmp_path / "first_second.wav", samples[:8000], 8000, subtype="FLOAT")
    resampled = load_audio(tmp_path / "ramp.wav", 16000, max_seconds=1.0)  # cut before resampling
    np.testing.assert_array_equal(resampled, load_audio(tmp_path / "first_second.wav", 16000))


def test_max_seconds_does_not_decode_the_rest(tmp_path, monkeypatch):
    path = tmp_path / "nan_tail.wav"
    samples = np.zeros(3 * 8000, dtype=np.float32)
    samples[2 * 8000:] = np.nan  # beyond the decoded part
    sf.write(path, samples, 8000, subtype="FLOAT")
    assert load_audio(path, None, max_seconds=2.0).shape == (16000,)
    with pytest.raises(AudioReadError, match="NaN"):
        load_audio(path, None)
    requested = []
    original_read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, frames=-1, **kwargs:
                        requested.append(frames) or original_read(self, frames, **kwargs))
    load_audio(path, None, max_seconds=0.00055)  # int(0.00055 * 8000) = 4 frames, as librosa counts them
    assert requested == [4]


def test_negative_max_seconds_rejected(tmp_path):
    ramp_file(tmp_path / "ramp.wav", 0.1, 8000)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(tmp_path / "ramp.wav", max_seconds=-1)


# ----------------------------------------------------------------------------------------------------
# load_audio_window: decode only the crop
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate, fmt, subtype, channels", [
    (44100, "FLAC", "PCM_16", 2), (32000, "WAV", "PCM_16", 1), (48000, "WAV", "FLOAT", 1),
    (8000, "FLAC", "PCM_24", 1), (22050, "OGG", "VORBIS", 1)])
@pytest.mark.parametrize("max_seconds", [None, 4.0])
def test_window_equals_whole_decoding_cut(tmp_path, rate, fmt, subtype, channels, max_seconds):
    rng = np.random.default_rng(rate)
    path = tmp_path / f"noise.{fmt.lower()}"
    sf.write(path, (0.3 * rng.standard_normal((6 * rate, channels))).astype(np.float32), rate,
             format=fmt, subtype=subtype)
    whole = load_audio(path, 32000, max_seconds=max_seconds)
    window = 32000
    for wanted in (0, 1, 12345, 10**9):  # 10**9: the last window
        excesses: list[int] = []

        def choose(excess: int, wanted: int = wanted, seen: list[int] = excesses) -> int:
            seen.append(excess)
            return min(wanted, excess)

        got = load_audio_window(path, 32000, window, choose, max_seconds=max_seconds)
        assert excesses == [len(whole) - window]  # drawn over the same length as the whole decoding's
        offset = min(wanted, len(whole) - window)
        assert got.dtype == np.float32 and got.shape == (window,)
        expected = whole[offset:offset + window]
        if rate == 32000:
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_window_decodes_only_around_the_crop(tmp_path, monkeypatch):
    path = tmp_path / "long.flac"
    sf.write(path, np.zeros((60 * 44100, 1), dtype=np.float32), 44100)
    requested = []
    original_read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, frames=-1, **kwargs:
                        requested.append(frames) or original_read(self, frames, **kwargs))
    load_audio_window(path, 32000, 320000, lambda excess: excess // 2, max_seconds=300)
    assert len(requested) == 1 and 10 * 44100 < requested[0] < 10.3 * 44100  # 10 s and two 0.1 s margins


def test_window_of_short_audio_and_of_bytes(tmp_path):
    samples = ramp_file(tmp_path / "ramp.wav", 0.5, 8000)
    never = lambda excess: pytest.fail("no offset to draw for audio shorter than the window")  # noqa: E731
    np.testing.assert_array_equal(load_audio_window(tmp_path / "ramp.wav", 8000, 8000, never), samples)
    encoded = (tmp_path / "ramp.wav").read_bytes()
    np.testing.assert_array_equal(load_audio_window(encoded, 8000, 1000, lambda excess: 7), samples[7:1007])
    with pytest.raises(ValueError, match="choose_offset returned"):
        load_audio_window(encoded, 8000, 1000, lambda excess: excess + 1)
    with pytest.raises(AudioReadError, match="no such file"):
        load_audio_window(tmp_path / "missing.wav", 8000, 1000, lambda excess: 0)
    with pytest.raises(AudioReadError, match="<bytes>"):
        load_audio_window(b"RIFF garbage" * 10, 8000, 1000, lambda excess: 0)


def test_resampled_length_is_soxr_s():
    import soxr
    for file_rate in (44100, 48000, 22050, 8000, 11025):
        for frames in (1, 2, 3, 441, 1000, 44099, 123457):
            out = soxr.resample(np.zeros(frames, dtype=np.float32), file_rate, 32000, quality="HQ")
            assert resampled_length(frames, file_rate, 32000) == len(out), (file_rate, frames)


# ----------------------------------------------------------------------------------------------------
# resampler="kaiser_best": the reference's training environment (librosa 0.9.2 with resampy)
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("rate, frames", [(44100, 44100 * 2 + 7), (48000, 96000), (16000, 16001), (22050, 22050)])
def test_kaiser_best_is_resampys_own_output(tmp_path, rate, frames):
    """load_audio(resampler="kaiser_best") = resampy.resample(x, sr_in, sr_out, filter='kaiser_best'), bit for bit,
    cut or zero-padded to librosa's ceil(frames * ratio) samples as librosa.resample(res_type="kaiser_best")
    (the reference's librosa.load(sr=32000) under librosa 0.9.2, whose resampler that is)."""
    import librosa
    import resampy

    samples = (0.3 * np.random.default_rng(rate).standard_normal(frames)).astype(np.float32)
    sf.write(tmp_path / "x.wav", samples, rate, subtype="FLOAT")
    got = load_audio(tmp_path / "x.wav", 32000, resampler="kaiser_best")
    own = resampy.resample(samples, rate, 32000, filter="kaiser_best")
    assert got.dtype == np.float32 and len(got) == resampled_length(frames, rate, 32000, "kaiser_best")
    np.testing.assert_array_equal(got[:len(own)], own[:len(got)])
    np.testing.assert_array_equal(got[len(own):], 0.0)  # librosa's fix_length pads with zeros
    np.testing.assert_array_equal(got, librosa.resample(samples, orig_sr=rate, target_sr=32000, res_type="kaiser_best"))
    assert not np.array_equal(got[:len(own)], load_audio(tmp_path / "x.wav", 32000)[:len(own)])  # soxr_hq differs


@pytest.mark.slow
@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 1), (8000, 1)])
def test_kaiser_best_window_equals_whole_decoding_cut(tmp_path, rate, channels):
    path = tmp_path / "noise.flac"
    sf.write(path, (0.3 * np.random.default_rng(rate).standard_normal((3 * rate + 11, channels))).astype(np.float32),
             rate, subtype="PCM_24")
    whole = load_audio(path, 32000, resampler="kaiser_best")
    for wanted in (0, 12345, 10**9):  # 10**9: the last window, up to the zero-padded end
        offset = min(wanted, len(whole) - 32000)
        got = load_audio_window(path, 32000, 32000, lambda excess, wanted=wanted: min(wanted, excess),
                                resampler="kaiser_best")
        np.testing.assert_allclose(got, whole[offset:offset + 32000], rtol=0, atol=2e-6)


def test_unknown_resampler_and_too_short_audio(tmp_path):
    sf.write(tmp_path / "one.wav", np.zeros(1, dtype=np.float32), 44100)
    with pytest.raises(ValueError, match="resampler must be one of"):
        load_audio(tmp_path / "one.wav", 32000, resampler="sinc")
    with pytest.raises(AudioReadError, match="cannot resample it"):
        load_audio(tmp_path / "one.wav", 32000, resampler="kaiser_best")
