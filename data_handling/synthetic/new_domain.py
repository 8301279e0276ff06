"""A "new domain" for fine-tuning experiments: sound classes the synthetic corpus never contains.

The corpus's 13 classes each own a frequency band; the new classes reuse those bands (so the band alone
does not tell them apart from the corpus's classes) with temporal patterns and names of their own. A
model trained on the corpus has never heard them nor read their names: zero-shot it can only guess,
which is what fine-tuning on a few dozen labelled clips per class should change.

    python -m data_handling.synthetic.new_domain --out data/new_domain --train-per-class 40 --test-per-class 20

Layout (folders of class folders; labels replace spaces by '_', as the corpus's ESC-50 split):

    DIR/
      classes.json                        {"events": [{"name", "synonyms", "band_hz"}, ...]} sorted by name
      train/<label>/<label>_00000.wav ... 5 s single-event clips (32 kHz, mono, PCM 16) over a light background
      test/<label>/<label>_00000.wav ...
      DONE                                json (seed, counts, classes); written last

Clip i of a split is drawn from SeedSequence([seed, split id, i]) with split ids that the corpus does not
use, so the clips differ from every clip of the corpus and one seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from data_handling.synthetic.corpus import DONE_MARKER, check_counts, write_classes, write_wav
from data_handling.synthetic.events import (
    SAMPLES_PER_MS,
    Band,
    EventType,
    Synthesis,
    _fade_envelope,
    _in_band,
    _place,
    _pulse_starts,
    _random_fades,
    _seconds_to_samples,
    _sin,
    _spectral_noise,
    _times,
)
from data_handling.synthetic.scenes import clip_rng, render_single_event

SPLIT_IDS = {"train": 20, "test": 21}
"""Seed-sequence ids of the new domain's splits (the corpus uses 0-4)."""


def heartbeat_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Heartbeat: pairs of low thumps ("lub-dub", the second softer) at 0.8-1.8 beats per second."""
    frequency = _in_band(band_hz, 0.1 + 0.4 * pitch)
    thump_len = min(_seconds_to_samples(rng.uniform(0.06, 0.12)), num_samples)
    times = _times(thump_len)
    thump = _sin(2 * np.pi * frequency * times) * np.exp(-times / (times[-1] / 3 + 1e-4))
    thump *= _fade_envelope(thump_len, 4 * SAMPLES_PER_MS, SAMPLES_PER_MS)
    gap = _seconds_to_samples(rng.uniform(0.15, 0.25))
    beat_len = min(gap + thump_len, num_samples)
    beat = np.zeros(beat_len)
    beat[:thump_len] += thump
    if gap + thump_len <= beat_len:
        beat[gap:gap + thump_len] += rng.uniform(0.4, 0.7) * thump
    starts = _pulse_starts(num_samples, beat_len, _seconds_to_samples(1 / rng.uniform(0.8, 1.8)), min_pulses=1)
    return Synthesis(_place(num_samples, starts, beat[None, :].repeat(starts.size, 0)))


def cricket_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Cricket: bursts of 3-6 very short pure-tone pulses, the bursts 2-5 per second."""
    frequency = _in_band(band_hz, 0.2 + 0.6 * pitch)
    pulse_len = _seconds_to_samples(rng.uniform(0.008, 0.015))
    pulses = int(rng.integers(3, 7))
    burst_len = min(pulses * 2 * pulse_len, num_samples)
    burst = np.zeros(burst_len)
    times = _times(pulse_len)
    pulse = _sin(2 * np.pi * frequency * times) * np.sin(np.pi * (np.arange(pulse_len) + 0.5) / pulse_len) ** 2
    for index in range(pulses):
        start = index * 2 * pulse_len
        if start + pulse_len <= burst_len:
            burst[start:start + pulse_len] = pulse
    starts = _pulse_starts(num_samples, burst_len, _seconds_to_samples(1 / rng.uniform(2, 5)), min_pulses=2)
    return Synthesis(_place(num_samples, starts, burst[None, :].repeat(starts.size, 0)))


