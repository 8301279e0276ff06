"""ONNX export (models.onnx_export): the CLI writes both graphs, and onnxruntime gives PyTorch's numbers.

One export serves every test (an export takes 15-30 s of a loaded 2-core machine): the CLI exports the
golden small reference model (written as a self-describing checkpoint) when ../shared/reference is
there, else the tests' tiny model (tools.tiny_model), so the CLI and the parity are tested either way.
Parity is the max abs difference, divided by the largest expected magnitude when that is over 1
(`assert_close_max`); the embeddings here are O(1), so it is in effect an absolute 1e-4.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="ONNX export needs the onnx package (pip install onnx)")
pytest.importorskip("onnxscript", reason="torch's dynamo ONNX exporter needs onnxscript (pip install onnxscript)")
ort = pytest.importorskip("onnxruntime", reason="running the graphs needs onnxruntime (pip install onnxruntime)")

from models.ase_model import ASE  # noqa: E402
from models.checkpoint import load_checkpoint, reference_state_dict  # noqa: E402
from models.onednn_linear import OneDNNLinear  # noqa: E402
from models.onnx_export import AUDIO_FILE, SIGNATURE_FILE, TEXT_FILE, main, tokenize  # noqa: E402
from tests.golden import GOLDEN_DIR, golden_config, requires_reference  # noqa: E402
from tools.tiny_model import tiny_config_dict  # noqa: E402

TOLERANCE = 1e-4
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("onnx_export")]  # one export (15-30 s), on one worker
CAPTIONS = ["a bell rings twice", "rain", "a dog barks, then a car passes by while a man speaks"]


def assert_close_max(actual: np.ndarray, expected: torch.Tensor, name: str) -> None:
    expected = expected.numpy()
    assert actual.shape == expected.shape, name
    error = float(np.abs(actual - expected).max()) / max(1.0, float(np.abs(expected).max()))
    assert error <= TOLERANCE, f"{name}: max abs difference {error:.2e} (scaled) > {TOLERANCE}"


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_text_dir):
    """(PyTorch model, folder the CLI wrote, its stdout, audio session, text session)."""
    torch.manual_seed(0)
    if (GOLDEN_DIR / "model.pt").is_file():
        model = ASE(golden_config())
        load_checkpoint(model, GOLDEN_DIR / "model.pt")
    else:
        model = ASE(tiny_config_dict(tiny_text_dir))
    model.eval()
    folder = tmp_path_factory.mktemp("onnx")
    checkpoint = folder / "model.pt"
    torch.save({"model": reference_state_dict(model), "model_config": model.config.to_dict()}, checkpoint)
    out = folder / "out"
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["--ckpt", str(checkpoint), "--out", str(out), "--opset", "18"]) == 0
    return model, out, stdout.getvalue(), session(out / AUDIO_FILE), session(out / TEXT_FILE)


def run_text(text_session: ort.InferenceSession, tokens) -> list[np.ndarray]:
    return text_session.run(None, {name: np.asarray(tokens[name]) for name in ("input_ids", "attention_mask")})


def test_cli_writes_graphs_signature_and_tokenizer(exported):
    from transformers import AutoTokenizer

    model, out, stdout, audio_session, text_session = exported
    embed_size = model.config.embed_size
    assert f"audio.onnx: waveform ['batch', 320000] -> frame_embeds ['batch', 32, {embed_size}]" in stdout
    signature = json.loads((out / SIGNATURE_FILE).read_text())
    assert [value["name"] for value in signature["text"]["inputs"]] == ["input_ids", "attention_mask"]
    assert signature["text"]["outputs"][2] == {"name": "sentence_embeds", "dtype": "float32",
                                               "shape": ["batch", embed_size]}
    assert (signature["audio"]["opset"], signature["normalised"]) == (18, False)
    assert any(isinstance(module, OneDNNLinear) for module in model.modules()), \
        "the export switches oneDNN off in a copy, never in the caller's model"

    # A user's path: the saved tokenizer, the graphs, then L2 normalisation = embed_text / embed_audio.
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokens = tokenizer(CAPTIONS, padding="longest", truncation=True, max_length=30, return_tensors="np")
    _, _, sentences = run_text(text_session, tokens)
    waveform = torch.randn(1, 320000, generator=torch.Generator().manual_seed(0)) * 0.1
    _, clips = audio_session.run(None, {"waveform": waveform.numpy()})
    with torch.no_grad():
        expected_sentences, expected_clips = model.embed_text(CAPTIONS), model.embed_audio(waveform)
    normalise = lambda array: array / np.linalg.norm(array, axis=-1, keepdims=True)  # noqa: E731
    assert_close_max(normalise(sentences), expected_sentences, "sentence_embeds")
    assert_close_max(normalise(clips), expected_clips, "clip_embeds")


@requires_reference
def test_golden_inputs_give_pytorchs_outputs(exported):
    inputs = torch.load(GOLDEN_DIR / "inputs.pt", map_location="cpu", weights_only=True)
    assert_graphs_match_pytorch(exported, inputs["audio"], inputs["texts"])  # one caption truncated


@pytest.mark.parametrize("batch", [1, 3])
def test_graphs_take_any_batch(exported, batch):
    audio = torch.randn(batch, 320000, generator=torch.Generator().manual_seed(batch)) * 0.1
    assert_graphs_match_pytorch(exported, audio, CAPTIONS[-batch:])


def assert_graphs_match_pytorch(exported, audio: torch.Tensor, texts: list[str]) -> None:
    """Both graphs in onnxruntime against encode_clips / encode_text + pool_words (max abs diff <= 1e-4)."""
    model, _, _, audio_session, text_session = exported
    frames, clips = audio_session.run(None, {"waveform": audio.numpy()})
    words, word_mask, sentences = run_text(text_session, tokenize(model, texts))
    with torch.no_grad():
        expected_frames, expected_clips = model.encode_clips(audio)
        _, expected_words, expected_mask = model.encode_text(texts)
        expected_sentences = model.pool_words(expected_words, expected_mask)
    assert_close_max(frames, expected_frames, "frame_embeds")
    assert_close_max(clips, expected_clips, "clip_embeds")
    assert_close_max(words, expected_words, "word_embeds")
    assert np.array_equal(word_mask, expected_mask.numpy())
    assert_close_max(sentences, expected_sentences, "sentence_embeds")


def test_cli_errors_say_what_was_expected(tmp_path, capsys):
    assert main(["--ckpt", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "onnx")]) == 2
    assert "no such file; expected a checkpoint" in capsys.readouterr().err
    assert main(["--ckpt", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "onnx"), "--opset", "12"]) == 2
    assert "opset must be an integer >= 18" in capsys.readouterr().err
    assert not (tmp_path / "onnx").exists()
