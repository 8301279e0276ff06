"""A long recording built from the synthetic corpus's event recipes, with events at known times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from data_handling.synthetic.events import EVENT_TYPES, SAMPLE_RATE, synthesize_event
from data_handling.synthetic.scenes import band_power, coloured_noise

SNR_DB = 20.0


def make_long_recording(path: Path, seconds: float, events: list[tuple[str, float, float]], seed: int = 0,
                        sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono PCM-16 wav: coloured background noise with each (class, onset s, length s) event
    added at an in-band SNR of 20 dB (onsets and lengths in whole ms, as the corpus's).

    The mixture is made at the corpus's 32 kHz; another `sample_rate` resamples it (soxr) before writing,
    so the events stay at the same times in seconds."""
    rng = np.random.default_rng(seed)
    num_samples = round(seconds * SAMPLE_RATE)
    mixture, background_power = coloured_noise(rng, num_samples)
    for name, onset, length in events:
        event_type = EVENT_TYPES[name]
        samples = synthesize_event(rng, event_type, round(length * SAMPLE_RATE), 0.5).samples
        level = np.sqrt(band_power(background_power, event_type.band_hz, num_samples) * 10 ** (SNR_DB / 10))
        start = round(onset * SAMPLE_RATE)
        mixture[start:start + samples.size] += level * samples
    if sample_rate != SAMPLE_RATE:
        mixture = soxr.resample(mixture.astype(np.float32), SAMPLE_RATE, sample_rate)
    pcm = np.round(mixture * (0.5 / np.max(np.abs(mixture))) * 32767).astype(np.int16)
    sf.write(str(path), pcm, sample_rate, subtype="PCM_16")
    return path
