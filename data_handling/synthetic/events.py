"""Event recipes of the synthetic corpus: one parametrised synthesiser per sound class.

Every class owns a frequency band (`band_hz`) that no other class uses, and a temporal pattern of its
own (steady, pulsed, decaying, sweeping, granular). A recipe draws its pitch, timbre and rhythm from
the clip's random generator, so a class is a distribution of sounds, not a template.
`synthesize_event` band-limits a recipe's output to the class band and applies a gate that is non-zero
on exactly the event's samples (the scene then scales it to the wanted in-band SNR); the ground truth
onset and offset are the first and one-past-last sample of that gate.

All waveforms are float arrays of shape [num_samples] at `SAMPLE_RATE` (float32 once band-limited).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 32000
SAMPLES_PER_MS = SAMPLE_RATE // 1000
GATE_FADE_SECONDS = 0.002


@dataclass(frozen=True)
class Synthesis:
    """What a recipe returns: the raw source and an optional adjective read off its parameters.

    samples: [num_samples] float, not yet band-limited or scaled.
    character: e.g. "rising" for an upward sweep, "rapid" for a fast click train; None if neutral.
    """

    samples: np.ndarray
    character: str | None = None


Band = tuple[float, float]
Recipe = Callable[[np.random.Generator, int, float, Band], Synthesis]


@dataclass(frozen=True)
class EventType:
    """A sound class of the synthetic corpus.

    name: display name and label (spaces become '_' in SED / ESC-50 labels), e.g. "dog bark".
    synonyms: caption descriptions, each optionally starting with an article ("a siren", "rainfall").
    band_hz: (low, high) band that holds all of the class's energy.
    duration_s: (shortest, longest) event length in seconds.
    has_pitch: whether "high pitched" / "low pitched" describe it.
    recipe: (rng, num_samples, pitch in [0, 1], band_hz) -> Synthesis.
    """

    name: str
    synonyms: tuple[str, ...]
    band_hz: tuple[float, float]
    duration_s: tuple[float, float]
    has_pitch: bool
    recipe: Recipe

    @property
    def label(self) -> str:
        """The name as written in SED tsv and ESC-50 csv files, e.g. "dog_bark"."""
        return self.name.replace(" ", "_")


# ----------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------


def fft_length(num_samples: int) -> int:
    """Smallest 2^a 3^b 5^c >= num_samples: FFT sizes that avoid pocketfft's slow prime-size path."""
    best = 1 << max(num_samples - 1, 0).bit_length()
    power_of_5 = 1
    while power_of_5 < best:
        candidate = power_of_5
        while candidate < best:
            length = candidate << max((num_samples - 1) // candidate, 0).bit_length()
            best = min(best, length)
            candidate *= 3
        power_of_5 *= 5
    return best


def _seconds_to_samples(seconds: float) -> int:
    return max(1, int(round(seconds * SAMPLE_RATE)))


def _times(num_samples: int) -> np.ndarray:
    """[num_samples] sample times in seconds."""
    return np.arange(num_samples) / SAMPLE_RATE


def _sin(phase: np.ndarray) -> np.ndarray:
    """float32 sine of a float64 phase array: SIMD-fast; the rounding (< 0.01 rad up to 10^5 rad) is
    phase noise far below the background noise of any clip."""
    return np.sin(np.asarray(phase, dtype=np.float32))


def _phase(freq_hz: np.ndarray, start_phase: float = 0.0) -> np.ndarray:
    """Instantaneous phase [num_samples] of a tone whose frequency track is freq_hz [num_samples]."""
    return start_phase + 2 * np.pi * np.cumsum(freq_hz) / SAMPLE_RATE


def _fade_envelope(num_samples: int, attack: int, release: int) -> np.ndarray:
    """[num_samples] raised-cosine fade-in and fade-out, 1 in between, non-zero on every sample."""
    attack = int(min(max(attack, 1), num_samples // 2))
    release = int(min(max(release, 1), num_samples - attack))
    envelope = np.ones(num_samples)
    envelope[:attack] = np.sin(0.5 * np.pi * (np.arange(attack) + 1) / (attack + 1)) ** 2
    envelope[num_samples - release :] = np.sin(0.5 * np.pi * (np.arange(release, 0, -1)) / (release + 1)) ** 2
    return envelope


def random_phase_spectrum(rng: np.random.Generator, num_bins: int) -> np.ndarray:
    """[num_bins] complex64 unit-magnitude spectrum with uniform random phases.

    Its inverse FFT is Gaussian-like noise (kurtosis 3) and costs a fifth of drawing normal variates.
    """
    phase = rng.random(num_bins, dtype=np.float32) * np.float32(2 * np.pi)
    spectrum = np.empty(num_bins, dtype=np.complex64)
    spectrum.real = np.cos(phase)
    spectrum.imag = np.sin(phase)
    return spectrum


def _random_fades(
    rng: np.random.Generator, num_samples: int, attack_s: tuple[float, float], release_s: tuple[float, float]
) -> np.ndarray:
    """[num_samples] fade envelope with attack and release lengths drawn from the given ranges (seconds)."""
    attack = _seconds_to_samples(rng.uniform(*attack_s))
    return _fade_envelope(num_samples, attack, _seconds_to_samples(rng.uniform(*release_s)))


def _spectral_noise(
    rng: np.random.Generator, num_samples: int, magnitude: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Gaussian noise [num_samples] whose amplitude spectrum is magnitude(freqs_hz)."""
    length = fft_length(num_samples)
    freqs = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    spectrum = random_phase_spectrum(rng, freqs.size) * magnitude(freqs).astype(np.float32)
    return np.fft.irfft(spectrum, length)[:num_samples]


def _band_gaussian(center_hz: float, width_hz: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda freqs: np.exp(-0.5 * ((freqs - center_hz) / width_hz) ** 2)


def _pulse_starts(num_samples: int, pulse_len: int, target_period: int, min_pulses: int = 1) -> np.ndarray:
    """Start samples of equally spaced pulses: the first starts right after the gate's fade-in, the last
    ends right before its fade-out, so the event's ground truth spans exactly the pulse train."""
    inset = _seconds_to_samples(GATE_FADE_SECONDS)
    span = num_samples - 2 * inset - pulse_len
    if span <= 0:
        return np.zeros(1, dtype=int)
    count = max(min_pulses, int(round(span / max(target_period, 1))) + 1)
    return inset + np.round(np.linspace(0, span, count)).astype(int)


def _place(num_samples: int, starts: np.ndarray, pulses: np.ndarray) -> np.ndarray:
    """Sum pulses [num_pulses, pulse_len] into a [num_samples] track at the given start samples."""
    track = np.zeros(num_samples)
    pulse_len = pulses.shape[1]
    index = starts[:, None] + np.arange(pulse_len)[None, :]
    valid = index < num_samples
    np.add.at(track, index[valid], pulses[valid])
    return track


def _in_band(band_hz: tuple[float, float], fraction: float) -> float:
    """The frequency a `fraction` of the way (log scale) from the band's low to its high edge."""
    low, high = band_hz
    return float(low * (high / low) ** fraction)


# ----------------------------------------------------------------------------------------------------
# Recipes: (rng, num_samples, pitch in [0, 1], band_hz) -> Synthesis
# ----------------------------------------------------------------------------------------------------


def hum_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Mains-like hum: 50-120 Hz fundamental with harmonics up to the band top, slow fades."""
    fundamental = 50 + 70 * pitch
    harmonics = np.arange(1, int(band_hz[1] * 0.97 // fundamental) + 1)
    amplitudes = harmonics ** -rng.uniform(0.3, 1.5)
    drift = 1 + 0.002 * _sin(2 * np.pi * rng.uniform(0.1, 0.5) * _times(num_samples))
    phase = _phase(fundamental * drift)
    offsets = rng.uniform(0, 2 * np.pi, harmonics.size)
    tone = (amplitudes[:, None] * _sin(harmonics[:, None] * phase[None, :] + offsets[:, None])).sum(0)
    fades = _random_fades(rng, num_samples, (0.05, 0.3), (0.05, 0.3))
    return Synthesis(tone * fades)


def engine_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Engine: noise concentrated on harmonics of a 20-50 Hz firing rate, amplitude-modulated."""
    firing_hz = 20 + 30 * pitch
    line_width = rng.uniform(2.0, 6.0)

    def harmonic_comb(freqs: np.ndarray) -> np.ndarray:
        distance = np.abs(freqs - firing_hz * np.round(freqs / firing_hz))
        return np.exp(-0.5 * (distance / line_width) ** 2)

    noise = _spectral_noise(rng, num_samples, harmonic_comb)
    times = _times(num_samples)
    modulation = 1 + rng.uniform(0.3, 0.8) * _sin(2 * np.pi * rng.uniform(3, 12) * times + rng.uniform(0, 6))
    fades = _random_fades(rng, num_samples, (0.1, 0.4), (0.1, 0.4))
    return Synthesis(noise * modulation * fades)


def knock_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Knocking: a regular series of low damped two-mode resonances."""
    resonance = _in_band(band_hz, 0.1 + 0.6 * pitch)
    second_mode = resonance * rng.uniform(1.05, 1.2)
    decay = rng.uniform(0.01, 0.035)
    knock_len = min(_seconds_to_samples(5 * decay), num_samples)
    times = _times(knock_len)
    knock = _sin(2 * np.pi * resonance * times) + rng.uniform(0.2, 0.7) * _sin(
        2 * np.pi * second_mode * times
    )
    knock *= np.exp(-times / decay) * _fade_envelope(knock_len, SAMPLES_PER_MS, SAMPLES_PER_MS)
    starts = _pulse_starts(num_samples, knock_len, _seconds_to_samples(rng.uniform(0.12, 0.35)), min_pulses=2)
    strengths = rng.uniform(0.7, 1.0, starts.size)
    return Synthesis(_place(num_samples, starts, strengths[:, None] * knock[None, :]))


def bark_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Dog bark: one or more short bursts of a falling harmonic voice plus noise, shaped by a formant."""
    formant = _in_band(band_hz, 0.2 + 0.6 * pitch)
    formant_width = rng.uniform(60, 150)
    count = max(1, int(round(num_samples / _seconds_to_samples(rng.uniform(0.3, 0.55)))))
    bark_len = min(_seconds_to_samples(rng.uniform(0.12, 0.3)), num_samples // count)
    if count == 1:
        bark_len = num_samples
    times = _times(bark_len)
    fundamental = rng.uniform(180, 300) * (1 - 0.15 * times / times[-1])
    harmonics = np.arange(1, int(band_hz[1] / fundamental.min()) + 2)
    harmonic_freqs = harmonics[:, None] * fundamental[None, :]
    weights = np.exp(-0.5 * ((harmonic_freqs - formant) / formant_width) ** 2)
    voice = (weights * _sin(harmonics[:, None] * _phase(fundamental)[None, :])).sum(0)
    breath = _spectral_noise(rng, bark_len, _band_gaussian(formant, formant_width))
    breath *= rng.uniform(0.2, 0.6) * np.std(voice) / max(np.std(breath), 1e-12)
    envelope = np.exp(-times / (times[-1] / 3 + 1e-3)) * _fade_envelope(
        bark_len, 8 * SAMPLES_PER_MS, bark_len // 4
    )
    starts = _pulse_starts(num_samples, bark_len, num_samples // count, min_pulses=count)
    return Synthesis(
        _place(num_samples, starts, ((voice + breath) * envelope)[None, :].repeat(starts.size, 0))
    )


def siren_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Siren: a tone whose frequency swings slowly (0.3-1.5 Hz) around a centre, with a beating copy."""
    low, high = band_hz
    center = _in_band(band_hz, 0.3 + 0.4 * pitch)
    deviation = min(center - low, high - center) * rng.uniform(0.6, 0.9)
    angle = 2 * np.pi * rng.uniform(0.3, 1.5) * _times(num_samples) + rng.uniform(0, 2 * np.pi)
    swing = _sin(angle) if rng.random() < 0.5 else (2 / np.pi) * np.arcsin(_sin(angle))
    phase = _phase(center + deviation * swing)
    tone = _sin(phase) + rng.uniform(0, 0.4) * _sin(phase * rng.uniform(1.005, 1.02))
    fades = _random_fades(rng, num_samples, (0.05, 0.2), (0.05, 0.2))
    return Synthesis(tone * fades)


def bell_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Bell: one strike of 4-6 inharmonic partials that decay exponentially (20-30 dB over the event)."""
    low, high = band_hz
    fundamental = _in_band(band_hz, 0.05 + 0.45 * pitch)
    ratios = np.concatenate(
        [[1.0], np.sort(rng.uniform(1.01, high * 0.98 / fundamental, rng.integers(3, 6)))]
    )
    amplitudes = rng.uniform(0.3, 1.0, ratios.size)
    base_decay = num_samples / SAMPLE_RATE / rng.uniform(2.3, 3.5)
    decays = base_decay * rng.uniform(0.5, 1.0, ratios.size)
    times = _times(num_samples)
    partials = _sin(
        2 * np.pi * fundamental * ratios[:, None] * times[None, :] + rng.uniform(0, 6, (ratios.size, 1))
    )
    tone = (amplitudes[:, None] * partials * np.exp(-times[None, :] / decays[:, None])).sum(0)
    return Synthesis(tone * _fade_envelope(num_samples, 2 * SAMPLES_PER_MS, SAMPLES_PER_MS))


def beep_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Beep: a pure (or dual) tone switched on and off in equal pulses, or one long beep."""
    frequency = _in_band(band_hz, 0.1 + 0.8 * pitch)
    pulse_len = min(_seconds_to_samples(rng.uniform(0.08, 0.4)), num_samples)
    starts = _pulse_starts(num_samples, pulse_len, int(pulse_len * rng.uniform(1.6, 3.0)))
    if starts.size == 1:
        pulse_len = num_samples
    times = _times(pulse_len)
    second = frequency * rng.uniform(1.01, 1.04)
    pulse = _sin(2 * np.pi * frequency * times) + rng.uniform(0, 0.5) * _sin(2 * np.pi * second * times)
    pulse *= _fade_envelope(pulse_len, 3 * SAMPLES_PER_MS, 3 * SAMPLES_PER_MS)
    return Synthesis(_place(num_samples, starts, pulse[None, :].repeat(starts.size, 0)))


def whistle_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Whistle: a high tone with 4-7 Hz vibrato, a slight glide and some breath noise."""
    frequency = _in_band(band_hz, 0.2 + 0.6 * pitch)
    times = _times(num_samples)
    glide = 1 + rng.uniform(-0.04, 0.04) * times / times[-1]
    vibrato = 1 + rng.uniform(0.003, 0.012) * _sin(2 * np.pi * rng.uniform(4, 7) * times)
    tone = _sin(_phase(frequency * glide * vibrato))
    breath = _spectral_noise(rng, num_samples, _band_gaussian(frequency, 80))
    tone += rng.uniform(0.05, 0.2) * breath / max(np.std(breath), 1e-12)
    fades = _random_fades(rng, num_samples, (0.02, 0.08), (0.02, 0.08))
    return Synthesis(tone * fades)


def sweep_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Frequency sweep: one exponential glide up or down across 60-100 % of the band."""
    span = rng.uniform(0.6, 1.0)
    start_fraction = pitch * (1 - span)
    rising = bool(rng.random() < 0.5)
    fractions = np.linspace(start_fraction, start_fraction + span, num_samples)
    if not rising:
        fractions = fractions[::-1]
    frequency = band_hz[0] * (band_hz[1] / band_hz[0]) ** fractions
    fades = _random_fades(rng, num_samples, (0.01, 0.03), (0.01, 0.03))
    return Synthesis(_sin(_phase(frequency)) * fades, "rising" if rising else "falling")


def bird_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Bird chirps: a rapid series of 30-90 ms falling sweeps with per-chirp pitch jitter."""
    chirp_len = min(_seconds_to_samples(rng.uniform(0.03, 0.09)), num_samples)
    period = int(chirp_len * rng.uniform(1.4, 2.5))
    starts = _pulse_starts(num_samples, chirp_len, period, min_pulses=2)
    top = _in_band(band_hz, 0.55 + 0.4 * pitch) * rng.uniform(0.97, 1.0, (starts.size, 1))
    bottom_ratio = rng.uniform(0.75, 0.9)
    progress = np.linspace(0, 1, chirp_len)[None, :]
    frequency = np.maximum(top * bottom_ratio**progress, band_hz[0])
    chirps = _sin(2 * np.pi * np.cumsum(frequency, axis=1) / SAMPLE_RATE)
    chirps *= np.sin(np.pi * (np.arange(chirp_len) + 0.5) / chirp_len)[None, :] ** 2
    return Synthesis(_place(num_samples, starts, chirps * rng.uniform(0.6, 1.0, (starts.size, 1))))


def clicks_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Clicking: a regular train of 3 ms noise clicks at 4-25 per second."""
    rate = rng.uniform(4, 25)
    click_len = min(3 * SAMPLES_PER_MS, num_samples)
    starts = _pulse_starts(num_samples, click_len, _seconds_to_samples(1 / rate), min_pulses=2)
    decay = np.exp(-np.arange(click_len) / (0.6 * SAMPLES_PER_MS))
    clicks = rng.standard_normal((starts.size, click_len)) * decay[None, :]
    character = "rapid" if rate > 14 else "slow" if rate < 7 else None
    return Synthesis(_place(num_samples, starts, clicks), character)


def rain_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Rain: Poisson drops (short decaying noise grains) over a soft noise bed."""
    density = rng.uniform(100, 800)
    drops = np.zeros(num_samples)
    count = rng.poisson(density * num_samples / SAMPLE_RATE)
    np.add.at(
        drops, rng.integers(0, num_samples, count), rng.lognormal(0, 0.5, count) * rng.choice([-1, 1], count)
    )
    grain_decay_ms = rng.uniform(0.5, 3.0)
    length = fft_length(num_samples)
    freqs = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    grain_response = 1 / (1 + 2j * np.pi * freqs * grain_decay_ms / 1000)
    texture = np.fft.irfft(np.fft.rfft(drops, length) * grain_response, length)[:num_samples]
    bed = _spectral_noise(rng, num_samples, lambda f: np.ones_like(f))
    texture += rng.uniform(0.1, 0.3) * np.std(texture) * bed / max(np.std(bed), 1e-12)
    fades = _random_fades(rng, num_samples, (0.05, 0.15), (0.05, 0.15))
    character = "heavy" if density > 550 else "light" if density < 250 else None
    return Synthesis(texture * fades, character)


def hiss_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Hiss / noise burst: steady band noise with a random spectral tilt and a slight slow swell."""
    tilt = rng.uniform(-2, 2)
    noise = _spectral_noise(rng, num_samples, lambda f: (np.maximum(f, 1.0) / band_hz[0]) ** tilt)
    swell = 1 + rng.uniform(0, 0.3) * _sin(2 * np.pi * rng.uniform(0.5, 2) * _times(num_samples))
    fades = _random_fades(rng, num_samples, (0.005, 0.04), (0.02, 0.2))
    return Synthesis(noise * swell * fades)


# ----------------------------------------------------------------------------------------------------
# The classes. Bands are disjoint with small guard gaps; together they tile the 50-14000 Hz log-mel range
# (about 4-7 of 64 mel bands each).
# ----------------------------------------------------------------------------------------------------

_TYPES = (
    EventType(
        name="hum",
        synonyms=("a hum", "an electrical hum", "a humming noise", "a mains hum"),
        band_hz=(45.0, 300.0),
        duration_s=(1.5, 4.0),
        has_pitch=True,
        recipe=hum_recipe,
    ),
    EventType(
        name="engine",
        synonyms=("an engine", "a running engine", "a motor", "an idling engine"),
        band_hz=(340.0, 580.0),
        duration_s=(1.5, 4.0),
        has_pitch=True,
        recipe=engine_recipe,
    ),
    EventType(
        name="knock",
        synonyms=("a knock on a door", "a knocking sound", "a series of knocks", "knocking"),
        band_hz=(620.0, 800.0),
        duration_s=(0.5, 2.0),
        has_pitch=True,
        recipe=knock_recipe,
    ),
    EventType(
        name="dog bark",
        synonyms=("a dog barking", "a barking dog", "a dog bark", "a bark of a dog"),
        band_hz=(840.0, 1080.0),
        duration_s=(0.5, 2.0),
        has_pitch=True,
        recipe=bark_recipe,
    ),
    EventType(
        name="siren",
        synonyms=("a siren", "an alarm siren", "a wailing siren", "a police siren"),
        band_hz=(1120.0, 1600.0),
        duration_s=(1.5, 4.0),
        has_pitch=True,
        recipe=siren_recipe,
    ),
    EventType(
        name="bell",
        synonyms=("a bell", "a ringing bell", "a chime", "a bell ringing"),
        band_hz=(1670.0, 2120.0),
        duration_s=(1.0, 3.5),
        has_pitch=True,
        recipe=bell_recipe,
    ),
    EventType(
        name="beep",
        synonyms=("a beep", "a beeping sound", "an electronic beep", "a beeper"),
        band_hz=(2220.0, 2510.0),
        duration_s=(0.5, 2.5),
        has_pitch=True,
        recipe=beep_recipe,
    ),
    EventType(
        name="whistle",
        synonyms=("a whistle", "a whistling sound", "a person whistling", "a whistled note"),
        band_hz=(2630.0, 2970.0),
        duration_s=(0.6, 2.5),
        has_pitch=True,
        recipe=whistle_recipe,
    ),
    EventType(
        name="sweep",
        synonyms=("a frequency sweep", "a sweeping tone", "a gliding tone", "a tone sweep"),
        band_hz=(3110.0, 4420.0),
        duration_s=(0.5, 2.5),
        has_pitch=True,
        recipe=sweep_recipe,
    ),
    EventType(
        name="bird chirp",
        synonyms=("a bird chirping", "a chirping bird", "a bird call", "a tweeting bird"),
        band_hz=(4620.0, 6200.0),
        duration_s=(0.5, 2.0),
        has_pitch=True,
        recipe=bird_recipe,
    ),
    EventType(
        name="clicking",
        synonyms=("a clicking sound", "a series of clicks", "a ticking sound", "clicking"),
        band_hz=(6490.0, 7780.0),
        duration_s=(0.5, 3.0),
        has_pitch=False,
        recipe=clicks_recipe,
    ),
    EventType(
        name="rain",
        synonyms=("rain", "the patter of rain", "rainfall", "a rain shower"),
        band_hz=(8140.0, 10320.0),
        duration_s=(1.5, 4.0),
        has_pitch=False,
        recipe=rain_recipe,
    ),
    EventType(
        name="hiss",
        synonyms=("a hiss", "a hissing noise", "a burst of hissing", "a noise burst"),
        band_hz=(10800.0, 13700.0),
        duration_s=(0.5, 2.5),
        has_pitch=False,
        recipe=hiss_recipe,
    ),
)

EVENT_TYPES: dict[str, EventType] = {
    event_type.name: event_type for event_type in sorted(_TYPES, key=lambda t: t.name)
}


# ----------------------------------------------------------------------------------------------------
# From recipe to a placed, band-limited, gated event
# ----------------------------------------------------------------------------------------------------


def band_limit(samples: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Keep only band_hz of samples [num_samples] (FFT mask, 2 % raised-cosine edges inside the band)."""
    length = fft_length(samples.size)
    freqs = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    low, high = band_hz
    edge = 0.02 * low, 0.02 * high
    rise = np.clip((freqs - low) / edge[0], 0, 1)
    fall = np.clip((high - freqs) / edge[1], 0, 1)
    mask = (np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2).astype(np.float32)
    spectrum = np.fft.rfft(samples.astype(np.float32), length)
    return np.fft.irfft(spectrum * mask, length)[: samples.size]


def gate(num_samples: int) -> np.ndarray:
    """[num_samples] event gate: 2 ms raised-cosine fades, non-zero on every sample, zero outside."""
    fade = _seconds_to_samples(GATE_FADE_SECONDS)
    return _fade_envelope(num_samples, fade, fade)


def synthesize_event(
    rng: np.random.Generator, event_type: EventType, num_samples: int, pitch: float
) -> Synthesis:
    """Band-limited, gated float32 waveform [num_samples] of one event with unit mean power."""
    raw = event_type.recipe(rng, num_samples, pitch, event_type.band_hz)
    samples = band_limit(raw.samples, event_type.band_hz) * gate(num_samples).astype(np.float32)
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return Synthesis(samples / np.float32(np.sqrt(max(power, 1e-20))), raw.character)