def drum_roll_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Drum roll: 14-28 damped noisy hits per second growing louder (a crescendo)."""
    hit_len = min(_seconds_to_samples(rng.uniform(0.02, 0.04)), num_samples)
    starts = _pulse_starts(num_samples, hit_len, _seconds_to_samples(1 / rng.uniform(14, 28)), min_pulses=2)
    decay = np.exp(-np.arange(hit_len) / (hit_len / 4))
    center = _in_band(band_hz, 0.2 + 0.6 * pitch)
    tone = _sin(2 * np.pi * center * _times(hit_len))
    hits = (tone[None, :] + 0.5 * rng.standard_normal((starts.size, hit_len))) * decay[None, :]
    crescendo = np.linspace(rng.uniform(0.2, 0.5), 1.0, starts.size)[:, None]
    return Synthesis(_place(num_samples, starts, hits * crescendo))


def telephone_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Telephone ring: two close tones warbled at 15-25 Hz, in rings of 0.4-1 s with pauses between them."""
    low = _in_band(band_hz, 0.1 + 0.4 * pitch)
    high = low * rng.uniform(1.1, 1.3)
    times = _times(num_samples)
    warble = 0.5 * (1 + np.sign(_sin(2 * np.pi * rng.uniform(15, 25) * times)))
    tone = _sin(2 * np.pi * low * times) * warble + _sin(2 * np.pi * high * times) * (1 - warble)
    ring_len = min(_seconds_to_samples(rng.uniform(0.4, 1.0)), num_samples)
    starts = _pulse_starts(num_samples, ring_len, int(ring_len * rng.uniform(1.5, 2.5)))
    if starts.size == 1:
        ring_len = num_samples
    gate = _place(num_samples, starts, _fade_envelope(ring_len, 5 * SAMPLES_PER_MS, 5 * SAMPLES_PER_MS)[None, :]
                  .repeat(starts.size, 0))
    return Synthesis(tone * np.minimum(gate, 1.0))


def wind_recipe(rng: np.random.Generator, num_samples: int, pitch: float, band_hz: Band) -> Synthesis:
    """Wind: band noise whose loudness and centre swell in slow gusts (0.2-0.8 Hz)."""
    center = _in_band(band_hz, 0.2 + 0.6 * pitch)
    width = center * rng.uniform(0.2, 0.5)
    noise = _spectral_noise(rng, num_samples, lambda freqs: np.exp(-0.5 * ((freqs - center) / width) ** 2))
    gusts = 1 + rng.uniform(0.5, 0.9) * _sin(2 * np.pi * rng.uniform(0.2, 0.8) * _times(num_samples)
                                             + rng.uniform(0, 2 * np.pi))
    fades = _random_fades(rng, num_samples, (0.2, 0.6), (0.2, 0.6))
    return Synthesis(noise * gusts * fades)


_NEW_TYPES = (
    EventType("heartbeat", ("a heartbeat", "a beating heart", "a pounding heartbeat", "heartbeats"),
              (45.0, 300.0), (2.0, 4.5), True, heartbeat_recipe),
    EventType("cricket", ("a cricket", "a chirping cricket", "crickets chirping", "the song of a cricket"),
              (4620.0, 6200.0), (1.5, 4.5), True, cricket_recipe),
    EventType("drum roll", ("a drum roll", "a rolling drum", "a snare roll", "drumming"),
              (340.0, 800.0), (1.0, 4.0), True, drum_roll_recipe),
    EventType("telephone ring", ("a telephone ringing", "a ringing phone", "a phone ring", "a telephone"),
              (1120.0, 2120.0), (1.5, 4.5), True, telephone_recipe),
    EventType("wind", ("wind", "a gust of wind", "howling wind", "the wind blowing"),
              (620.0, 2510.0), (2.0, 4.5), True, wind_recipe),
)

NEW_DOMAIN_TYPES: dict[str, EventType] = {event_type.name: event_type
                                          for event_type in sorted(_NEW_TYPES, key=lambda t: t.name)}
"""The new domain's classes by name; none of them is a class of the corpus (EVENT_TYPES)."""


def generate_new_domain(out_dir: str | Path, train_per_class: int = 40, test_per_class: int = 20,
                        seed: int = 0) -> dict:
    """Write the new domain's labelled train and test splits (see the module docstring) into `out_dir`, which
    must not hold a train/ or test/ folder yet (ValueError before anything is written). Returns a summary:
    out_dir, seed, counts, classes, the split folders."""
    check_counts(train_per_class=train_per_class, test_per_class=test_per_class)
    out_dir = Path(out_dir).expanduser().resolve()
    if any((out_dir / split).exists() for split in SPLIT_IDS):
        raise ValueError(f"{out_dir} already holds train/ or test/; choose an empty folder")
    types = list(NEW_DOMAIN_TYPES.values())
    counts = {"train": train_per_class, "test": test_per_class}
    for split, per_class in counts.items():
        for target, event_type in enumerate(types):
            folder = out_dir / split / event_type.label
            folder.mkdir(parents=True)
            for take in range(per_class):
                rng = clip_rng(seed, SPLIT_IDS[split], target * per_class + take)
                pcm, _ = render_single_event(rng, event_type)
                write_wav(folder / f"{event_type.label}_{take:05d}.wav", pcm)
    write_classes(out_dir / "classes.json", types)
    summary = {"out_dir": str(out_dir), "seed": seed, "train_per_class": train_per_class,
               "test_per_class": test_per_class, "events": [t.name for t in types],
               "splits": {split: str(out_dir / split) for split in SPLIT_IDS}}
    (out_dir / DONE_MARKER).write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_handling.synthetic.new_domain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or without train/ and test/)")
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = generate_new_domain(args.out, args.train_per_class, args.test_per_class, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(summary['events'])} classes ({', '.join(summary['events'])}) into {summary['out_dir']}: "
          f"{args.train_per_class} training and {args.test_per_class} test clips per class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
