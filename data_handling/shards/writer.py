"""Writing shards: the training json files' clips -> WebDataset tar shards and their manifest.

The clips are those file-mode training reads (data_handling/training_items.py: the json files, the
blacklist, the audio files found), in the same order, each with all its captions. They are cut into
shards before any audio is decoded (at most clips_per_shard clips, and, when shard_minutes is given,
at most that many minutes of audio by the json durations), so that shard k always holds the same clips:
a second run of the same command keeps the shards it finds finished (`<shard>.done`, whose plan
matches) and rewrites the others. Each shard is written to `<shard>.partial` and renamed when complete.
Audio files that cannot be decoded are left out and listed in the manifest's "unreadable".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from data_handling.audio_io import AudioReadError, load_audio
from data_handling.audio_paths import AudioPathResolver
from data_handling.caption_rows import CaptionItem
from data_handling.caption_sources import read_wavcaps_jsons
from data_handling.shards.format import FLAC_SUBTYPES, SAMPLE_RATE, ClipRecord, clip_key, encode_clip
from data_handling.shards.manifest import MANIFEST_NAME, ShardEntry, ShardError, ShardManifest
from data_handling.training_items import describe_clip, fill_missing_durations, resolve_audio_paths

logger = logging.getLogger(__name__)
left_out_logger = logging.getLogger("data_handling.shards")  # the clips training_clips leaves out

PLAN_NAME = "plan.json"
DONE_SUFFIX = ".done"


@dataclass(frozen=True)
class PlannedClip:
    """A clip to write: where its audio is, and its record (audio_seconds and gain come when decoded)."""

    audio_path: str
    record: ClipRecord


@dataclass(frozen=True)
class ShardTask:
    name: str
    clips: tuple[PlannedClip, ...]
    out_dir: str
    max_seconds: float
    bits: int
    plan_hash: str
    resampler: str = "soxr_hq"


def group_clips(items: Iterable[CaptionItem]) -> list[PlannedClip]:
    """Caption rows -> one PlannedClip per clip (rows of a clip share source and clip_index), in row order."""
    clips: dict[tuple[str, int], tuple[CaptionItem, list[str]]] = {}
    for item in items:
        clips.setdefault((item.source, item.clip_index), (item, []))[1].append(item.caption)
    return [PlannedClip(str(first.audio_path),
                        ClipRecord(clip_index=first.clip_index, clip_id=first.clip_id, captions=tuple(captions),
                                   duration=float(first.duration or 0.0), audio_seconds=0.0, source=first.source,
                                   audio=first.audio_ref))
            for first, captions in clips.values()]


def training_clips(json_files: Sequence[str], blacklist: Sequence[str],
                   audio_root: str | None) -> tuple[list[PlannedClip], list[dict[str, str]]]:
    """The clips file-mode training reads from these json files, blacklist files and audio root, grouped for
    write_shards, and the records of those whose audio file was not found (write_shards' `unresolved`:
    id, audio, reason); the first five of these are logged."""
    items = read_wavcaps_jsons(json_files, audio_root, list(blacklist) or None)
    resolution = resolve_audio_paths(items, AudioPathResolver(audio_root))
    unresolved = resolution.missing_records()
    for item, record in zip(resolution.unresolved_clips[:5], unresolved, strict=False):
        left_out_logger.warning("not found, left out: %s: %s", describe_clip(item), record["reason"])
    return group_clips(fill_missing_durations(resolution.found)), unresolved


def cut_into_shards(clips: Sequence[PlannedClip], clips_per_shard: int,
                    shard_minutes: float | None = None) -> list[list[PlannedClip]]:
    """Consecutive runs of clips: at most clips_per_shard, and at most shard_minutes of (json) audio unless
    a single clip is longer."""
    if clips_per_shard < 1:
        raise ValueError(f"clips_per_shard must be >= 1, got {clips_per_shard}")
    if shard_minutes is not None and shard_minutes <= 0:
        raise ValueError(f"shard_minutes must be > 0 (or None), got {shard_minutes}")
    shards: list[list[PlannedClip]] = []
    current: list[PlannedClip] = []
    seconds = 0.0
    for clip in clips:
        clip_seconds = clip.record.duration
        too_long = shard_minutes is not None and current and seconds + clip_seconds > shard_minutes * 60
        if len(current) == clips_per_shard or too_long:
            shards.append(current)
            current, seconds = [], 0.0
        current.append(clip)
        seconds += clip_seconds
    if current:
        shards.append(current)
    return shards


def shard_file_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def plan_hash(shards: Sequence[Sequence[PlannedClip]], max_seconds: float, bits: int,
              resampler: str = "soxr_hq") -> str:
    """A digest of what the shards will hold: same inputs and options, same hash (soxr_hq shards keep the
    digest they had before the resampler was an option)."""
    options = {"sample_rate": SAMPLE_RATE, "max_seconds": max_seconds, "bits": bits}
    if resampler != "soxr_hq":
        options["resampler"] = resampler
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for shard in shards:
        digest.update(b"|shard|")
        for clip in shard:
            digest.update(json.dumps([clip.audio_path, clip.record.to_json()], sort_keys=True).encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shard(task: ShardTask) -> dict:
    """Decode and write one shard; returns {"entry": ShardEntry fields, "unreadable": [...]} (also stored in
    `<shard>.done`)."""
    import webdataset

    out_dir = Path(task.out_dir)
    final, partial = out_dir / task.name, out_dir / (task.name + ".partial")
    durations, captions_per_clip, unreadable = [], [], []
    seconds = 0.0
    with webdataset.TarWriter(str(partial), encoder=False, mtime=0) as tar:
        for clip in task.clips:
            try:
                samples = load_audio(clip.audio_path, SAMPLE_RATE, mono=True, max_seconds=task.max_seconds,
                                     resampler=task.resampler)
            except AudioReadError as error:
                unreadable.append({"audio": clip.audio_path, "id": clip.record.clip_id, "source": clip.record.source,
                                   "reason": error.reason})
                continue
            members, record = encode_clip(samples, clip.record, task.bits)
            tar.write({"__key__": clip_key(record.clip_index), **members})
            durations.append(record.duration)
            captions_per_clip.append(len(record.captions))
            seconds += record.audio_seconds
    os.replace(partial, final)
    entry = ShardEntry(name=task.name, clips=len(durations), captions=sum(captions_per_clip), seconds=seconds,
                       bytes=final.stat().st_size, sha256=file_sha256(final), durations=durations,
                       captions_per_clip=captions_per_clip)
    result = {"plan_hash": task.plan_hash, "entry": asdict(entry), "unreadable": unreadable}
    (out_dir / (task.name + DONE_SUFFIX)).write_text(json.dumps(result))
    return result


def finished_shard(out_dir: Path, name: str, digest: str) -> dict | None:
    """The `.done` record of a shard written by this plan whose tar is there, else None."""
    done, tar = out_dir / (name + DONE_SUFFIX), out_dir / name
    if not (done.is_file() and tar.is_file()):
        return None
    try:
        result = json.loads(done.read_text())
    except ValueError:
        return None
    if result.get("plan_hash") != digest or result["entry"]["bytes"] != tar.stat().st_size:
        return None
    return result


def claim_folder(out_dir: Path, digest: str, overwrite: bool) -> None:
    """Record the plan in out_dir; a folder holding another plan's shards is an error unless overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_file = out_dir / PLAN_NAME
    if plan_file.is_file():
        previous = json.loads(plan_file.read_text()).get("plan_hash")
        if previous != digest:
            if not overwrite:
                raise ShardError(f"{out_dir} holds shards of other inputs or options (plan {str(previous)[:12]}, "
                                 f"now {digest[:12]}): choose another --out folder, or --overwrite to replace them")
            for stale in [*out_dir.glob("shard-*.tar*"), out_dir / MANIFEST_NAME]:
                stale.unlink(missing_ok=True)
    plan_file.write_text(json.dumps({"plan_hash": digest}))


