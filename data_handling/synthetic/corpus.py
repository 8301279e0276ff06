"""Writing the synthetic corpus to disk in the layouts of the real datasets (see the package docstring)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_handling.synthetic.captions import caption_for, distinct_captions
from data_handling.synthetic.events import EVENT_TYPES, SAMPLE_RATE, EventType
from data_handling.synthetic.scenes import (
    CLIP_SECONDS,
    ESC_CLIP_SECONDS,
    SoundEvent,
    clip_rng,
    render_scene,
    render_single_event,
)
from models.memory import reuse_freed_memory

DONE_MARKER = "DONE"
CLASSES_FILE = "classes.json"
SPLIT_IDS = {"train": 0, "retrieval": 1, "sed": 2, "grounding": 3, "esc50": 4}
OWNED_FOLDERS = tuple(SPLIT_IDS)
FILE_PREFIX = {"train": "train", "retrieval": "test", "sed": "sed", "grounding": "grd"}
RETRIEVAL_CAPTIONS = 5
ESC_FOLDS = 5
ESC_FIRST_CLIP_ID = 100000
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipJob:
    """One audio file to render: which split, which clip, where, and from which classes."""

    split: str
    index: int
    wav_path: str
    seed: int
    event_names: tuple[str, ...]
    num_captions: int = 0
    esc_class: str | None = None


@dataclass
class ClipResult:
    """Metadata of one rendered clip: events sorted by onset, captions, and the word spans of the first."""

    job: ClipJob
    events: list[SoundEvent]
    captions: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return Path(self.job.wav_path).name


# ----------------------------------------------------------------------------------------------------
# Input checks: all done before anything is written
# ----------------------------------------------------------------------------------------------------


def resolve_event_types(event_names: Iterable[str] | None) -> list[EventType]:
    """The classes to use, sorted by name; names may use '_' for spaces ("dog_bark")."""
    if event_names is None:
        return list(EVENT_TYPES.values())
    wanted = sorted({name.strip().lower().replace("_", " ") for name in event_names if name.strip()})
    unknown = [name for name in wanted if name not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {unknown}; choose from {sorted(EVENT_TYPES)} "
            "(comma-separated, '_' or ' ' inside names)"
        )
    if not wanted:
        raise ValueError(f"the event list is empty; name at least one of {sorted(EVENT_TYPES)}")
    return [EVENT_TYPES[name] for name in wanted]


def check_counts(**counts: int) -> None:
    """Raise ValueError naming every count that is not a positive integer."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}; pass a count >= 1")


def check_output_dir(out_dir: Path, overwrite: bool) -> None:
    """Raise ValueError unless out_dir can be created or written, and is empty or overwrite is set."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output path {out_dir} is a file, not a folder; choose another output folder")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"cannot create output folder {out_dir}: {existing} is a file; choose another folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"output folder {out_dir} is not writable ({existing} denies writing); "
            "choose a folder you can write to"
        )
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"output folder {out_dir} is not empty; pass --overwrite (overwrite=True) to replace "
            "the corpus in it, or choose an empty folder"
        )


def remove_previous_corpus(out_dir: Path) -> None:
    """Delete the marker first, then only the files and folders this generator writes."""
    for name in (DONE_MARKER, CLASSES_FILE):
        (out_dir / name).unlink(missing_ok=True)
    for name in OWNED_FOLDERS:
        if (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)


# ----------------------------------------------------------------------------------------------------
# Rendering (runs in worker processes)
# ----------------------------------------------------------------------------------------------------


def write_wav(path: str | Path, pcm: np.ndarray) -> None:
    """Write pcm [num_samples] int16 as a mono 16-bit PCM wav (plain RIFF header, no extra chunks)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.astype("<i2").tobytes())


