"""It learns: a tiny MGA-CLAP (codebook aggregation, hard-negative loss) trained by the real Trainer on the
tests' synthetic corpus lowers its loss and then retrieves its training clips from their captions far
better than chance.

The tiny model differs from tests/conftest.py's in three ways, each needed for a short, reliable run:
- codebook.size 1024 (the quickstart's) instead of 64: at the paper's temperature (1000) the sparsemax
  weights are nearly uniform, so an embedding is the mean code plus a deviation whose share grows with the
  number of codes; with 64 codes retrieval stays at chance for tens of epochs, with 1024 it learns in ~15;
- a 128 x 128 image (hop 1280: 10 s -> 251 frames, 2 chunks of 64 mel bins) with 8 x 8 patches and two
  stages, without stochastic depth: a fraction of the compute;
- SpecAugment off (an 8-bin stripe can erase a synthetic event's whole band; tests/test_model_parts.py
  covers SpecAugment).
One batch holds the 16 clips, so each step sees every negative; a 6-step warm-up avoids the first steps'
loss spike. Seeds 0, 1, 2 gave R@1 69-94 % after 20 epochs (chance 6.25 %), loss falling 4-40x.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_handling.audio_io import load_audio
from data_handling.text_preprocess import preprocess_caption
from tools.config import parse_config
from tools.train.trainer import Trainer

SEED = 0


@pytest.mark.slow
def test_a_tiny_model_learns_to_retrieve_its_training_clips(tiny_config, synthetic_corpus, tmp_path):
    train_json = synthetic_corpus / "train" / "train.json"
    entries = json.loads(train_json.read_text())["data"]
    config = parse_config({
        **tiny_config, "seed": SEED, "json_files": [str(train_json)],
        "audio_args": {"hop_length": 1280},
        "audio_encoder_args": {"htsat": {"spec_size": 128, "patch_size": 8, "embed_dim": 16, "depths": [1, 1],
                                         "num_heads": [1, 2], "drop_path_rate": 0.0}},
        "codebook": {"size": 1024},
        "training": {"epochs": 20, "amp": "off", "spec_augmentation": False, "snapshot_epochs": []},
        "optim_args": {"lr": 3e-3, "optimizer_name": "adamw", "warmup_steps": 6,
                       "schedule_epoch_length": "batches"},
        "data_args": {"batch_size": len(entries), "num_workers": 0, "pin_memory": False}})
    trainer = Trainer(config, tmp_path / "exp")
    history = trainer.fit()

    assert len(history) == 20 and trainer.global_step == 20  # one full batch per epoch
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], [record["loss"] for record in history]

    model = trainer.model.eval()
    with torch.no_grad():
        waveforms = [load_audio(train_json.parent / entry["audio"]) for entry in entries]
        audio = torch.from_numpy(np.stack(waveforms))
        clips = model.embed_audio(audio)
        captions = model.embed_text([preprocess_caption(entry["caption"]) for entry in entries])
    recall_at_1 = (captions @ clips.T).argmax(dim=1).eq(torch.arange(len(entries))).float().mean().item()
    chance = 1 / len(entries)
    assert recall_at_1 >= 4 * chance, f"text-to-audio R@1 {recall_at_1:.3f}, chance {chance:.3f}"
