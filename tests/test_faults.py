"""Faults of a long run: a checkpoint that cannot be written, uncaught exceptions, unreadable checkpoints
with --resume auto, an interruption within a gradient accumulation; keyed random draws."""

from __future__ import annotations

import errno
import os
import signal

import numpy as np
import pytest
import torch
import yaml

import pretrain
import tools.train.checkpointing as checkpointing
from data_handling.keyed_random import DrawKey, SampleDraw, crop_offset, step_seed
from data_handling.samplers import DurationBucketBatchSampler
from models.checkpoint import read_checkpoint
from tools.config import parse_config
from tools.tiny_model import tiny_config_dict
from tools.train.trainer import Trainer, TrainingInterrupted


def run_config(tiny_config: dict, corpus, tmp_path, **training) -> dict:
    """Two epochs of two steps of the tiny model (batches of 4 of the 16 synthetic clips, 2 s crops)."""
    return {
        **tiny_config, "seed": 3, "output_dir": str(tmp_path / "outputs"), "exp_name": "run",
        "json_files": [str(corpus / "train" / "train.json")],
        "audio_args": {"max_length": 2.0},
        "training": {"epochs": 2, "amp": "off", "max_steps_per_epoch": 2, **training},
        "optim_args": {"lr": 1e-3, "optimizer_name": "adamw", "warmup_steps": 1},
        "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False},
    }


