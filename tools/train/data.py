"""The training data of one process: captions from the json files or the shards, duration buckets, the DataLoader."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data_handling.caption_dataset import CaptionAudioDataset, collate_captions
from data_handling.caption_rows import CaptionItem
from data_handling.samplers import DurationBucketBatchSampler
from data_handling.shards.reader import ShardCaptionDataset, open_shard_dataset
from data_handling.source_records import SourceOptions
from data_handling.training_items import hold_out_clips, prepare_training_items
from tools.config import Config
from tools.train.distributed import DistributedInfo

log = logging.getLogger(__name__)
HELD_OUT_FOLDER = "held_out"
"""The experiment's sub-folder for the held-out sets of data_args.val_fraction (its best files: held_out_...)."""


def build_training_dataset(config: Config, experiment_dir: Path | None = None
                           ) -> CaptionAudioDataset | ShardCaptionDataset:
    """The caption rows: from `data_args.shards` when set, else from `json_files`, `blacklist` and the audio
    files (data_handling.training_items.prepare_training_items). Raises before any training when they are
    missing or empty. With data_args.val_fraction, no evaluation set and an experiment_dir, the held-out clips
    are left out and written there as evaluation sets (hold_out_validation)."""
    data_args = config.data_args
    if data_args.shards:
        dataset = open_shard_dataset(data_args.shards, data_args.shards_manifest, sample_rate=config.audio_args.sr,
                                     max_length=config.audio_args.max_length, train=True, strict=data_args.strict,
                                     max_decode_seconds=data_args.max_decode_seconds, cache_dir=data_args.shard_cache)
        if dataset.resampler != data_args.resampler:
            log.warning("the shards were resampled with %s, data_args.resampler is %s: the shards' audio is used "
                           "as written (rewrite them with `python -m tools.make_shards --resampler %s` to match)",
                           dataset.resampler, data_args.resampler, data_args.resampler)
        return dataset
    items = prepare_training_items(config.json_files, blacklist=config.blacklist, audio_root=data_args.audio_root,
                                   check_files=data_args.check_files, skip_missing=data_args.skip_missing,
                                   options=source_options(config))
    if experiment_dir is not None:
        items = hold_out_validation(config, items, experiment_dir)
    if not items:
        raise ValueError(f"no training captions left in {config.json_files} (after the blacklist and the audio "
                         f"file check): check json_files, blacklist and data_args.audio_root")
    return CaptionAudioDataset(items, sample_rate=config.audio_args.sr, max_length=config.audio_args.max_length,
                               train=True, strict=data_args.strict, max_decode_seconds=data_args.max_decode_seconds,
                               partial_decoding=data_args.partial_decoding, resampler=data_args.resampler,
                               caption_templates=data_args.caption_templates, seed=config.seed)


def source_options(config: Config) -> SourceOptions:
    """How tables, labelled folders and Hugging Face datasets become caption rows (data_args)."""
    data_args = config.data_args
    return SourceOptions(tuple(data_args.caption_templates), data_args.strict, data_args.audio_cache)


def build_training_loader(config: Config, dist: DistributedInfo, device: torch.device,
                          experiment_dir: Path | None = None
                          ) -> tuple[CaptionAudioDataset | ShardCaptionDataset, DurationBucketBatchSampler,
                                     DataLoader]:
    """(dataset, batch sampler, loader) of this process (build_training_dataset, duration buckets split
    between the ranks, each sample's random draws keyed by its place in the epoch). Raises before any training when the data cannot give a batch."""
    data_args = config.data_args
    dataset = build_training_dataset(config, experiment_dir)
    sampler = DurationBucketBatchSampler(
        dataset.durations, batch_size=data_args.batch_size, bucket_edges=data_args.duration_bucket_edges,
        shuffle=True, seed=config.seed, drop_last=data_args.drop_last, num_replicas=dist.world_size,
        rank=dist.rank, draw_keys=True)
    if len(sampler) == 0:
        raise ValueError(
            f"no batch to train on: {len(dataset)} captions in duration buckets of sizes "
            f"{sampler.bucket_sizes} "
            f"(edges {list(data_args.duration_bucket_edges)} s), batch_size {data_args.batch_size}, "
            f"{dist.world_size} process(es), drop_last {data_args.drop_last}; lower data_args.batch_size "
            f"or set data_args.drop_last: false")
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=data_args.num_workers,
                        collate_fn=collate_captions, persistent_workers=False,
                        pin_memory=data_args.pin_memory and device.type == "cuda")
    return dataset, sampler, loader



def hold_out_validation(config: Config, items: list[CaptionItem], experiment_dir: Path) -> list[CaptionItem]:
    """The training rows without data_args.val_fraction of the clips (data_handling.training_items.hold_out_clips,
    drawn with config.seed), when no evaluation set is given. The held-out clips become evaluation sets in
    <experiment_dir>/held_out/: clips with one label a classification set (classification.csv, when it has two
    classes or more), the others a retrieval set (retrieval.json); config.eval lists them. The log says so."""
    fraction = config.data_args.val_fraction
    if fraction <= 0:
        return items
    if config.eval.retrieval_jsons or config.eval.classification_sets:
        log.warning("data_args.val_fraction %s ignored: evaluation sets are given (eval.retrieval_jsons, "
                    "eval.classification_sets)", fraction)
        return items
    train, held_out = hold_out_clips(items, fraction, config.seed)
    folder = experiment_dir / HELD_OUT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    single_label = [item for item in held_out if len(item.labels) == 1]
    if len({item.labels[0] for item in single_label}) < 2:
        single_label = []
    classified = {id(item) for item in single_label}
    captioned = [item for item in held_out if id(item) not in classified]
    if single_label:
        config.eval.classification_sets = [str(_write_atomically(folder / "classification.csv",
                                                                  _classification_table(single_label)))]
    if captioned:
        config.eval.retrieval_jsons = [str(_write_atomically(folder / "retrieval.json", _retrieval_json(captioned)))]
    num_clips = len({(item.source, item.clip_index) for item in held_out})
    log.info("data_args.val_fraction %s: %d clips (%d captions) held out, never trained on, evaluated after each "
             "epoch: %s", fraction, num_clips, len(held_out),
             ", ".join(config.eval.retrieval_jsons + config.eval.classification_sets))
    return train


def _classification_table(items: Sequence[CaptionItem]) -> str:
    lines = [["audio", "label"]] + [[str(Path(item.audio_path).resolve()), item.labels[0]]
                                    for item in dict((item.clip_index, item) for item in items).values()]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def _retrieval_json(items: Sequence[CaptionItem]) -> str:
    clips: dict[tuple[str, int], dict] = {}
    for item in items:
        clip = clips.setdefault((item.source, item.clip_index), {
            "id": item.clip_id, "audio": str(Path(item.audio_path).resolve()), "caption": [],
            "duration": item.duration})
        clip["caption"].append(item.caption)
    return json.dumps({"data": list(clips.values())}, indent=1) + "\n"


def _write_atomically(path: Path, text: str) -> Path:
    """Every process may write the same file: each writes its own temporary file and renames it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
