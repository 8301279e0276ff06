"""Model folders (safetensors + config): conversion round trip, no pickle on load, scripts and torch.hub."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from models.checkpoint import CheckpointError
from models.config import ConfigError
from models.convert import main as convert_main
from models.factory import model_from_checkpoint
from models.model_folder import is_model_folder, read_folder_config, save_model_folder, weights_to_save
from tests.golden import GOLDEN_DIR, golden_config, requires_reference
from tests.test_golden import relative_error

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def golden_folder(tmp_path_factory) -> Path:
    """The golden reference model converted by `python -m models.convert`."""
    work = tmp_path_factory.mktemp("golden_folder")
    (work / "golden.yaml").write_text(yaml.safe_dump(golden_config()))
    assert convert_main([str(GOLDEN_DIR / "model.pt"), str(work / "model"), "--config", str(work / "golden.yaml")]) == 0
    return work / "model"


@requires_reference
def test_converted_golden_model_gives_the_reference_outputs(golden_folder, monkeypatch):
    assert sorted(path.name for path in golden_folder.iterdir()) == ["config.json", "model.safetensors",
                                                                     "text_encoder"]

    def refuse(*args, **kwargs):
        raise AssertionError("a model folder must load without pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model = model_from_checkpoint(golden_folder, device="cpu")
    monkeypatch.undo()
    inputs = torch.load(GOLDEN_DIR / "inputs.pt", map_location="cpu", weights_only=True)
    outputs = torch.load(GOLDEN_DIR / "outputs.pt", map_location="cpu", weights_only=True)
    with torch.no_grad():
        _, frame_embeds = model.encode_audio(inputs["audio"])
        audio_embeds = model.msc(frame_embeds, model.codebook)
        _, word_embeds, mask = model.encode_text(inputs["texts"])
        text_embeds = model.msc(word_embeds, model.codebook, mask)
    for name, value in (("frame_embeds", frame_embeds), ("audio_embeds", audio_embeds), ("word_embeds", word_embeds),
                        ("text_embeds", text_embeds)):
        assert relative_error(value, outputs[name]) <= 1e-6, name


@requires_reference
def test_the_folder_is_self_contained(golden_folder, tmp_path):
    """The text tower is built from the folder's own files: the folder can move."""
    moved = tmp_path / "elsewhere" / "model"
    moved.parent.mkdir()
    golden_folder.rename(moved)
    try:
        config = json.loads((moved / "config.json").read_text())
        assert config["model_config"]["text_encoder_args"]["type"] == "text_encoder"
        model = model_from_checkpoint(moved, device="cpu")
        assert Path(model.config.text_encoder_args.type) == moved / "text_encoder"
        assert model.embed_text(["a dog barks"]).shape == (1, golden_config()["embed_size"])
    finally:
        moved.rename(golden_folder)


def test_our_checkpoint_round_trip_and_errors(tiny_config, tmp_path):
    torch.manual_seed(1)
    model = model_from_checkpoint(None, tiny_config, device="cpu")
    folder = save_model_folder(model, tmp_path / "tiny")
    assert is_model_folder(folder)
    loaded = model_from_checkpoint(folder, device="cpu")
    waveform = 0.1 * torch.randn(2, 32000 * 3)
    with torch.no_grad():
        assert torch.equal(loaded.embed_audio(waveform), model.embed_audio(waveform))
        assert torch.equal(loaded.embed_text(["rain", "a bell"]), model.embed_text(["rain", "a bell"]))
    save_model_folder(model, folder)  # replacing a model folder is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a model folder"):
        save_model_folder(model, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="safetensors"):
        model_from_checkpoint(folder, device="cpu")
    (folder / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CheckpointError, match="not the config of a model folder"):
        model_from_checkpoint(folder, device="cpu")


def test_convert_reports_errors_in_one_line(tmp_path, capsys):
    assert convert_main([str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: checkpoint not found")


def test_scripts_take_a_model_folder(tiny_config, synthetic_corpus, tmp_path):
    from example import main as example_main

    model = model_from_checkpoint(None, tiny_config, device="cpu")
    folder = save_model_folder(model, tmp_path / "tiny")
    audio = next((synthetic_corpus / "sed" / "audio").glob("*.wav"))
    result = example_main(["--ckpt", str(folder), "--audio", str(audio), "--text", "a dog", "rain",
                           "--out", str(tmp_path / "example.png"), "--device", "cpu"])
    assert len(result["clip_similarity"]) == 2


def test_torch_hub_entries(tiny_config, tmp_path):
    tiny = torch.hub.load(str(REPO), "mga_clap_tiny", source="local")
    assert not tiny.training and tiny.embed_text(["a dog"]).shape == (1, 32)
    folder = save_model_folder(model_from_checkpoint(None, tiny_config, device="cpu"), tmp_path / "tiny")
    model = torch.hub.load(str(REPO), "mga_clap", str(folder), device="cpu", source="local")
    waveform = 0.1 * torch.randn(1, 32000 * 10)
    frames, clip = model.encode_long_audio(waveform[0])
    assert frames.shape == (32, 32) and clip.shape == (32,)
    import soundfile as sf

    sf.write(tmp_path / "clip.wav", waveform[0].numpy(), 32000, subtype="FLOAT")
    loaded = torch.hub.load(str(REPO), "load_audio", str(tmp_path / "clip.wav"), source="local")
    assert torch.equal(loaded, waveform[0])


def test_saved_weights_are_copies_sharing_no_memory_with_the_model(tiny_model):
    """safetensors refuses tensors that share memory (tied weights): every saved tensor is its own copy."""
    saved, live = weights_to_save(tiny_model), tiny_model.state_dict()
    assert saved and set(saved) <= set(live)
    assert all(saved[key].data_ptr() != live[key].data_ptr() for key in saved)
    assert all(torch.equal(saved[key], live[key]) for key in saved)


def test_folder_records_its_source_and_unreadable_configs_are_one_line_errors(tiny_model, tmp_path):
    from safetensors import safe_open

    folder = save_model_folder(tiny_model, tmp_path / "tiny", source="runs/best.pt")
    assert json.loads((folder / "config.json").read_text())["source"] == "runs/best.pt"
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        assert weights.metadata() == {"format": "pt"}          # what transformers' loaders expect
    config = json.loads((folder / "config.json").read_text())
    config["model_config"]["embed_size"] = "large"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="config.json"):         # the error names the file it comes from
        read_folder_config(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json cannot be read as json"):
        read_folder_config(folder)