def write_shards(clips: Sequence[PlannedClip], out_dir: str | Path, *, clips_per_shard: int = 1000,
                 shard_minutes: float | None = None, workers: int = 1, bits: int = 24,
                 max_seconds: float = 300.0, overwrite: bool = False, json_files: Sequence[str] = (),
                 blacklist: Sequence[str] = (), unresolved: Sequence[dict[str, str]] = (),
                 on_shard: Callable[[int], None] | None = None, resampler: str = "kaiser_best") -> ShardManifest:
    """Write the clips' shards and manifest.json into out_dir; returns the manifest.

    Args:
        clips: group_clips of the training rows.
        workers: processes decoding in parallel (1: in this process).
        bits: FLAC sample width, 24 (default: equal to the decoded float32 to 2^-24) or 16.
        max_seconds: the first seconds of each file kept (the reference's 300; 0: all).
        unresolved: clips whose audio file was not found before writing (listed as unreadable).
        on_shard: called with the clip count of each shard as it is done (a progress bar).
        resampler: how audio not at SAMPLE_RATE is resampled (data_handling.audio_io.RESAMPLERS; training's
            `data_args.resampler`), recorded in the manifest.
    """
    if bits not in FLAC_SUBTYPES:
        raise ValueError(f"bits must be one of {sorted(FLAC_SUBTYPES)}, got {bits}")
    if not clips:
        raise ShardError("no clips to write: check the json files, the blacklist and the audio root")
    out_dir = Path(out_dir)
    shards = cut_into_shards(clips, clips_per_shard, shard_minutes)
    digest = plan_hash(shards, max_seconds, bits, resampler)
    claim_folder(out_dir, digest, overwrite)
    tasks = [ShardTask(shard_file_name(k), tuple(shard), str(out_dir), max_seconds, bits, digest, resampler)
             for k, shard in enumerate(shards)]
    results: dict[str, dict] = {}
    for task in tasks:
        kept = finished_shard(out_dir, task.name, digest)
        if kept is not None:
            results[task.name] = kept
            if on_shard:
                on_shard(len(task.clips))
    todo = [task for task in tasks if task.name not in results]
    if results:
        logger.info("%d of %d shards already written in %s: kept", len(results), len(tasks), out_dir)
    if workers <= 1:
        done_results = map(write_shard, todo)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        done_results = pool.map(write_shard, todo)
    try:
        for task, result in zip(todo, done_results, strict=True):
            results[task.name] = result
            if on_shard:
                on_shard(len(task.clips))
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    ordered = [results[task.name] for task in tasks]
    manifest = ShardManifest(sample_rate=SAMPLE_RATE, max_seconds=max_seconds, bits=bits, resampler=resampler,
                             shards=[ShardEntry(**result["entry"]) for result in ordered],
                             json_files=list(json_files), blacklist=list(blacklist),
                             unreadable=list(unresolved) + [row for result in ordered for row in result["unreadable"]])
    manifest.write(out_dir / MANIFEST_NAME)
    return manifest


def verify_shards(out_dir: str | Path) -> list[str]:
    """Names of the shards in out_dir whose size or sha256 differs from the manifest (or that are missing)."""
    from data_handling.shards.manifest import read_manifest

    out_dir = Path(out_dir)
    manifest = read_manifest(str(out_dir / MANIFEST_NAME))
    bad = []
    for entry in manifest.shards:
        path = out_dir / entry.name
        if not path.is_file() or path.stat().st_size != entry.bytes or file_sha256(path) != entry.sha256:
            bad.append(entry.name)
    return bad
