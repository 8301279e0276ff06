"""Captions of synthetic clips: every event, in onset order, described by its sampled attributes.

A caption is a frame ("you can hear ...", "... can be heard") around event phrases joined by temporal
connectors. An event phrase is an optional article, up to two adjectives read off the event's actual
parameters (length, loudness, recipe character, pitch) and one of its class's synonyms, e.g.
"a short loud beep" or "the soft patter of rain". Between two consecutive events the connector says
whether the second starts after the first ended ("followed by", "then") or while it still sounds
("while there is", "at the same time as", "with ... in the background" when it is much softer).
Captions are lower case words separated by single spaces, without punctuation, so word indices of
phrases are indices into caption.split(" ").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_handling.synthetic.events import EVENT_TYPES
from data_handling.synthetic.scenes import SoundEvent, sort_key

ARTICLES = ("a", "an", "the")
LOUD_SNR_DB = 20.0
SOFT_SNR_DB = 10.0
BACKGROUND_MARGIN_DB = 6.0

SEQUENTIAL_CONNECTORS = ("followed by", "then", "and then", "and after that", "and later", "before")
OVERLAP_CONNECTORS = (
    "while there is",
    "at the same time as",
    "together with",
    "along with",
    "overlapping with",
)
FRAMES = (
    ("", ""),
    ("the sound of", ""),
    ("there is", ""),
    ("you can hear", ""),
    ("we hear", ""),
    ("", "can be heard"),
)
MAX_ADJECTIVES = 2


def split_article(synonym: str) -> tuple[str, str]:
    """("a", "barking dog") for "a barking dog"; ("", "rainfall") for an article-less synonym."""
    first, _, rest = synonym.partition(" ")
    return (first, rest) if first in ARTICLES and rest else ("", synonym)


def adjectives_of(event: SoundEvent) -> list[tuple[str, ...]]:
    """Per applicable attribute, the adjectives that may describe it, in canonical English order."""
    options: list[tuple[str, ...]] = []
    if event.length_fraction < 0.25:
        options.append(("short", "brief"))
    elif event.length_fraction > 0.75:
        options.append(("long",))
    if event.snr_db > LOUD_SNR_DB:
        options.append(("loud",))
    elif event.snr_db < SOFT_SNR_DB:
        options.append(("soft", "quiet", "faint"))
    if event.character is not None:
        options.append((event.character,))
    if EVENT_TYPES[event.name].has_pitch and event.pitch > 0.75:
        options.append(("high pitched",))
    elif EVENT_TYPES[event.name].has_pitch and event.pitch < 0.25:
        options.append(("low pitched", "deep"))
    return options


def _with_article(article: str, words: list[str]) -> list[str]:
    if article in ("a", "an"):
        article = "an" if words[0][0] in "aeiou" else "a"
    return [article, *words] if article else words


def event_phrase(event: SoundEvent, rng: np.random.Generator) -> list[str]:
    """Words describing one event, e.g. ["a", "short", "loud", "beep"]."""
    synonyms = EVENT_TYPES[event.name].synonyms
    article, noun = split_article(synonyms[int(rng.integers(len(synonyms)))])
    options = adjectives_of(event)
    num_adjectives = int(rng.integers(0, min(MAX_ADJECTIVES, len(options)) + 1))
    picked = sorted(rng.choice(len(options), size=num_adjectives, replace=False)) if num_adjectives else []
    adjectives = [options[i][int(rng.integers(len(options[i])))] for i in picked]
    return _with_article(article, " ".join([*adjectives, noun]).split(" "))


def _connector(previous: SoundEvent, following: SoundEvent, rng: np.random.Generator) -> tuple[str, str]:
    """(words before, words after) the following event's phrase, given how it relates to the previous."""
    if following.onset >= previous.offset:
        return SEQUENTIAL_CONNECTORS[int(rng.integers(len(SEQUENTIAL_CONNECTORS)))], ""
    if following.snr_db < previous.snr_db - BACKGROUND_MARGIN_DB and rng.random() < 0.5:
        return "with", "in the background"
    return OVERLAP_CONNECTORS[int(rng.integers(len(OVERLAP_CONNECTORS)))], ""


def caption_for(events: Sequence[SoundEvent], rng: np.random.Generator) -> tuple[str, list[tuple[int, int]]]:
    """A caption naming every event in onset order, and each event's word span.

    events: the clip's events, in any order (at least one).
    Returns (caption, spans) where spans[i] = (start_index, end_index), inclusive word indices of the
    phrase of events[i] in caption.split(" ").
    """
    if not events:
        raise ValueError("caption_for needs at least one event; got none")
    prefix, suffix = FRAMES[int(rng.integers(len(FRAMES)))]
    words = prefix.split()
    order = sorted(range(len(events)), key=lambda i: sort_key(events[i]))
    spans: list[tuple[int, int]] = [(0, 0)] * len(events)
    after = ""
    for position, index in enumerate(order):
        if position > 0:
            before, after_next = _connector(events[order[position - 1]], events[index], rng)
            words += after.split() + before.split()
            after = after_next
        phrase = event_phrase(events[index], rng)
        spans[index] = (len(words), len(words) + len(phrase) - 1)
        words += phrase
    words += after.split() + suffix.split()
    return " ".join(words), spans


def distinct_captions(
    events: Sequence[SoundEvent], rng: np.random.Generator, count: int, max_tries: int = 200
) -> list[str]:
    """`count` different captions of the same events (Clotho style, e.g. 5 per clip)."""
    captions: list[str] = []
    for _ in range(max_tries):
        caption, _ = caption_for(events, rng)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == count:
            return captions
    raise RuntimeError(
        f"found only {len(captions)} distinct captions out of {count} wanted in {max_tries} tries"
    )
