"""Loading the text tower: weights all read, transformers' load-report table never printed, real problems reported."""

import logging

import torch
from transformers import BertConfig, BertModel

from models.text_encoder import build_text_model

TINY_BERT = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=32)


def _save_bert_folder(folder, with_pooler: bool, drop_prefix: str | None = None):
    torch.manual_seed(0)
    model = BertModel(BertConfig(**TINY_BERT), add_pooling_layer=with_pooler)
    if drop_prefix is not None:
        state = {key: value for key, value in model.state_dict().items() if not key.startswith(drop_prefix)}
        model.save_pretrained(folder, state_dict=state)
    else:
        model.save_pretrained(folder)
    return model


def test_a_checkpoint_with_a_pooler_loads_every_encoder_weight_without_a_report_table(tmp_path, capfd, caplog):
    saved = _save_bert_folder(tmp_path, with_pooler=True)
    with caplog.at_level(logging.WARNING):
        loaded = build_text_model(str(tmp_path), pretrained=True)
    printed = capfd.readouterr()
    assert "LOAD REPORT" not in printed.err + printed.out
    assert "Loading weights" not in printed.err + printed.out
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    expected = {key: value for key, value in saved.state_dict().items() if not key.startswith("pooler.")}
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_checkpoint_missing_encoder_weights_is_reported_in_one_warning(tmp_path, caplog):
    _save_bert_folder(tmp_path, with_pooler=False, drop_prefix="encoder.layer.1.output")
    with caplog.at_level(logging.WARNING, logger="models.text_encoder"):
        build_text_model(str(tmp_path), pretrained=True)
    warnings = [record.getMessage() for record in caplog.records if record.name == "models.text_encoder"]
    assert len(warnings) == 1
    assert "initialised at random" in warnings[0] and "encoder.layer.1.output" in warnings[0]


def test_the_quiet_load_restores_transformers_logging_and_progress_bars(tmp_path):
    from transformers.utils import logging as hf_logging
    _save_bert_folder(tmp_path, with_pooler=True)
    level_before = logging.getLogger("transformers").level
    bars_before = hf_logging.is_progress_bar_enabled()
    build_text_model(str(tmp_path), pretrained=True)
    assert logging.getLogger("transformers").level == level_before
    assert hf_logging.is_progress_bar_enabled() == bars_before
