"""Fine-tuning: training.init_from from every model file, freezing keys, resume of a fine-tuning run,
models.interpolate (WiSE-FT), settings/finetune.yaml."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from models.ase_model import ASE
from models.checkpoint import is_constant_key, reference_state_dict
from models.config import ConfigError
from models.factory import model_from_checkpoint
from models.interpolate import main as interpolate_main
from models.model_folder import save_model_folder
from tests.test_training import training_config
from tests.warm_python import run_python
from tools.config import load_config, parse_config
from tools.train.init_from import RECORD_NAME, check_init_from
from tools.train.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent


def learnable(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in state.items() if not is_constant_key(key)}


def assert_same_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    actual = learnable(model.state_dict())
    assert set(actual) == set(expected)
    different = [key for key in actual if not torch.equal(actual[key], expected[key])]
    assert different == []


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory, tiny_text_dir, synthetic_corpus):
    """One epoch of tiny training (seed 3) and its weights in every loadable format."""
    from tools.tiny_model import tiny_config_dict

    root = tmp_path_factory.mktemp("source")
    config = parse_config(training_config(tiny_config_dict(tiny_text_dir), synthetic_corpus,
                                          training={"epochs": 1, "snapshot_epochs": [1]}))
    trainer = Trainer(config, root / "exp")
    trainer.fit()
    state = reference_state_dict(trainer.model)
    files = {name: root / "exp" / name for name in ("last.pt", "best.pt", "model_1.pt")}
    files["model folder"] = save_model_folder(trainer.model, root / "folder")
    files["released model.pt"] = root / "released.pt"
    torch.save({"model": state, "epoch": 1}, files["released model.pt"])
    files["reference training checkpoint"] = root / "reference_train.pt"
    torch.save({"model": {f"module.{key}": value for key, value in state.items()},
                "optimizer": trainer.optimizer.state_dict(), "config": {"optim_args": {"lr": 5e-5}}, "epoch": 1},
               files["reference training checkpoint"])
    return files, learnable(trainer.model.state_dict())


def finetune_config(tiny_config, corpus, init_from, **overrides) -> dict:
    config = training_config(tiny_config, corpus, **overrides)
    config["seed"] = 11  # another random initialisation than the source's
    config["training"] = {**config["training"], "init_from": str(init_from)}
    return config


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["last.pt", "best.pt", "model_1.pt", "model folder", "released model.pt",
                                  "reference training checkpoint"])
def test_init_from_loads_every_weight_and_starts_fresh(kind, trained_files, tiny_config, synthetic_corpus,
                                                       tmp_path, monkeypatch):
    files, expected = trained_files
    config = parse_config(finetune_config(tiny_config, synthetic_corpus, files[kind],
                                          training={"epochs": 1, "max_steps_per_epoch": 1}))
    trainer = Trainer(config, tmp_path / "exp")
    seen = {}

    def first_epoch():  # the state fit() starts the first epoch from
        seen["weights_equal"] = assert_same_weights(trainer.model, expected) is None
        seen.update(optimizer_state=dict(trainer.optimizer.state), step=trainer.scheduler.step_count,
                    epoch=trainer.epoch, global_step=trainer.global_step,
                    fresh_lr=trainer.scheduler.lr == trainer.scheduler.lr_at(0))
        return original()

    original = trainer.train_epoch
    monkeypatch.setattr(trainer, "train_epoch", first_epoch)
    trainer.fit()
    assert seen == {"weights_equal": True, "optimizer_state": {}, "step": 0, "epoch": 0, "global_step": 0,
                    "fresh_lr": True}
    assert trainer.global_step == 1  # one fresh step, not the source's count
    record = json.loads((tmp_path / "exp" / RECORD_NAME).read_text())
    weights_file = files[kind] / "model.safetensors" if kind == "model folder" else files[kind]
    assert record["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert record["init_from"] == str(files[kind])


@pytest.mark.slow
def test_mismatched_init_from_is_one_line_and_writes_nothing(tiny_config, synthetic_corpus, tmp_path):
    small = dict(tiny_config, embed_size=16)
    torch.manual_seed(0)
    checkpoint = tmp_path / "small.pt"
    torch.save({"model": reference_state_dict(ASE(small))}, checkpoint)
    yaml_path = tmp_path / "finetune.yaml"
    output_dir = tmp_path / "outputs"
    yaml_path.write_text(yaml.safe_dump({**training_config(tiny_config, synthetic_corpus),
                                         "output_dir": str(output_dir)}))
    result = run_python(["pretrain.py", "-c", str(yaml_path), "--init-from", str(checkpoint)], timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training.init_from")
    assert "13 mis-shaped (codebook: checkpoint [64, 16] vs model [64, 32]" in lines[0]
    assert not output_dir.exists()


def test_unreadable_init_from_is_a_config_error(tiny_config, tmp_path):
    config = parse_config({**tiny_config, "training": {"init_from": str(tmp_path / "missing.pt")}})
    with pytest.raises(ConfigError, match=r"missing\.pt does not exist"):
        check_init_from(config)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    config.training.init_from = str(tmp_path / "broken.pt")
    with pytest.raises(ConfigError, match=r"^training\.init_from: .*broken\.pt[^\n]*$"):
        check_init_from(config)


@pytest.mark.slow
def test_resume_of_a_finetuning_run_continues_it(trained_files, tiny_config, synthetic_corpus, tmp_path, caplog):
    files, _ = trained_files
    config = parse_config(finetune_config(tiny_config, synthetic_corpus, files["best.pt"],
                                          training={"max_steps_per_epoch": 2}))
    straight = Trainer(config, tmp_path / "straight")
    straight.fit()
    first = Trainer(config, tmp_path / "resumed")
    first.fit(until_epoch=1)
    second = Trainer(config, tmp_path / "resumed")
    with caplog.at_level(logging.INFO):
        second.fit(resume="auto")
    assert any("init_from" in record.message and "ignored" in record.message for record in caplog.records)
    assert second.global_step == straight.global_step > 0
    expected, actual = learnable(straight.model.state_dict()), learnable(second.model.state_dict())
    assert max((expected[key].float() - actual[key].float()).abs().max().item() for key in expected) <= 1e-6


def test_pretrain_skips_the_init_from_check_when_resuming(tiny_config, tmp_path):
    """pretrain.py checks init_from before writing anything, unless a resumed run continues from last.pt."""
    import pretrain

    config = parse_config({**tiny_config, "output_dir": str(tmp_path), "exp_name": "run",
                           "training": {"init_from": str(tmp_path / "missing.pt")}})
    with pytest.raises(ConfigError):
        pretrain.check_init_weights(config, "auto")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    pretrain.check_init_weights(config, "auto")  # the run continues from last.pt: init_from is not read


@pytest.mark.slow
def test_pretrain_init_from_is_recorded_and_ignored_on_resume(trained_files, tiny_config, synthetic_corpus,
                                                              tmp_path):
    """pretrain.py --init-from: config.yaml and init_from.json record the file; --resume auto continues the
    run and train.log says that init_from is ignored."""
    import pretrain

    files, _ = trained_files
    yaml_path = tmp_path / "finetune.yaml"
    yaml_path.write_text(yaml.safe_dump({**training_config(tiny_config, synthetic_corpus, training={
        "epochs": 1, "max_steps_per_epoch": 1}), "output_dir": str(tmp_path / "outputs"), "exp_name": "ft"}))
    assert pretrain.main(["-c", str(yaml_path), "--init-from", str(files["model folder"])]) == 0
    run = tmp_path / "outputs" / "ft"
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["init_from"] == str(files["model folder"])
    record = json.loads((run / RECORD_NAME).read_text())
    assert record["kind"] == "model folder" and len(record["sha256"]) == 64
    assert pretrain.main(["-c", str(yaml_path), "--init-from", str(files["model folder"]), "--resume", "auto"]) == 0
    assert "training.init_from (" in (run / "train.log").read_text().split("resumed from")[-1]
    root = logging.getLogger()  # pretrain.py configured the root logger (a file in tmp_path): undo it
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


# ------------------------------------------------------------------------------------------------ freezing
FROZEN_SETTINGS = {"audio_encoder_args": {"freeze": True, "trainable_last_blocks": 3},
                   "text_encoder_args": {"freeze": True, "trainable_last_blocks": 1}, "codebook": {"freeze": True}}


def expected_trainable(name: str) -> bool:
    """The tiny model (HTS-AT depths [1, 1, 1, 2], 2 BERT layers) with FROZEN_SETTINGS: the last 3 Swin
    blocks (stage 2's block and merging, stage 3), the final norm, the last BERT layer, projections, temp."""
    audio = "audio_encoder.audio_enc."
    trainable_prefixes = (f"{audio}layers.2.", f"{audio}layers.3.", f"{audio}norm.",
                          "text_encoder.text_encoder.encoder.layer.1.", "frame_proj.", "word_proj.", "temp")
    return name.startswith(trainable_prefixes)


def test_freezing_keys_freeze_exactly_what_they_say(tiny_config, synthetic_corpus, tmp_path):
    overrides = {section: {**tiny_config.get(section, {}), **values} for section, values in FROZEN_SETTINGS.items()}
    config = parse_config(training_config(tiny_config, synthetic_corpus, training={"epochs": 1,
                                                                                   "max_steps_per_epoch": 1},
                                          **overrides))
    trainer = Trainer(config, tmp_path / "exp")
    before = dict(trainer.model.named_parameters())
    wrong = [name for name, parameter in before.items() if parameter.requires_grad != expected_trainable(name)]
    assert wrong == []
    before = {name: parameter.detach().clone() for name, parameter in before.items()}
    trainer.fit()
    after = dict(trainer.model.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    frozen = {name for name in before if not expected_trainable(name)}
    assert changed & frozen == set()
    assert {"frame_proj.1.weight", "audio_encoder.audio_enc.norm.weight", "text_encoder.text_encoder.encoder.layer.1.output.dense"
            ".weight", "audio_encoder.audio_enc.layers.2.downsample.reduction.weight"} <= changed


def test_freezing_key_errors(tiny_config):
    with pytest.raises(ConfigError, match=r"trainable_last_blocks' is 2 but 'audio_encoder_args\.freeze' is false"):
        parse_config({**tiny_config, "audio_encoder_args": {"trainable_last_blocks": 2}})
    too_many = {**tiny_config, "text_encoder_args": {**tiny_config["text_encoder_args"], "freeze": True,
                                                     "trainable_last_blocks": 3}}
    with pytest.raises(ValueError, match=r"trainable_last_blocks is 3 but the text tower has 2 layers"):
        ASE(too_many)


# ------------------------------------------------------------------------------------------- interpolation
def tiny_checkpoint(config: dict, path: Path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = ASE(config)
    torch.save({"model": reference_state_dict(model), "model_config": model.config.to_dict()}, path)
    return learnable(model.state_dict())


@pytest.mark.slow
def test_interpolation_ends_are_the_inputs_and_the_middle_is_the_mean(tiny_config, tmp_path):
    init = tiny_checkpoint(tiny_config, tmp_path / "init.pt", seed=0)
    finetuned = tiny_checkpoint(tiny_config, tmp_path / "finetuned.pt", seed=1)
    init_model = model_from_checkpoint(tmp_path / "init.pt", device="cpu")
    folder = save_model_folder(init_model, tmp_path / "init_folder")  # any loadable format as input
    assert interpolate_main(["--init", str(folder), "--finetuned", str(tmp_path / "finetuned.pt"),
                             "--alpha", "0", "0.5", "1", "--out", str(tmp_path / "wise")]) == 0
    ends = {alpha: learnable(model_from_checkpoint(tmp_path / "wise" / f"alpha_{alpha}.pt", device="cpu")
                             .state_dict()) for alpha in ("0", "0.5", "1")}
    assert all(torch.equal(ends["0"][key], init[key]) for key in init)
    assert all(torch.equal(ends["1"][key], finetuned[key]) for key in finetuned)
    floats = [key for key in init if init[key].is_floating_point()]
    assert all(torch.allclose(ends["0.5"][key], (init[key] + finetuned[key]) / 2, atol=1e-7, rtol=1e-6)
               for key in floats)
    assert any(not torch.equal(init[key], finetuned[key]) for key in floats)


def test_interpolation_of_two_architectures_is_one_line(tiny_config, tmp_path, capsys):
    tiny_checkpoint(tiny_config, tmp_path / "init.pt", seed=0)
    tiny_checkpoint(dict(tiny_config, embed_size=16), tmp_path / "small.pt", seed=0)
    assert interpolate_main(["--init", str(tmp_path / "init.pt"), "--finetuned", str(tmp_path / "small.pt"),
                             "--alpha", "0.5", "--out", str(tmp_path / "wise")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the two models have different architectures")
    assert "mis-shaped (codebook: finetuned [64, 16] vs init [64, 32]" in lines[0]
    assert not (tmp_path / "wise").exists()


# ------------------------------------------------------------------------------------------- finetune.yaml
def test_finetune_yaml_loads_and_departs_from_pretrain_as_documented():
    finetune, pretrain = load_config(REPO / "settings/finetune.yaml"), load_config(REPO / "settings/pretrain.yaml")
    assert finetune.training.init_from == "pretrained_models/model.pt"
    assert finetune.optim_args.lr < pretrain.optim_args.lr
    assert finetune.model_config().to_dict()["audio_encoder_args"]["htsat"] == \
        pretrain.model_config().to_dict()["audio_encoder_args"]["htsat"]
    assert "outputs/quickstart/best.pt" in (REPO / "settings/finetune.yaml").read_text()
