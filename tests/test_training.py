"""Training loop: exact resume, faults (corrupt audio, signals, interrupted saves), schedule."""

from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch

from data_handling.audio_io import AudioReadError
from models.checkpoint import load_checkpoint, read_checkpoint
from tools.config import parse_config
from tools.train.checkpointing import atomic_save
from tools.train.optim import CosineWithWarmup
from tools.train.trainer import TooManyBadSteps, Trainer, TrainingInterrupted


def training_config(tiny_config: dict, corpus, **overrides) -> dict:
    config = {
        **tiny_config, "seed": 3,
        "json_files": [str(corpus / "train" / "train.json")],
        "training": {"epochs": 2, "amp": "off", "clip_grad": 1.0},
        "optim_args": {"lr": 1e-3, "optimizer_name": "adamw", "warmup_steps": 2},
        "data_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False},
    }
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    return config


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in trainer.model.state_dict().items()}


@pytest.mark.slow
def test_resume_is_exact(tiny_config, synthetic_corpus, tmp_path):
    config = parse_config(training_config(tiny_config, synthetic_corpus))
    straight = Trainer(config, tmp_path / "straight")
    straight.fit()

    first = Trainer(config, tmp_path / "resumed")
    first.fit(until_epoch=1)
    assert (tmp_path / "resumed" / "last.pt").is_file()
    second = Trainer(config, tmp_path / "resumed")
    second.fit(resume="auto")

    assert second.global_step == straight.global_step > 0
    expected, actual = weights(straight), weights(second)
    worst = max((expected[key].float() - actual[key].float()).abs().max().item() for key in expected)
    assert worst <= 1e-6


@pytest.mark.slow
def test_sigterm_mid_epoch_leaves_a_resumable_checkpoint(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    config = parse_config(training_config(tiny_config, synthetic_corpus))
    trainer = Trainer(config, tmp_path / "exp")
    original_step = trainer._optimizer_step

    def step_then_signal():
        original_step()
        if trainer.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer, "_optimizer_step", step_then_signal)
    with pytest.raises(TrainingInterrupted, match="resume with --resume auto"):
        trainer.fit()
    saved = read_checkpoint(tmp_path / "exp" / "last.pt")
    assert saved["global_step"] == 2 and saved["batch_in_epoch"] == 2 and saved["epoch"] == 0
    assert signal.getsignal(signal.SIGTERM) is not trainer._request_stop  # handlers restored

    resumed = Trainer(config, tmp_path / "exp")
    resumed.fit(resume="auto")
    assert resumed.epoch == 2
    assert resumed.global_step == 2 * resumed.optimizer_steps_per_epoch


def test_interrupted_save_keeps_the_previous_checkpoint(tiny_config, tmp_path, monkeypatch):
    from models.ase_model import ASE

    model = ASE(tiny_config)
    path = tmp_path / "last.pt"
    atomic_save({"model": model.state_dict(), "epoch": 1}, path)

    def crash_before_rename(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "replace", crash_before_rename)
    with pytest.raises(OSError, match="No space left"):
        atomic_save({"model": {}, "epoch": 2}, path)
    monkeypatch.undo()
    assert read_checkpoint(path)["epoch"] == 1
    load_checkpoint(ASE(tiny_config), path)
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


@pytest.fixture
def corpus_with_corrupt_file(synthetic_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus / "train", corpus / "train")
    victim = sorted((corpus / "train" / "audio").iterdir())[0]
    victim.write_bytes(b"this is not audio")
    return corpus


@pytest.mark.slow
def test_corrupt_file_is_skipped_and_counted(tiny_config, corpus_with_corrupt_file, tmp_path):
    config = parse_config(training_config(tiny_config, corpus_with_corrupt_file, training={"epochs": 1}))
    trainer = Trainer(config, tmp_path / "exp")
    history = trainer.fit()
    assert history[-1]["skipped_files"] == 1
    assert trainer.global_step > 0


def test_corrupt_file_is_fatal_when_strict(tiny_config, corpus_with_corrupt_file, tmp_path):
    config = parse_config(training_config(tiny_config, corpus_with_corrupt_file, training={"epochs": 1},
                                          data_args={"strict": True}))
    with pytest.raises(AudioReadError, match="cannot read audio file"):
        Trainer(config, tmp_path / "exp").fit()


