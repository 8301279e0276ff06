"""wandb for real: pretrain.main logs each epoch to an offline run (no network, no login), and the run's
transaction log holds the numbers the trainer recorded; the run is closed however training ends."""

from __future__ import annotations

import json
import os
import struct
import sys
import types
import zlib
from pathlib import Path

import pytest
import yaml

import pretrain
from models.checkpoint import read_checkpoint
from tests.warm_python import run_python
from tools.train.trainer import TrainingInterrupted

REPO = Path(__file__).resolve().parents[1]
TRAINING_TIMEOUT_S = 300

# The .wandb transaction log (what `wandb sync` uploads): a 7-byte header (":W&B", magic 0xBEE1, version 0)
# then LevelDB log records in 32 KiB blocks, each `crc32 (type byte + data), length, type` before its data;
# a record that crosses a block is split into FIRST / MIDDLE / LAST parts. Each record is a wandb.proto Record.
LOG_HEADER = struct.Struct("<4sHB")
RECORD_HEADER = struct.Struct("<IHB")
BLOCK_BYTES = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_transaction_log(path: Path) -> list:
    """Every wandb.proto Record of a run's .wandb file, in order (checksums verified)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert LOG_HEADER.unpack_from(data) == (b":W&B", 0xBEE1, 0), f"{path}: not a version-0 wandb transaction log"
    records, pending, position = [], b"", LOG_HEADER.size
    while position + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK_BYTES - position % BLOCK_BYTES
        checksum, length, kind = RECORD_HEADER.unpack_from(data, position)
        if left_in_block < RECORD_HEADER.size or kind == 0:  # the block's zero padding
            position += left_in_block
            continue
        chunk = data[position + RECORD_HEADER.size:position + RECORD_HEADER.size + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, f"{path}: bad checksum at {position}"
        position += RECORD_HEADER.size + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def records_of(records: list, kind: str) -> list:
    return [getattr(record, kind) for record in records if record.WhichOneof("record_type") == kind]


def history_rows(records: list) -> list[dict]:
    """The logged rows: {key: value} per wandb.log call (a key is `key`, or `nested_key` in newer versions)."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in history.item}
            for history in records_of(records, "history")]


def offline_env(tmp_path: Path) -> dict[str, str]:
    """wandb offline and silent, every folder it may write in tmp_path, no API key: no network, no login."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    folders = {name: tmp_path / "wandb_home" / name.lower() for name in
               ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    env.update({name: str(folder) for name, folder in folders.items()})
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_INIT_TIMEOUT="120")
    return env


def wandb_config(tiny_config: dict, corpus: Path, output_dir: Path) -> dict:
    return {**tiny_config, "seed": 3, "output_dir": str(output_dir), "exp_name": "wandb_offline",
            "json_files": [str(corpus / "train" / "train.json")],
            "training": {"epochs": 1, "amp": "off", "max_steps_per_epoch": 2},
            "optim_args": {"lr": 1e-3, "warmup_steps": 1, "min_lr": 2e-4},  # the 2-step schedule ends at 2e-4
            "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False},
            "eval": {"retrieval_jsons": [str(corpus / "retrieval" / "test.json")]},
            "wandb": {"enabled": True, "project": "mga-clap-test", "mode": "offline"}}


@pytest.mark.slow
def test_offline_run_holds_the_epoch_record(tiny_config, synthetic_corpus, tmp_path):
    pytest.importorskip("wandb", reason="wandb is in requirements.txt: pip install -r requirements.txt")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(wandb_config(tiny_config, synthetic_corpus, tmp_path / "outputs")))
    result = run_python(["pretrain.py", "-c", str(config_path)], timeout=TRAINING_TIMEOUT_S, env=offline_env(tmp_path))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    experiment = tmp_path / "outputs" / "wandb_offline"
    run_dirs = sorted((experiment / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1, f"expected one offline run under {experiment / 'wandb'}: {run_dirs}"
    (log_file,) = run_dirs[0].glob("run-*.wandb")
    records = read_transaction_log(log_file)

    (run,) = records_of(records, "run")
    assert run.display_name == "wandb_offline" and run.project == "mga-clap-test"
    (exit_record,) = records_of(records, "exit")
    assert exit_record.exit_code == 0

    (recorded,) = read_checkpoint(experiment / "last.pt")["history"]
    assert recorded["epoch"] == 1 and recorded["score"] > 0 and recorded["lr"] > 0
    (logged,) = history_rows(records)
    for key in ("epoch", "loss", "lr", "score", "skipped_files"):
        assert logged[key] == recorded[key], key  # floats travel as JSON: exact


class StandInWandb:
    """Records what pretrain.py sends to wandb."""

    def __init__(self):
        self.finished: list[dict] = []
        self.logged: list[dict] = []

    def module(self) -> types.ModuleType:
        module = types.ModuleType("wandb")
        module.init = lambda **_kwargs: types.SimpleNamespace(log=self.logged.append,
                                                               finish=lambda **kwargs: self.finished.append(kwargs))
        return module


@pytest.mark.parametrize(("failure", "expected"), [(TrainingInterrupted("stopped"), {"exit_code": 130}),
                                                   (RuntimeError("disk full"), {"exit_code": 1})])
def test_run_is_closed_however_training_ends(failure, expected, tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    stand_in = StandInWandb()
    monkeypatch.setitem(sys.modules, "wandb", stand_in.module())

    class FailingTrainer:
        dataset, batches_per_epoch, epoch_callback = [], 0, None

        def __init__(self, *_args):
            pass

        def fit(self, _resume):
            raise failure

    monkeypatch.setattr(pretrain, "Trainer", FailingTrainer)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(wandb_config(tiny_config, synthetic_corpus, tmp_path / "outputs")))
    if isinstance(failure, TrainingInterrupted):
        assert pretrain.main(["-c", str(config_path)]) == 130
    else:
        with pytest.raises(RuntimeError, match="disk full"):
            pretrain.main(["-c", str(config_path)])
    assert stand_in.finished == [expected]
