"""The training data of one process: captions from the json files or the shards, duration buckets, the DataLoader."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from data_handling.caption_dataset import CaptionAudioDataset, collate_captions
from data_handling.samplers import DurationBucketBatchSampler
from data_handling.shards.reader import ShardCaptionDataset, open_shard_dataset
from data_handling.source_records import SourceOptions
from data_handling.training_items import prepare_training_items
from tools.config import Config
from tools.train.distributed import DistributedInfo


def build_training_dataset(config: Config) -> CaptionAudioDataset | ShardCaptionDataset:
    """The caption rows: from `data_args.shards` when set, else from `json_files`, `blacklist` and the audio
    files (data_handling.training_items.prepare_training_items). Raises before any training when they are
    missing or empty."""
    data_args = config.data_args
    if data_args.shards:
        return open_shard_dataset(data_args.shards, data_args.shards_manifest, sample_rate=config.audio_args.sr,
                                  max_length=config.audio_args.max_length, train=True, strict=data_args.strict,
                                  max_decode_seconds=data_args.max_decode_seconds, cache_dir=data_args.shard_cache)
    items = prepare_training_items(config.json_files, blacklist=config.blacklist, audio_root=data_args.audio_root,
                                   check_files=data_args.check_files, skip_missing=data_args.skip_missing,
                                   options=source_options(config))
    if not items:
        raise ValueError(f"no training captions left in {config.json_files} (after the blacklist and the audio "
                         f"file check): check json_files, blacklist and data_args.audio_root")
    return CaptionAudioDataset(items, sample_rate=config.audio_args.sr, max_length=config.audio_args.max_length,
                               train=True, strict=data_args.strict, max_decode_seconds=data_args.max_decode_seconds,
                               partial_decoding=data_args.partial_decoding,
                               caption_templates=data_args.caption_templates, seed=config.seed)


def source_options(config: Config) -> SourceOptions:
    """How tables, labelled folders and Hugging Face datasets become caption rows (data_args)."""
    data_args = config.data_args
    return SourceOptions(tuple(data_args.caption_templates), data_args.strict, data_args.audio_cache)


def build_training_loader(config: Config, dist: DistributedInfo, device: torch.device
                          ) -> tuple[CaptionAudioDataset | ShardCaptionDataset, DurationBucketBatchSampler,
                                     DataLoader]:
    """(dataset, batch sampler, loader) of this process (build_training_dataset, duration buckets split
    between the ranks). Raises before any training when the data cannot give a batch."""
    data_args = config.data_args
    dataset = build_training_dataset(config)
    sampler = DurationBucketBatchSampler(
        dataset.durations, batch_size=data_args.batch_size, bucket_edges=data_args.duration_bucket_edges,
        shuffle=True, seed=config.seed, drop_last=data_args.drop_last, num_replicas=dist.world_size,
        rank=dist.rank)
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