def write_yaml(config: dict, tmp_path) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def final_weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def assert_same_weights(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ----------------------------------------------------------------------------------------------------
# A checkpoint that cannot be written
# ----------------------------------------------------------------------------------------------------
class FullDisk:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, _data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.stream.close()


def fill_disk_at_save(monkeypatch, failing_save: int) -> list[int]:
    """Make the failing_save-th checkpoint write (1-based) and every later one fail with ENOSPC."""
    real_fdopen, saves = os.fdopen, []

    def fdopen(handle, mode="r", *args, **kwargs):
        stream = real_fdopen(handle, mode, *args, **kwargs)
        if mode != "wb":
            return stream
        saves.append(handle)
        return FullDisk(stream) if len(saves) >= failing_save else stream

    monkeypatch.setattr(checkpointing.os, "fdopen", fdopen)
    return saves


@pytest.mark.slow
def test_a_full_disk_ends_the_run_with_one_line(tiny_config, synthetic_corpus, tmp_path, monkeypatch, capsys):
    config_path = write_yaml(run_config(tiny_config, synthetic_corpus, tmp_path, save_every_steps=1), tmp_path)
    fill_disk_at_save(monkeypatch, failing_save=4)  # step 1, end of epoch 1 (twice), then step 3
    assert pretrain.main(["-c", config_path]) == 3
    monkeypatch.undo()
    experiment = tmp_path / "outputs" / "run"
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err, err
    line = errors[0]
    assert line.startswith(f"error: cannot write checkpoint {experiment / 'last.pt'}: [Errno 28] No space left")
    assert f"the last intact checkpoint is {experiment / 'last.pt'} (epoch 1 done, step 2)" in line
    assert line.endswith(f"go on with: python pretrain.py -c {config_path} --exp-name run --resume auto")
    assert line[len("error: "):] in (experiment / "train.log").read_text()
    # the previous files are intact, no temporary file is left
    assert read_checkpoint(experiment / "last.pt")["global_step"] == 2
    assert read_checkpoint(experiment / "last.prev.pt")["global_step"] == 2
    assert sorted(path.name for path in experiment.iterdir() if path.name.startswith(".")) == []
    # the command goes on
    assert pretrain.main(["-c", config_path, "--exp-name", "run", "--resume", "auto"]) == 0
    assert read_checkpoint(experiment / "last.pt")["global_step"] == 4


def test_a_folder_without_write_permission_is_one_error(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    checkpointing.atomic_save({"epoch": 1}, target)

    def refused(*_args, **_kwargs):  # as a folder without write permission does (root may write anywhere)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))

    monkeypatch.setattr(checkpointing.tempfile, "mkstemp", refused)
    with pytest.raises(checkpointing.CheckpointWriteError,
                       match=r"cannot write checkpoint .*last.pt: \[Errno 13\] Permission denied"):
        checkpointing.atomic_save({"epoch": 2}, target, keep_previous=tmp_path / "last.prev.pt")
    monkeypatch.undo()
    assert read_checkpoint(target)["epoch"] == 1


def test_last_keeps_its_previous_content(tmp_path):
    last, previous = tmp_path / "last.pt", tmp_path / "last.prev.pt"
    for epoch in (1, 2, 3):
        checkpointing.atomic_save({"epoch": epoch}, last, keep_previous=previous)
    assert read_checkpoint(last)["epoch"] == 3 and read_checkpoint(previous)["epoch"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.prev.pt", "last.pt"]


def test_an_uncaught_exception_is_written_to_train_log(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    def broken_step(_trainer):
        raise RuntimeError("a defect in the middle of a step")

    monkeypatch.setattr(Trainer, "_optimizer_step", broken_step)
    config_path = write_yaml(run_config(tiny_config, synthetic_corpus, tmp_path), tmp_path)
    with pytest.raises(RuntimeError, match="a defect"):
        pretrain.main(["-c", config_path])
    log = (tmp_path / "outputs" / "run" / "train.log").read_text()
    assert "uncaught exception on rank 0, the run stops:\nTraceback (most recent call last):" in log
    assert "in broken_step" in log and log.rstrip().endswith("RuntimeError: a defect in the middle of a step")


# ----------------------------------------------------------------------------------------------------
# --resume auto with an unreadable last.pt
# ----------------------------------------------------------------------------------------------------
def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.fixture(scope="module")
def straight_run(tiny_text_dir, synthetic_corpus, tmp_path_factory):
    """The final weights of an uninterrupted two-epoch run (model_1.pt kept)."""
    folder = tmp_path_factory.mktemp("straight")
    config = parse_config(run_config(tiny_config_dict(tiny_text_dir), synthetic_corpus, folder, snapshot_epochs=[1]))
    Trainer(config, folder / "straight").fit()
    return config, final_weights(folder / "straight" / "last.pt")


@pytest.mark.slow
def test_resume_auto_falls_back_to_the_previous_last(straight_run, tmp_path, caplog):
    config, expected = straight_run
    experiment = tmp_path / "interrupted"
    Trainer(config, experiment).fit(until_epoch=1)
    truncate(experiment / "last.pt")
    resumed = Trainer(config, experiment)
    resumed.fit(resume="auto")
    assert "resuming from " + str(experiment / "last.prev.pt") in caplog.text
    assert (experiment / "last.pt.unreadable").is_file()
    assert_same_weights(expected, final_weights(experiment / "last.pt"))


@pytest.mark.slow
def test_resume_auto_falls_back_to_a_snapshot(straight_run, tmp_path, caplog):
    config, expected = straight_run
    experiment = tmp_path / "interrupted"
    Trainer(config, experiment).fit(until_epoch=1)
    truncate(experiment / "last.pt")
    (experiment / "last.prev.pt").write_bytes(b"")
    resumed = Trainer(config, experiment)
    resumed.fit(resume="auto")
    assert "resuming from " + str(experiment / "model_1.pt") in caplog.text
    assert resumed.global_step == 4
    assert_same_weights(expected, final_weights(experiment / "last.pt"))


def test_resume_auto_without_a_readable_checkpoint_is_one_line(tiny_config, synthetic_corpus, tmp_path, capsys):
    config_path = write_yaml(run_config(tiny_config, synthetic_corpus, tmp_path), tmp_path)
    experiment = tmp_path / "outputs" / "run"
    experiment.mkdir(parents=True)
    (experiment / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    assert pretrain.main(["-c", config_path, "--resume", "auto"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error" in line.lower()] == [
        f"error: --resume auto: no readable checkpoint in {experiment} (truncated or corrupt: last.pt); give one "
        f"with --resume PATH, or start over in another folder (--exp-name)"]
    assert (experiment / "last.pt").is_file()  # nothing renamed: a second try says the same
    assert pretrain.main(["-c", config_path, "--resume", str(experiment / "last.pt")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {experiment / 'last.pt'} is not a readable torch")


# ----------------------------------------------------------------------------------------------------
# An interruption within a gradient accumulation
# ----------------------------------------------------------------------------------------------------
def test_a_signal_within_an_accumulation_stops_at_the_optimiser_step(tiny_config, synthetic_corpus, tmp_path,
                                                                      monkeypatch):
    config = parse_config(run_config(tiny_config, synthetic_corpus, tmp_path, grad_accum_steps=2))
    trainer = Trainer(config, tmp_path / "exp")
    forward_backward = trainer._forward_backward

    def signal_at_first_batch(batch, sync):
        loss = forward_backward(batch, sync=sync)
        if trainer.batch_in_epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(trainer, "_forward_backward", signal_at_first_batch)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    saved = read_checkpoint(tmp_path / "exp" / "last.pt")
    assert saved["batch_in_epoch"] == 2 and saved["global_step"] == 1  # not batch 1, whose gradients are lost


# ----------------------------------------------------------------------------------------------------
# Keyed draws
# ----------------------------------------------------------------------------------------------------
def test_crop_offsets_depend_only_on_their_key():
    key = DrawKey(seed=3, epoch=1, batch_position=5, slot=2)
    assert crop_offset(key, 1000) == crop_offset(DrawKey(3, 1, 5, 2), 1000)
    offsets = [crop_offset(DrawKey(3, 1, position, slot), 1000) for position in range(50) for slot in range(4)]
    assert all(0 <= offset <= 1000 for offset in offsets) and len(set(offsets)) > 150
    assert np.mean(offsets) == pytest.approx(500, abs=60)  # uniform over 0..1000
    assert crop_offset(key, 0) == 0
    assert len({step_seed(3, rank, 1, 5) for rank in range(4)}) == 4


def test_sampler_keys_are_the_same_for_any_split_and_start():
    durations = [10.0] * 24
    keyed = {}
    for replicas in (1, 2, 3):
        for rank in range(replicas):
            sampler = DurationBucketBatchSampler(durations, batch_size=2, seed=7, num_replicas=replicas, rank=rank,
                                                 draw_keys=True)
            sampler.set_epoch(4)
            whole = list(sampler)
            for draw in (draw for batch in whole for draw in batch):
                assert isinstance(draw, SampleDraw) and draw.key.seed == 7 and draw.key.epoch == 4
                keyed.setdefault(draw.row, set()).add(draw.key)
            sampler.set_start_batch(2)
            assert list(sampler) == whole[2:]  # a resumed epoch: the same draws
    assert len(keyed) == 24 and all(len(keys) == 1 for keys in keyed.values())  # one key per row, any split