def render_job(job: ClipJob) -> ClipResult:
    """Synthesise one clip, write its wav (32 kHz, mono, PCM 16) and return its metadata."""
    rng = clip_rng(job.seed, SPLIT_IDS[job.split], job.index)
    if job.esc_class is not None:
        pcm, event = render_single_event(rng, EVENT_TYPES[job.esc_class])
        events = [event]
    else:
        pcm, events = render_scene(rng, [EVENT_TYPES[name] for name in job.event_names])
    write_wav(job.wav_path, pcm)
    result = ClipResult(job, events)
    if job.num_captions == 1:
        caption, spans = caption_for(events, rng)
        result.captions, result.spans = [caption], spans
    elif job.num_captions > 1:
        result.captions = distinct_captions(events, rng, job.num_captions)
    return result


def run_jobs(jobs: Sequence[ClipJob], num_workers: int) -> list[ClipResult]:
    """Render jobs in order; with num_workers > 1 in a spawn pool (safe beside threaded libraries)."""
    if num_workers <= 1 or len(jobs) < 32:
        return [render_job(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(num_workers, initializer=reuse_freed_memory) as pool:
        return pool.map(render_job, jobs, chunksize=16)


def make_jobs(
    out_dir: Path,
    seed: int,
    types: Sequence[EventType],
    num_train: int,
    num_test: int,
    num_esc_per_class: int,
) -> list[ClipJob]:
    """All clips of the corpus, in the order their metadata is written."""
    names = tuple(event_type.name for event_type in types)
    captions = {"train": 1, "retrieval": RETRIEVAL_CAPTIONS, "sed": 0, "grounding": 1}
    jobs = []
    for split, count in (
        ("train", num_train),
        ("retrieval", num_test),
        ("sed", num_test),
        ("grounding", num_test),
    ):
        for index in range(count):
            wav = out_dir / split / "audio" / f"{FILE_PREFIX[split]}_{index:05d}.wav"
            jobs.append(ClipJob(split, index, str(wav), seed, names, captions[split]))
    for target, event_type in enumerate(types):
        for take in range(num_esc_per_class):
            index = target * num_esc_per_class + take
            fold = (index % ESC_FOLDS) + 1
            wav = out_dir / "esc50" / "audio" / f"{fold}-{ESC_FIRST_CLIP_ID + index}-A-{target}.wav"
            jobs.append(ClipJob("esc50", index, str(wav), seed, names, esc_class=event_type.name))
    return jobs


# ----------------------------------------------------------------------------------------------------
# Metadata writers
# ----------------------------------------------------------------------------------------------------


def _write_json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _event_rows(results: Sequence[ClipResult]) -> list[str]:
    return [
        f"{result.filename}\t{event.onset:.3f}\t{event.offset:.3f}\t{EVENT_TYPES[event.name].label}"
        for result in results
        for event in result.events
    ]


def write_strong_labels(path: Path, results: Sequence[ClipResult]) -> None:
    """AudioSet-strong / DESED tsv: filename, onset, offset, event_label."""
    _write_lines(path, ["filename\tonset\toffset\tevent_label", *_event_rows(results)])


def write_durations(path: Path, results: Sequence[ClipResult], seconds: float) -> None:
    _write_lines(path, ["filename\tduration", *(f"{result.filename}\t{seconds:.1f}" for result in results)])


def write_classes(path: Path, types: Sequence[EventType]) -> None:
    _write_json(
        path,
        {
            "events": [
                {"name": t.name, "synonyms": list(t.synonyms), "band_hz": list(t.band_hz)} for t in types
            ]
        },
    )


def write_train(split_dir: Path, results: Sequence[ClipResult]) -> None:
    """WavCaps style json with one caption per clip, plus the strong labels."""
    data = [
        {
            "id": Path(r.filename).stem,
            "audio": f"audio/{r.filename}",
            "caption": r.captions[0],
            "duration": CLIP_SECONDS,
        }
        for r in results
    ]
    _write_json(split_dir / "train.json", {"num_captions_per_audio": 1, "data": data})
    write_strong_labels(split_dir / "events.tsv", results)


def write_retrieval(split_dir: Path, results: Sequence[ClipResult]) -> None:
    """Clotho / AudioCaps style json with 5 different captions per clip, plus the strong labels."""
    data = []
    for r in results:
        entry: dict[str, object] = {"id": Path(r.filename).stem, "audio": f"audio/{r.filename}"}
        entry.update({f"caption_{k + 1}": caption for k, caption in enumerate(r.captions)})
        entry["duration"] = CLIP_SECONDS
        data.append(entry)
    _write_json(split_dir / "test.json", {"num_captions_per_audio": RETRIEVAL_CAPTIONS, "data": data})
    write_strong_labels(split_dir / "events.tsv", results)


def write_sed(split_dir: Path, results: Sequence[ClipResult]) -> None:
    metadata = split_dir / "metadata"
    metadata.mkdir(exist_ok=True)
    write_strong_labels(metadata / "eval.tsv", results)
    write_durations(metadata / "eval_durations.tsv", results, CLIP_SECONDS)


def write_grounding(split_dir: Path, results: Sequence[ClipResult]) -> None:
    """AudioGrounding style json (one phrase per event, word indices inclusive) and durations."""
    entries = []
    for audiocap_id, r in enumerate(results):
        words = r.captions[0].split(" ")
        phrases = [
            {
                "phrase": " ".join(words[start : end + 1]),
                "start_index": start,
                "end_index": end,
                "segments": [[event.onset, event.offset]],
            }
            for event, (start, end) in zip(r.events, r.spans, strict=True)
        ]
        entries.append(
            {"audio_id": r.filename, "audiocap_id": audiocap_id, "tokens": r.captions[0], "phrases": phrases}
        )
    _write_json(split_dir / "test.json", entries)
    write_durations(split_dir / "durations.tsv", results, CLIP_SECONDS)
    write_strong_labels(split_dir / "events.tsv", results)


def write_esc50(split_dir: Path, results: Sequence[ClipResult], types: Sequence[EventType]) -> None:
    """ESC-50 csv: filename,fold,target,category,esc10,src_file,take (rows sorted by filename)."""
    targets = {event_type.name: target for target, event_type in enumerate(types)}
    rows = []
    for r in results:
        fold, clip_id, take, _ = Path(r.filename).stem.split("-")
        name = r.job.esc_class
        rows.append(f"{r.filename},{fold},{targets[name]},{EVENT_TYPES[name].label},False,{clip_id},{take}")
    metadata = split_dir / "meta"
    metadata.mkdir(exist_ok=True)
    _write_lines(metadata / "esc50.csv", ["filename,fold,target,category,esc10,src_file,take", *sorted(rows)])


# ----------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------


def corpus_exists(out_dir: str | Path) -> bool:
    """True when out_dir holds a complete corpus (the DONE marker is written last)."""
    return (Path(out_dir) / DONE_MARKER).is_file()


def generate_corpus(
    out_dir: str | Path,
    num_train: int = 1000,
    num_test: int = 100,
    seed: int = 0,
    overwrite: bool = False,
    event_names: list[str] | None = None,
    num_esc_per_class: int = 8,
    num_workers: int | None = None,
) -> dict:
    """Write the synthetic corpus to out_dir; see the package docstring for the layout.

    num_test: number of clips in each of the retrieval, SED and grounding splits.
    event_names: the classes to use (default: all of EVENT_TYPES).
    num_workers: processes used for synthesis (default: min(2, CPU count)); never changes the output.
    Returns a summary: out_dir, seed, counts, event names, paths written (absolute) and seconds taken.
    Raises ValueError before writing anything when an argument or the output folder is unusable.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).expanduser().resolve()
    check_counts(num_train=num_train, num_test=num_test, num_esc_per_class=num_esc_per_class)
    types = resolve_event_types(event_names)
    check_output_dir(out_dir, overwrite)
    if out_dir.exists():
        remove_previous_corpus(out_dir)
    for split in OWNED_FOLDERS:
        (out_dir / split / "audio").mkdir(parents=True, exist_ok=True)
    write_classes(out_dir / CLASSES_FILE, types)
    jobs = make_jobs(out_dir, seed, types, num_train, num_test, num_esc_per_class)
    workers = num_workers if num_workers is not None else min(2, os.cpu_count() or 1)
    results = run_jobs(jobs, workers)
    by_split = {split: [r for r in results if r.job.split == split] for split in SPLIT_IDS}
    write_train(out_dir / "train", by_split["train"])
    write_retrieval(out_dir / "retrieval", by_split["retrieval"])
    write_sed(out_dir / "sed", by_split["sed"])
    write_grounding(out_dir / "grounding", by_split["grounding"])
    write_esc50(out_dir / "esc50", by_split["esc50"], types)
    counts = {"num_train": num_train, "num_test": num_test, "num_esc_per_class": num_esc_per_class}
    marker = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        **counts,
        "events": [t.name for t in types],
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": CLIP_SECONDS,
        "esc_clip_seconds": ESC_CLIP_SECONDS,
    }
    _write_json(out_dir / DONE_MARKER, marker)
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        **counts,
        "events": marker["events"],
        "num_audio_files": len(results),
        "paths": corpus_paths(out_dir),
        "seconds": round(time.perf_counter() - started, 3),
    }


def corpus_paths(out_dir: Path) -> dict[str, str]:
    """Absolute paths of the corpus's metadata files and audio folders."""
    relative = {
        "classes": CLASSES_FILE,
        "train_json": "train/train.json",
        "train_audio": "train/audio",
        "retrieval_json": "retrieval/test.json",
        "retrieval_audio": "retrieval/audio",
        "sed_tsv": "sed/metadata/eval.tsv",
        "sed_durations": "sed/metadata/eval_durations.tsv",
        "sed_audio": "sed/audio",
        "grounding_json": "grounding/test.json",
        "grounding_durations": "grounding/durations.tsv",
        "grounding_audio": "grounding/audio",
        "esc50_csv": "esc50/meta/esc50.csv",
        "esc50_audio": "esc50/audio",
        "done": DONE_MARKER,
    }
    return {key: str(out_dir / value) for key, value in relative.items()}


def ensure_corpus(root: str | Path, num_train: int, num_test: int, seed: int) -> Path:
    """The corpus folder, generated first when it is missing or incomplete (corpus_exists)."""
    root = Path(root)
    if not corpus_exists(root):
        logger.info("generating the synthetic corpus in %s (%d train / %d test clips)", root, num_train, num_test)
        summary = generate_corpus(root, num_train=num_train, num_test=num_test, seed=seed, overwrite=root.exists())
        logger.info("corpus generated in %.1f s", summary.get("seconds", float("nan")))
    return root


def generate_sed_split(
    out_dir: str | Path,
    num_clips: int = 100,
    seed: int = 1,
    event_names: list[str] | None = None,
    num_workers: int | None = None,
    prefix: str = "dev",
) -> dict:
    """A labelled SED split on its own, e.g. a development set to calibrate detection thresholds on.

    Layout (the corpus's sed/ split): out_dir/audio/<prefix>_00000.wav ..., out_dir/metadata/eval.tsv
    (filename, onset, offset, event_label) and out_dir/metadata/eval_durations.tsv. Clip i is drawn as clip i
    of a corpus's SED split with this seed, so with a seed other than the corpus's (0 by default) the clips
    differ from every clip of the corpus. out_dir must not hold audio/ or metadata/ yet.
    Returns: out_dir, seed, num_clips, events, paths (tsv, durations, audio) and seconds taken.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).expanduser().resolve()
    check_counts(num_clips=num_clips)
    types = resolve_event_types(event_names)
    if (out_dir / "audio").exists() or (out_dir / "metadata").exists():
        raise ValueError(f"{out_dir} already holds audio/ or metadata/; choose an empty folder")
    (out_dir / "audio").mkdir(parents=True)
    names = tuple(event_type.name for event_type in types)
    jobs = [ClipJob("sed", index, str(out_dir / "audio" / f"{prefix}_{index:05d}.wav"), seed, names)
            for index in range(num_clips)]
    results = run_jobs(jobs, num_workers if num_workers is not None else min(2, os.cpu_count() or 1))
    write_sed(out_dir, results)
    return {"out_dir": str(out_dir), "seed": seed, "num_clips": num_clips, "events": list(names),
            "paths": {"tsv": str(out_dir / "metadata" / "eval.tsv"),
                      "durations": str(out_dir / "metadata" / "eval_durations.tsv"),
                      "audio": str(out_dir / "audio")},
            "seconds": round(time.perf_counter() - started, 3)}