def test_non_finite_losses_skip_steps_then_stop(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    config = parse_config(training_config(tiny_config, synthetic_corpus, training={"max_bad_steps": 2}))
    trainer = Trainer(config, tmp_path / "exp")
    before = {name: value.detach().clone() for name, value in trainer.model.named_parameters()}
    monkeypatch.setattr(type(trainer.model.criterion), "forward", lambda *args: torch.tensor(float("nan")))
    with pytest.raises(TooManyBadSteps, match="consecutive non-finite losses"):
        trainer.fit()
    assert trainer.global_step == 0
    assert all(torch.equal(before[name], value) for name, value in trainer.model.named_parameters())


def test_cosine_schedule_with_warmup():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1.0)
    schedule = CosineWithWarmup(optimizer, base_lr=1.0, total_steps=10, warmup_steps=4)
    lrs = [schedule.lr]
    for _ in range(10):
        schedule.step()
        lrs.append(schedule.lr)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[7] == pytest.approx(0.5) and lrs[10] == pytest.approx(0.0)
    restored = CosineWithWarmup(optimizer, base_lr=1.0, total_steps=10, warmup_steps=4)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr == schedule.lr


def test_pretrain_without_data_points_to_the_quickstart(tmp_path):
    import pretrain

    with pytest.raises(SystemExit, match=r"(?s)training data missing.*settings/quickstart.yaml"):
        pretrain.main(["--set", f"output_dir={tmp_path}"])
    assert list(tmp_path.iterdir()) == []  # nothing written before the check


def test_command_line_overrides_reach_the_config(tmp_path):
    from tools.config import ConfigError, load_config

    config = load_config("settings/quickstart.yaml", ["optim_args.lr=1e-4", "model_args.loss=infonce",
                                                      "eval.retrieval_jsons=[a.json, b.json]"])
    assert config.optim_args.lr == 1e-4 and config.model_args.loss == "infonce"
    assert config.eval.retrieval_jsons == ["a.json", "b.json"]
    with pytest.raises(ConfigError, match=r"model_args\.loss.*hard_negative"):
        load_config("settings/quickstart.yaml", ["model_args.loss=triplet"])
    with pytest.raises(ConfigError, match=r"unknown key 'training\.epoch'"):
        load_config("settings/quickstart.yaml", ["training.epoch=3"])


@pytest.mark.slow
def test_wandb_logs_each_epoch_when_enabled(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    """wandb is optional (not in requirements): a stand-in module records what pretrain.py sends it."""
    import sys
    import types

    import yaml

    import pretrain

    calls: dict[str, list] = {"init": [], "log": [], "finish": []}
    run = types.SimpleNamespace(log=lambda record: calls["log"].append(record),
                                finish=lambda: calls["finish"].append(True))
    fake_wandb = types.ModuleType("wandb")
    fake_wandb.init = lambda **kwargs: calls["init"].append(kwargs) or run
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb)
    config = training_config(tiny_config, synthetic_corpus, training={"epochs": 2, "max_steps_per_epoch": 1})
    config.update(output_dir=str(tmp_path), exp_name="wandb_run", wandb={"enabled": True, "mode": "offline"})
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    assert pretrain.main(["-c", str(config_path)]) == 0
    assert calls["init"][0]["mode"] == "offline" and calls["init"][0]["name"] == "wandb_run"
    assert [record["epoch"] for record in calls["log"]] == [1, 2]
    assert calls["finish"] == [True]


def test_compile_option_compiles_the_towers(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    import tools.train.trainer

    compiled = []
    monkeypatch.setattr(tools.train.trainer, "compile_model", lambda model: compiled.append(model) or model)
    config = parse_config(training_config(tiny_config, synthetic_corpus, training={"compile": True}))
    trainer = Trainer(config, tmp_path / "exp")
    assert compiled == [trainer.model]
    Trainer(parse_config(training_config(tiny_config, synthetic_corpus)), tmp_path / "plain")
    assert len(compiled) == 1, "compile is off by default"
