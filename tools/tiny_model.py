"""A tiny MGA-CLAP configuration, about 1 M parameters, for tests and benchmarks.

Its text tower is built offline: a 2-layer, 32-wide BERT config written into a folder beside the
uncased BERT tokenizer shipped with the MiniLM package (see models/text_encoder.py, minilm_folder),
so nothing is downloaded and the weights are randomly initialised.

    text_dir = make_tiny_text_dir(tmp_path / "tiny_bert")
    model = ASE(tiny_config_dict(text_dir))
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from models.text_encoder import minilm_folder

TINY_BERT_CONFIG: dict[str, Any] = {
    "architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
    "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "layer_norm_eps": 1e-12, "pad_token_id": 0, "initializer_range": 0.02,
}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_tiny_text_dir(folder: Path, bert_overrides: dict[str, Any] | None = None) -> Path:
    """A transformers folder: the MiniLM package's uncased BERT tokenizer and `TINY_BERT_CONFIG`.

    `bert_overrides` replaces entries of the BERT config. Tokenizer files already in `folder` are
    kept; every file is written through a temporary file and a rename, so processes sharing one
    folder never read a partial file. Returns `folder`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        source = minilm_folder() / name
        if source.is_file() and not (folder / name).is_file():
            _write_atomically(folder / name, source.read_bytes())
    config = {**TINY_BERT_CONFIG, **(bert_overrides or {})}
    _write_atomically(folder / "config.json", json.dumps(config).encode())
    return folder


def tiny_config_dict(text_dir: Path) -> dict[str, Any]:
    """The tiny model's config dict (our schema), its text tower read from `text_dir` (random weights)."""
    return {
        "device": "cpu",
        "embed_size": 32,
        "audio_encoder_args": {"htsat": {"embed_dim": 8, "depths": [1, 1, 1, 2], "num_heads": [1, 1, 2, 2]}},
        "text_encoder_args": {"type": str(text_dir), "pretrained": False},
        "codebook": {"size": 64},
    }


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it onto `path`."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)
