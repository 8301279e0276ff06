"""Soundscapes: events placed over coloured background noise, with exact ground truth.

An event's level is set by its in-band SNR: the ratio of its mean power to the background's power in
the event's own band (`band_hz`). Defining the SNR in-band keeps every event audible in its mel bands
whatever the background colour, which is what makes the ground truth trustworthy.

Onsets and lengths are whole milliseconds (multiples of 32 samples at 32 kHz), so the onset/offset
written with 3 decimals is exact: the event's gate is non-zero on [onset, offset) and zero elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data_handling.synthetic.events import (
    SAMPLE_RATE,
    SAMPLES_PER_MS,
    EventType,
    random_phase_spectrum,
    synthesize_event,
)

CLIP_SECONDS = 10.0
ESC_CLIP_SECONDS = 5.0
EVENTS_PER_CLIP_PROBS = {1: 0.1, 2: 0.3, 3: 0.35, 4: 0.25}
SCENE_SNR_DB = (5.0, 25.0)
ESC_SNR_DB = (15.0, 30.0)
PEAK_DBFS = (-6.0, -1.0)


@dataclass(frozen=True)
class SoundEvent:
    """One event of a clip, with the parameters that captions describe.

    onset, offset: seconds, exact to the millisecond.
    pitch: position of the event's pitch in its class's range, 0 (lowest) to 1 (highest).
    length_fraction: position of its length in the class's duration range, 0 (shortest) to 1.
    snr_db: in-band signal-to-background ratio.
    character: recipe adjective such as "rising" or "rapid", or None.
    """

    name: str
    onset: float
    offset: float
    pitch: float
    length_fraction: float
    snr_db: float
    character: str | None = None


def sort_key(event: SoundEvent) -> tuple[float, float, str]:
    """Temporal order of events (onset, then offset, then name): the order captions follow."""
    return event.onset, event.offset, event.name


def sort_by_onset(events: Sequence[SoundEvent]) -> list[SoundEvent]:
    """Events in temporal order, see sort_key."""
    return sorted(events, key=sort_key)


def clip_rng(seed: int, split_id: int, clip_index: int) -> np.random.Generator:
    """The generator of one clip; independent of how clips are spread over workers."""
    return np.random.default_rng(np.random.SeedSequence([seed, split_id, clip_index]))


@functools.lru_cache(maxsize=4)
def _log_frequencies(num_samples: int) -> np.ndarray:
    """[num_samples // 2 + 1] natural log of the rfft bin frequencies, floored at 20 Hz (read-only)."""
    log_freqs = np.log(np.maximum(np.fft.rfftfreq(num_samples, 1 / SAMPLE_RATE), 20.0)).astype(np.float32)
    log_freqs.flags.writeable = False
    return log_freqs


def coloured_noise(rng: np.random.Generator, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Background noise between white and pink (random 1/f^a power slope, a in [0, 1]) at unit mean power.

    Returns (samples [num_samples], expected one-sided power spectrum [num_samples // 2 + 1] that sums
    to 1), so the background's mean power inside a band is a sum over that band's bins.
    """
    slope = rng.uniform(0.0, 1.0)
    shape = np.exp(_log_frequencies(num_samples) * np.float32(-slope / 2))
    shape[0] = 0.0
    spectrum = random_phase_spectrum(rng, shape.size) * shape
    samples = np.fft.irfft(spectrum, num_samples)
    samples /= np.float32(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    power = np.square(shape, dtype=np.float64)
    return samples, power / power.sum()


def band_power(power_spectrum: np.ndarray, band_hz: tuple[float, float], num_samples: int) -> float:
    """Mean power inside band_hz of a signal with one-sided power spectrum [num_samples // 2 + 1]."""
    bin_hz = SAMPLE_RATE / num_samples
    low, high = int(np.ceil(band_hz[0] / bin_hz)), int(np.floor(band_hz[1] / bin_hz))
    return float(power_spectrum[low : high + 1].sum())


def _draw_length_ms(rng: np.random.Generator, event_type: EventType, max_seconds: float) -> tuple[int, float]:
    """A random event length in whole ms within the class range, and its position in that range."""
    shortest, longest = event_type.duration_s
    longest = min(longest, max_seconds)
    length_ms = int(rng.integers(int(shortest * 1000), int(longest * 1000) + 1))
    fraction = (length_ms / 1000 - shortest) / max(event_type.duration_s[1] - shortest, 1e-9)
    return length_ms, float(fraction)


def add_event(
    rng: np.random.Generator,
    mixture: np.ndarray,
    background_power: np.ndarray,
    event_type: EventType,
    snr_db: float,
) -> SoundEvent:
    """Synthesise one event at a random time and add it into mixture [num_samples] in place."""
    clip_ms = mixture.size // SAMPLES_PER_MS
    length_ms, length_fraction = _draw_length_ms(rng, event_type, clip_ms / 1000)
    onset_ms = int(rng.integers(0, clip_ms - length_ms + 1))
    pitch = float(rng.uniform(0.0, 1.0))
    synthesis = synthesize_event(rng, event_type, length_ms * SAMPLES_PER_MS, pitch)
    reference = band_power(background_power, event_type.band_hz, mixture.size)
    start = onset_ms * SAMPLES_PER_MS
    mixture[start : start + synthesis.samples.size] += (
        np.sqrt(reference * 10 ** (snr_db / 10)) * synthesis.samples
    )
    return SoundEvent(
        name=event_type.name,
        onset=onset_ms / 1000,
        offset=(onset_ms + length_ms) / 1000,
        pitch=pitch,
        length_fraction=length_fraction,
        snr_db=round(snr_db, 2),
        character=synthesis.character,
    )


def to_pcm16(rng: np.random.Generator, mixture: np.ndarray) -> np.ndarray:
    """Scale mixture [num_samples] to a random peak of -6 to -1 dBFS and quantise to int16."""
    peak = 10 ** (rng.uniform(*PEAK_DBFS) / 20)
    scaled = mixture * (peak / max(np.max(np.abs(mixture)), 1e-12))
    return np.round(scaled * 32767).astype(np.int16)


def render_scene(
    rng: np.random.Generator,
    event_types: Sequence[EventType],
    num_events: int | None = None,
    clip_seconds: float = CLIP_SECONDS,
    snr_db: tuple[float, float] = SCENE_SNR_DB,
) -> tuple[np.ndarray, list[SoundEvent]]:
    """A soundscape of distinct event types over background noise.

    num_events: None draws 1-4 (weighted by EVENTS_PER_CLIP_PROBS), capped by len(event_types).
    Returns (pcm [clip_seconds * SAMPLE_RATE] int16, events sorted by onset).
    """
    if num_events is None:
        counts = np.array(list(EVENTS_PER_CLIP_PROBS))
        num_events = int(rng.choice(counts, p=np.array(list(EVENTS_PER_CLIP_PROBS.values()))))
    num_events = min(num_events, len(event_types))
    num_samples = int(round(clip_seconds * SAMPLE_RATE))
    background, background_power = coloured_noise(rng, num_samples)
    mixture = background.copy()
    chosen = rng.choice(len(event_types), size=num_events, replace=False)
    events = [
        add_event(rng, mixture, background_power, event_types[int(i)], float(rng.uniform(*snr_db)))
        for i in chosen
    ]
    return to_pcm16(rng, mixture), sort_by_onset(events)


def render_single_event(
    rng: np.random.Generator, event_type: EventType, clip_seconds: float = ESC_CLIP_SECONDS
) -> tuple[np.ndarray, SoundEvent]:
    """An ESC-50 style clip: one event of event_type over a light background.

    Returns (pcm [clip_seconds * SAMPLE_RATE] int16, the event).
    """
    pcm, events = render_scene(rng, [event_type], 1, clip_seconds, ESC_SNR_DB)
    return pcm, events[0]
