"""What the readers of training data in formats other than WavCaps json share: one record per clip, the
options that turn records into caption rows, and that conversion (with its counted skips).

Readers (data_handling/table_formats.py, labelled_folders.py, hf_datasets.py) give `SourceRecord`s, one per
clip in the source's order; `records_to_contents` makes the same `CaptionItem` rows a WavCaps json with one
"caption" list per clip gives (one row per caption, the rows of a clip sharing its clip_index), after
dropping, counted and logged:
- captions that are empty (a clip left without a caption is dropped whole);
- clips whose audio file is missing or whose header cannot be read (soundfile.info); `strict` makes either
  an error instead.
Labelled clips get one caption, the first caption template with the labels in place of '{}' (several labels
joined by " and "); the training dataset draws the template anew per clip and epoch (`template_caption`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_handling.audio_io import AudioReadError, audio_duration
from data_handling.caption_rows import CaptionItem, JsonFileContents
from data_handling.class_names import CLASSIFICATION_PROMPT

logger = logging.getLogger(__name__)

LABEL_SEPARATOR = ";"
"""Several labels of one clip in one table cell: "dog;rain"."""
LABELS_JOINED_BY = " and "
"""Several labels of one clip in its caption: "dog and rain can be heard"."""
TEMPLATE_STREAM = 0x7E4D
"""The first key of the template draw's generator, so that it shares no stream with other seeded draws."""
MAX_EXAMPLES = 3
"""Skipped rows named in a log line."""


@dataclass(frozen=True)
class SourceOptions:
    """How the training data readers turn clips into caption rows (data_args keys of the same names).

    caption_templates: '{}' is replaced by a labelled clip's labels; the first gives the rows' caption, the
        training dataset draws one per clip and epoch.
    strict: a clip whose audio is missing or unreadable is an error instead of a counted skip.
    audio_cache: where audio stored as bytes in a Hugging Face dataset is written once (None: beside the dataset).
    """

    caption_templates: tuple[str, ...] = (CLASSIFICATION_PROMPT,)
    strict: bool = False
    audio_cache: str | None = None

    def __post_init__(self) -> None:
        check_caption_templates(self.caption_templates)


def check_caption_templates(templates: Sequence[str]) -> None:
    """ValueError unless there is at least one template and each holds '{}' exactly once."""
    if not templates:
        raise ValueError("data_args.caption_templates is empty; give at least one template such as "
                         f"{CLASSIFICATION_PROMPT!r}")
    wrong = [template for template in templates if not isinstance(template, str) or template.count("{}") != 1]
    if wrong:
        raise ValueError(f"data_args.caption_templates: each template must contain '{{}}' once (where the labels "
                         f"go), found {wrong}")


def label_caption(labels: Sequence[str], template: str) -> str:
    """The caption of a labelled clip: the template with the labels (joined by " and ") in place of '{}'."""
    return template.replace("{}", LABELS_JOINED_BY.join(labels))


def template_caption(labels: Sequence[str], templates: Sequence[str], seed: int, epoch: int, position: int) -> str:
    """label_caption with one template drawn from a generator keyed by (seed, epoch, position): the same draw
    on every run, in every worker process, and after a resume."""
    if len(templates) == 1:
        return label_caption(labels, templates[0])
    choice = np.random.default_rng([TEMPLATE_STREAM, seed, epoch, position]).integers(len(templates))
    return label_caption(labels, templates[int(choice)])


@dataclass
class SourceRecord:
    """One clip as a reader found it.

    audio_path: where its audio is (absolute, or relative to the working folder).
    audio_ref: the source's own value for it (for messages, and the rows' audio_ref).
    captions: its captions (empty for a labelled clip); labels: its labels (empty for a captioned clip).
    duration: seconds, when the source gives them (else read from the file header).
    where: '<file>, row <n>' (for messages).
    """

    audio_path: Path
    audio_ref: str
    clip_id: str
    where: str
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    duration: float | None = None
    fold: int | None = None


class SkipCounter:
    """Counted skips of one source, by reason, with the first few examples; strict turns a skip into an error."""

    def __init__(self, source: str, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, where: str, detail: str = "", strict_applies: bool = False) -> None:
        if self.strict and strict_applies:
            raise ValueError(f"{where}: {reason}{': ' + detail if detail else ''} (data_args.strict is true; "
                             f"set it to false to skip such clips)")
        self.counts[reason] = self.counts.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}{': ' + detail if detail else ''}")

    def log(self) -> None:
        for reason, count in self.counts.items():
            logger.warning("%s: %d skipped (%s), e.g. %s", self.source, count, reason,
                           "; ".join(self.examples[reason]))


def clip_labels(record: SourceRecord) -> list[str]:
    """The record's labels, '_' -> ' ' and whitespace collapsed (as class names), empty ones and repeats left out."""
    return list(dict.fromkeys(name for name in (" ".join(label.replace("_", " ").split()) for label in record.labels)
                              if name))


def _clip_captions(record: SourceRecord, options: SourceOptions, skips: SkipCounter) -> list[str]:
    """The record's non-empty captions (labels through the first template); empty ones counted."""
    if record.labels or not record.captions:
        labels = clip_labels(record)
        if not labels:
            skips.skip("empty caption", record.where, "no label")
            return []
        return [label_caption(labels, options.caption_templates[0])]
    captions = []
    for caption in record.captions:
        if isinstance(caption, str) and caption.strip():
            captions.append(caption)
        else:
            skips.skip("empty caption", record.where)
    return captions


def records_to_contents(records: Sequence[SourceRecord], source: str, first_clip_index: int,
                        options: SourceOptions) -> JsonFileContents:
    """The caption rows of a source's records (module docstring), clip indices from first_clip_index."""
    skips = SkipCounter(source, options.strict)
    items: list[CaptionItem] = []
    num_clips = 0
    for record in records:
        captions = _clip_captions(record, options, skips)
        if not captions:
            continue
        try:
            header_duration = audio_duration(record.audio_path)
        except AudioReadError as error:
            skips.skip("audio file missing or unreadable", record.where, f"{record.audio_ref!r}: {error.reason}",
                       strict_applies=True)
            continue
        duration = record.duration if record.duration is not None else header_duration
        labels = tuple(clip_labels(record))
        items += [CaptionItem(record.audio_path, caption, first_clip_index + num_clips, duration, record.clip_id,
                              source, record.audio_ref, None, labels) for caption in captions]
        num_clips += 1
    skips.log()
    logger.info("%s: %d clips, %d captions", source, num_clips, len(items))
    return JsonFileContents(source, items, num_clips, 0, None, skipped=dict(skips.counts))


def missing_columns_error(path: Path | str, expected: str, found: Sequence[str]) -> ValueError:
    """The one-line error of a table or dataset without a needed column."""
    return ValueError(f"{path}: expected {expected}; found columns {list(found)}")
