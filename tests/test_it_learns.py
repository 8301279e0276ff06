"""It learns: a tiny model trained by the real Trainer on a tiny synthetic corpus lowers its loss and retrieves
its training clips from their captions far better than chance.

The model is the tests' tiny one (about 1 M parameters) with mean pooling (`model_args.aggregation: mean`):
with the codebook at the paper's temperature a model this small needs the quickstart's 14 epochs before
retrieval moves, while mean pooling learns in seconds, and the loop, the loss, the optimiser, the schedule
and the data path under test are the same.
"""

from __future__ import annotations

import json

import soundfile as sf
import torch

from data_handling.synthetic import generate_corpus
from data_handling.text_preprocess import preprocess_caption
from tools.config import parse_config
from tools.train.trainer import Trainer

NUM_CLIPS = 32


def test_a_tiny_model_learns_to_retrieve_its_training_clips(tiny_config, tmp_path):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, num_train=NUM_CLIPS, num_test=1, seed=0, num_esc_per_class=1)
    train_json = corpus / "train" / "train.json"
    config = parse_config({
        **tiny_config, "seed": 0, "json_files": [str(train_json)], "model_args": {"aggregation": "mean"},
        "training": {"epochs": 10, "amp": "off", "spec_augmentation": False, "snapshot_epochs": []},
        "optim_args": {"lr": 3e-3, "optimizer_name": "adamw", "warmup_steps": 2, "schedule_epoch_length": "batches"},
        "data_args": {"batch_size": 8, "num_workers": 0, "pin_memory": False}})
    trainer = Trainer(config, tmp_path / "exp")
    history = trainer.fit()
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]

    entries = json.loads(train_json.read_text())["data"]
    model = trainer.model.eval()
    with torch.no_grad():
        audio = torch.stack([torch.from_numpy(sf.read(train_json.parent / entry["audio"], dtype="float32")[0])
                             for entry in entries])
        clips = torch.cat([model.embed_audio(chunk) for chunk in audio.split(16)])
        captions = model.embed_text([preprocess_caption(entry["caption"]) for entry in entries])
    recall_at_1 = (captions @ clips.T).argmax(dim=1).eq(torch.arange(len(entries))).float().mean().item()
    assert recall_at_1 >= 3 / NUM_CLIPS, f"text-to-audio R@1 {recall_at_1:.3f}, chance {1 / NUM_CLIPS:.3f}"
