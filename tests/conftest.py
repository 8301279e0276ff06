"""Shared fixtures: a tiny MGA-CLAP config whose text tower is built offline in a temp folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.text_encoder import minilm_folder

TINY_BERT_CONFIG = {
    "architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
    "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "layer_norm_eps": 1e-12, "pad_token_id": 0, "initializer_range": 0.02,
}


def make_tiny_text_dir(folder: Path) -> Path:
    """A transformers folder: the uncased BERT tokenizer of the MiniLM package and a 2-layer config."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        source = minilm_folder() / name
        if source.is_file():
            shutil.copy(source, folder / name)
    (folder / "config.json").write_text(json.dumps(TINY_BERT_CONFIG))
    return folder


def tiny_config_dict(text_dir: Path) -> dict:
    """A model small enough for unit tests (about 1 M parameters)."""
    return {
        "device": "cpu",
        "embed_size": 32,
        "audio_encoder_args": {"htsat": {"embed_dim": 8, "depths": [1, 1, 1, 2], "num_heads": [1, 1, 2, 2]}},
        "text_encoder_args": {"type": str(text_dir), "pretrained": False},
        "codebook": {"size": 64},
    }


def write_tiny_checkpoint(config: dict, folder: Path) -> Path:
    """A tiny model with seeded random weights saved as pretrain.py does: weights plus its own config
    (self-describing). Returns the path of `folder`/tiny.pt."""
    import torch

    from models.ase_model import ASE
    from models.checkpoint import reference_state_dict

    torch.manual_seed(0)
    model = ASE(config)
    path = folder / "tiny.pt"
    torch.save({"model": reference_state_dict(model), "config": model.config.to_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory) -> Path:
    return make_tiny_text_dir(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture
def tiny_config(tiny_text_dir) -> dict:
    return tiny_config_dict(tiny_text_dir)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A small synthetic corpus (16 training clips, 6 per test split), generated once per session."""
    from data_handling.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("synthetic") / "corpus"
    generate_corpus(root, num_train=16, num_test=6, seed=0, num_esc_per_class=1)
    return root
