"""Training from shards: a clip whose FLAC cannot be decoded is skipped and counted, training goes on."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_handling.audio_io import AudioReadError
from data_handling.shards.format import clip_key
from tools.config import parse_config
from tools.make_shards import main as shards_main
from tools.train.data import build_training_loader
from tools.train.distributed import DistributedInfo

NUM_CLIPS = 6
CORRUPT_CLIP = 3


@pytest.fixture(scope="module")
def corrupt_shards(tmp_path_factory) -> Path:
    """6 one-caption clips (2 to 4.5 s, 32 kHz) in shards of 4 clips; the FLAC of clip 3 is then overwritten
    in place (its 'fLaC' magic kept, every other byte zero), so the tar, its member table and the manifest
    stay valid and only that clip's audio cannot be decoded."""
    root = tmp_path_factory.mktemp("shard_faults")
    rng = np.random.default_rng(0)
    data = []
    for index in range(NUM_CLIPS):
        seconds = 2.0 + 0.5 * index
        sf.write(root / f"c{index}.wav", (0.2 * rng.standard_normal(round(seconds * 32000))).astype(np.float32), 32000)
        data.append({"id": f"c{index}", "audio": f"c{index}.wav", "caption": f"clip number {index}",
                     "duration": seconds})
    (root / "train.json").write_text(json.dumps({"num_captions_per_audio": 1, "data": data}))
    out = root / "shards"
    assert shards_main(["--json-files", str(root / "train.json"), "--audio-root", str(root), "--out", str(out),
                        "--clips-per-shard", "4"]) == 0
    shard = out / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        member = tar.getmember(f"{clip_key(CORRUPT_CLIP)}.flac")
    with open(shard, "r+b") as stream:
        stream.seek(member.offset_data)
        assert stream.read(4) == b"fLaC"
        stream.write(bytes(member.size - 4))
    return out


def config_for(shards: Path, tiny_config: dict | None = None, **data_args):
    return parse_config({**(tiny_config or {}), "seed": 0, "training": {"epochs": 1, "amp": "off"},
                         "optim_args": {"lr": 1e-3, "warmup_steps": 0},
                         "data_args": {"shards": str(shards), "batch_size": 2, "num_workers": 0,
                                       "pin_memory": False, "drop_last": False, **data_args}})


def test_the_training_loader_skips_and_counts_the_corrupt_clip(corrupt_shards, caplog):
    dataset, _, loader = build_training_loader(config_for(corrupt_shards), DistributedInfo(), torch.device("cpu"))
    assert len(dataset) == NUM_CLIPS
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
    seen = sorted(index for batch in batches for index in batch["idx"].tolist())
    assert seen == [index for index in range(NUM_CLIPS) if index != CORRUPT_CLIP]
    assert sum(batch["num_skipped"] for batch in batches) == 1
    assert dataset.num_failures == 1
    assert f"{clip_key(CORRUPT_CLIP)}" in caplog.text and "skipping a training clip" in caplog.text


def test_strict_makes_the_corrupt_clip_fatal(corrupt_shards):
    _, _, loader = build_training_loader(config_for(corrupt_shards, strict=True), DistributedInfo(),
                                         torch.device("cpu"))
    with pytest.raises(AudioReadError, match=clip_key(CORRUPT_CLIP)):
        list(loader)


def test_training_runs_its_epoch_over_the_corrupt_clip(corrupt_shards, tiny_config, tmp_path):
    from tools.train.trainer import Trainer

    trainer = Trainer(config_for(corrupt_shards, tiny_config), tmp_path / "run")
    record = trainer.train_epoch()
    assert record["skipped_files"] == trainer.skipped_files == 1
    assert trainer.batch_in_epoch == trainer.batches_per_epoch == 3      # every batch of the epoch was read
    assert trainer.global_step >= 2   # the corrupt clip's batch steps too unless it is left with one clip
