"""The model package on its own: ModelConfig, checkpoint key mapping, the checkpoint factory, the registries,
and the rule that models/ imports nothing from tools/ or data_handling/."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from models.ase_model import ASE
from models.checkpoint import (
    CheckpointMismatchError,
    is_constant_key,
    load_htsat_pretrained,
    map_checkpoint_keys,
    reference_state_dict,
)
from models.codebook import AGGREGATIONS, mean_aggregate
from models.config import ConfigError, ModelConfig
from models.factory import model_from_checkpoint, stored_model_config
from models.htsat import HTSAT
from tests.golden import REFERENCE_DIR, requires_reference
from tools.config import parse_config

REPO = Path(__file__).resolve().parent.parent


def test_models_imports_nothing_from_tools_or_data_handling():
    offenders = []
    for path in sorted((REPO / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in ("tools", "data_handling")]
    assert offenders == []


# ----------------------------------------------------------------------------------------------------
# ModelConfig
# ----------------------------------------------------------------------------------------------------
def test_model_config_reads_the_model_keys_of_a_full_yaml_and_round_trips():
    yaml_dict = {"embed_size": 32, "codebook": {"size": 64}, "training": {"spec_augmentation": False, "epochs": 3},
                 "eval": {"batch_size": 4}, "optim_args": {"lr": 1.0}, "device": "cpu"}
    config = ModelConfig.from_dict(yaml_dict)
    assert (config.embed_size, config.codebook.size, config.spec_augmentation) == (32, 64, False)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["training"] == {"spec_augmentation": False}
    assert parse_config(yaml_dict).model_config() == config  # the training schema gives the same model


def test_model_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="codebook.sise"):
        ModelConfig.from_dict({"codebook": {"sise": 3}})
    with pytest.raises(ConfigError, match="embed_size"):
        ModelConfig.from_dict({"embed_size": "big"})
    with pytest.raises(ConfigError, match="model_args.aggregation.*'codebook', 'mean'"):
        ModelConfig.from_dict({"model_args": {"aggregation": "max"}})
    with pytest.raises(ConfigError, match="audio_encoder_args.model"):
        parse_config({"audio_encoder_args": {"model": "panns"}})


def test_replace_applies_yaml_overrides_and_ignores_keys_outside_the_model():
    config = ModelConfig().replace(["codebook.size=8", "eval.batch_size=2", "text_encoder_args.type=/tmp/x"])
    assert config.codebook.size == 8 and config.text_encoder_args.type == "/tmp/x"
    assert ModelConfig().codebook.size == 4096  # the original is untouched


def test_the_config_names_are_exactly_the_registered_components():
    import typing

    from models.audio_encoders import AUDIO_ENCODERS
    from models.config import AggregationName, AudioEncoderName, LossName
    from models.losses import LOSS_FUNCTIONS
    assert set(typing.get_args(AudioEncoderName)) == set(AUDIO_ENCODERS)
    assert set(typing.get_args(AggregationName)) == set(AGGREGATIONS)
    assert set(typing.get_args(LossName)) == set(LOSS_FUNCTIONS)


def test_aggregation_registry_drives_the_model(tiny_config):
    model = ASE({**tiny_config, "model_args": {"aggregation": "mean"}})
    frames = torch.randn(2, 5, 32)
    torch.testing.assert_close(model.pool_frames(frames), mean_aggregate(frames))
    assert set(AGGREGATIONS) == {"codebook", "mean"}


# ----------------------------------------------------------------------------------------------------
# Key mapping and the factory
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
@requires_reference
def test_released_checkpoint_keys_map_onto_the_paper_model():
    entries = json.loads((REFERENCE_DIR / "official_state_dict.json").read_text())["entries"]
    released = {entry["key"]: torch.empty(0) for entry in entries}
    mapped = map_checkpoint_keys(released)
    model = ASE({"text_encoder_args": {"pretrained": False}})
    expected = {key for key in model.state_dict() if not is_constant_key(key)}
    assert set(mapped) == expected
    wrapped = map_checkpoint_keys({f"module.{key}": value for key, value in released.items()})  # DDP's prefix
    assert set(wrapped) == expected


def test_wrapper_parts_are_removed_wherever_they_stand():
    state = {"module.audio_encoder._orig_mod.audio_enc.bn0.weight": torch.ones(1),
             "codebook": torch.ones(1), "audio_encoder.audio_enc.layers.0.blocks.1.attn_mask": torch.ones(1)}
    assert set(map_checkpoint_keys(state)) == {"audio_encoder.audio_enc.bn0.weight", "codebook"}
    with pytest.raises(ValueError, match="htsat_audioset"):
        map_checkpoint_keys(state, "timm")


def test_htsat_audioset_checkpoint_initialises_htsat(tmp_path):
    audio_args = {"sr": 32000, "n_fft": 1024, "hop_length": 320, "f_min": 50, "f_max": 14000, "n_mels": 64}
    torch.manual_seed(0)
    source = HTSAT(audio_args, embed_dim=8, depths=[1, 1, 1, 2], num_heads=[1, 1, 2, 2])
    lightning = {"state_dict": {f"sed_model.{key}": value for key, value in source.state_dict().items()}}
    lightning["state_dict"]["sed_model.spectrogram_extractor.stft.conv_real.weight"] = torch.ones(3)
    path = tmp_path / "HTSAT.ckpt"
    torch.save(lightning, path)
    assert set(map_checkpoint_keys(lightning["state_dict"], "htsat_audioset")) == {
        key for key in source.state_dict() if not is_constant_key(key)}
    torch.manual_seed(1)
    target = HTSAT(audio_args, embed_dim=8, depths=[1, 1, 1, 2], num_heads=[1, 1, 2, 2])
    load_htsat_pretrained(target, path)
    torch.testing.assert_close(target.patch_embed.proj.weight, source.patch_embed.proj.weight)


def test_checkpoints_store_their_model_config_and_rebuild_from_it(tiny_config, tmp_path):
    torch.manual_seed(0)
    original = ASE(tiny_config).eval()
    path = tmp_path / "ours.pt"
    torch.save({"model": reference_state_dict(original), "model_config": original.config.to_dict()}, path)
    loaded = model_from_checkpoint(path, None, "cpu")  # no config given: the stored one is used
    assert loaded.config == original.config.for_inference()
    waveform = torch.randn(1, 32000)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_audio(waveform), original.embed_audio(waveform))
    checkpoint = torch.load(path, weights_only=True)
    assert stored_model_config(checkpoint, path, ["codebook.temperature=10"]).codebook.temperature == 10
    assert stored_model_config({"model": {}}, path) is None  # the released model.pt stores none


def test_a_checkpoint_of_another_size_is_refused_with_every_reason(tiny_config, tmp_path):
    path = tmp_path / "ours.pt"
    torch.save({"model": reference_state_dict(ASE(tiny_config))}, path)
    with pytest.raises(CheckpointMismatchError, match="mis-shaped.*codebook"):
        model_from_checkpoint(path, {**tiny_config, "codebook": {"size": 32}}, "cpu")
