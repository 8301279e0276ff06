"""ONNX export of an `ASE` model: the audio path and the text path as two onnxruntime-ready graphs.

    audio.onnx  waveform [B, 320000] float32 (10 s at 32 kHz)
                -> frame_embeds [B, 32, E], clip_embeds [B, E]                       = ASE.encode_clips
    text.onnx   input_ids, attention_mask [B, L] int64 (the model's tokenizer, right padding)
                -> word_embeds [B, L-1, E], word_mask [B, L-1] int64, sentence_embeds [B, E]
                                                                 = ASE.encode_text + ASE.pool_words
Nothing is L2-normalised, exactly as those PyTorch methods return them (embed_audio / embed_text
normalise the clip and sentence embeddings; normalise frames yourself before frame x sentence scores).
Words are the tokens after [CLS] (as encode_text drops it); `word_mask` is encode_text's mask: 1 for
real tokens, 0 for [SEP] and padding, computed from `attention_mask` (right padding puts [SEP] at the
last attended position). Tokenisation stays outside the graph; the tokenizer files are saved beside
the graphs.

Exporter: torch.onnx.export with dynamo=True (torch.export, then onnxscript's translation). The
TorchScript-based exporter cannot export the log-mel front end (torch.stft with complex output);
the dynamo exporter translates it to ONNX's STFT op, sparsemax's sort to TopK, and both attention
paths to plain MatMul/Softmax. The export runs on a CPU copy of the model, so the caller's model is
left untouched. In that copy one speed path is switched off through its existing switch:
`models.onednn_linear.set_onednn_linear(copy, False)`: the oneDNN linear layers call a private
torch op (`torch.ops.mkldnn._linear_pointwise`) that has no ONNX translation; plain `nn.Linear` +
`nn.GELU` compute the same function (float rounding only). The fused window attention stays as
configured: in CPU float32 inference it is batched matmuls (baddbmm, softmax, bmm), which export.

Command line: `python -m models.onnx_export --ckpt PATH --out DIR [--opset N]` writes DIR/audio.onnx,
DIR/text.onnx, the tokenizer files (DIR/tokenizer.json, tokenizer_config.json) and DIR/signature.json
(inputs and outputs, names, dtypes and shapes). docs/onnx.md shows how to run the graphs.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.ase_model import ASE
from models.checkpoint import CheckpointError, CheckpointMismatchError
from models.factory import model_from_checkpoint
from models.onednn_linear import set_onednn_linear
from models.windowing import WINDOW_SECONDS

log = logging.getLogger(__name__)

MIN_OPSET = 18
"""The lowest opset that works: onnxscript translates to opset 18 and ONNX's converter has no way down
for some ops (Pad); newer opsets are converted to (default: 20 with torch 2.14)."""
AUDIO_FILE, TEXT_FILE, SIGNATURE_FILE = "audio.onnx", "text.onnx", "signature.json"
AUDIO_INPUTS, AUDIO_OUTPUTS = ("waveform",), ("frame_embeds", "clip_embeds")
TEXT_INPUTS, TEXT_OUTPUTS = ("input_ids", "attention_mask"), ("word_embeds", "word_mask", "sentence_embeds")
EXAMPLE_CAPTIONS = ("a dog barks while a car passes by", "rain falling on a tin roof, then thunder")
"""Captions tokenised for the text graph's example inputs (any will do: the length axis is dynamic)."""


class AudioGraph(nn.Module):
    """The audio path of an ASE: waveform [B, samples] -> (frames [B, T, E], clip [B, E]), not normalised."""

    def __init__(self, model: ASE):
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_clips(waveform)


class TextGraph(nn.Module):
    """The text path of an ASE on token ids: (input_ids, attention_mask) [B, L] ->
    (word embeddings [B, L-1, E], word mask [B, L-1], sentence embeddings [B, E]), not normalised."""

    def __init__(self, model: ASE):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.model.text_encoder.text_encoder(input_ids=input_ids,
                                                      attention_mask=attention_mask).last_hidden_state
        word_embeds = self.model.project_words(hidden)
        word_mask = word_mask_from_attention(attention_mask)
        return word_embeds, word_mask, self.model.pool_words(word_embeds, word_mask)


def word_mask_from_attention(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] attention mask of right-padded [CLS] ... [SEP] [PAD]... -> [B, L-1] mask of the words.

    Equals encode_text's `1 - special_tokens_mask[:, 1:]`: position j of the words (token j + 1) is a
    word when token j + 2 is attended, i.e. when token j + 1 is neither the last attended one ([SEP])
    nor padding.
    """
    return F.pad(attention_mask[:, 2:], (0, 1))


def exportable_copy(model: ASE) -> ASE:
    """A CPU, eval-mode copy of `model` with the oneDNN linear layers switched off (see the module doc)."""
    if not isinstance(model, ASE):
        raise TypeError(f"expected an ASE model (models.ase_model.ASE), got {type(model).__name__}; "
                        f"unwrap DDP or compiled models first (models.runtime.unwrap)")
    exportable = copy.deepcopy(model).cpu().eval()
    switched = set_onednn_linear(exportable, False)
    log.debug("switched %d oneDNN linear layers off for export", switched)
    return exportable


def audio_samples(model: ASE) -> int:
    """Samples of the audio graph's input: one 10 s window at the model's sample rate (320000)."""
    return round(WINDOW_SECONDS * model.sample_rate)


def export_audio(model: ASE, path: str | Path, opset: int | None = None) -> dict[str, Any]:
    """Write the audio path of `model` to `path` (one .onnx file); returns its signature (`graph_signature`).

    waveform [B, 320000] float32 at 32 kHz -> frame_embeds [B, 32, E], clip_embeds [B, E] (ASE.encode_clips,
    not normalised). The batch axis is dynamic; the sample axis is fixed at 10 s: bring shorter audio to
    10 s first (models.windowing.prepare_waveform; the project's evaluation tiles it) and cut longer audio
    into windows.
    """
    exportable = exportable_copy(model)
    generator = torch.Generator().manual_seed(0)
    example = 0.1 * torch.randn(2, audio_samples(exportable), generator=generator)
    batch = torch.export.Dim("batch")
    _export(AudioGraph(exportable), (example,), path, AUDIO_INPUTS, AUDIO_OUTPUTS,
            {"waveform": {0: batch}}, opset)
    return graph_signature(path)


def export_text(model: ASE, path: str | Path, opset: int | None = None) -> dict[str, Any]:
    """Write the text path of `model` to `path` (one .onnx file); returns its signature (`graph_signature`).

    input_ids, attention_mask [B, L] int64 (the model's tokenizer: padding="longest", truncation=True,
    max_length=text_encoder_args.max_length) -> word_embeds [B, L-1, E], word_mask [B, L-1] int64,
    sentence_embeds [B, E] (not normalised). Batch and length axes are dynamic (2 <= L <= the tower's
    max_position_embeddings).
    """
    exportable = exportable_copy(model)
    tokens = tokenize(exportable, list(EXAMPLE_CAPTIONS))
    text_config = exportable.text_encoder.text_encoder.config
    length = torch.export.Dim("length", min=2, max=getattr(text_config, "max_position_embeddings", None))
    batch = torch.export.Dim("batch")
    axes = {0: batch, 1: length}
    _export(TextGraph(exportable), (tokens["input_ids"], tokens["attention_mask"]), path, TEXT_INPUTS,
            TEXT_OUTPUTS, {"input_ids": axes, "attention_mask": axes}, opset)
    return graph_signature(path)


def tokenize(model: ASE, captions: list[str]) -> dict[str, torch.Tensor]:
    """Captions -> {"input_ids", "attention_mask"} [B, L] int64, tokenised as the model does (encode_text)."""
    tokens = model.text_encoder.tokenizer(captions, padding="longest", truncation=True,
                                          max_length=model.text_encoder.max_length, return_tensors="pt")
    return {name: tokens[name] for name in TEXT_INPUTS}


def require_export_packages() -> None:
    """Raise ImportError, saying what to install, unless onnx and onnxscript (the exporter's) are importable."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs the packages {missing} (torch.onnx's dynamo exporter): "
                          f"pip install {' '.join(missing)}; onnxruntime runs the graphs")


def _export(graph: nn.Module, example: tuple[torch.Tensor, ...], path: str | Path, input_names: Sequence[str],
            output_names: Sequence[str], dynamic_shapes: dict[str, Any], opset: int | None) -> None:
    check_opset(opset)
    require_export_packages()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # Inputs that share an axis (input_ids, attention_mask) make the exporter warn that the shared
        # name is used once; the names come out as given.
        warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape")
        torch.onnx.export(graph.eval(), example, str(path), dynamo=True, input_names=list(input_names),
                          output_names=list(output_names), dynamic_shapes=dynamic_shapes, opset_version=opset,
                          external_data=False, verbose=False)


def check_opset(opset: int | None) -> None:
    if opset is not None and (not isinstance(opset, int) or opset < MIN_OPSET):
        raise ValueError(f"opset must be an integer >= {MIN_OPSET} (the exporter translates to opset {MIN_OPSET} "
                         f"and cannot convert down), got {opset!r}; leave it out for the exporter's default")


def graph_signature(path: str | Path) -> dict[str, Any]:
    """{"file", "opset", "inputs", "outputs"} of an .onnx file; each input/output as {"name", "dtype",
    "shape"} with named axes as strings ("batch", "length - 1") and fixed ones as integers."""
    import onnx

    graph_proto = onnx.load(str(path), load_external_data=False)
    opset = next((entry.version for entry in graph_proto.opset_import if entry.domain in ("", "ai.onnx")), None)

    def describe(value: Any) -> dict[str, Any]:
        tensor_type = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        shape = [dim.dim_param or dim.dim_value for dim in tensor_type.shape.dim]
        return {"name": value.name, "dtype": dtype, "shape": shape}

    return {"file": Path(path).name, "opset": opset, "inputs": [describe(value) for value in graph_proto.graph.input],
            "outputs": [describe(value) for value in graph_proto.graph.output]}


def export_model(model: ASE, out_dir: str | Path, opset: int | None = None) -> dict[str, Any]:
    """Write out_dir/audio.onnx, out_dir/text.onnx, the tokenizer files and out_dir/signature.json.

    Returns the signature written to signature.json: both graphs' inputs and outputs, the audio's
    sample rate and length, how to tokenise, and that nothing is normalised.
    """
    check_opset(opset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = export_audio(model, out_dir / AUDIO_FILE, opset)
    text = export_text(model, out_dir / TEXT_FILE, opset)
    model.text_encoder.tokenizer.save_pretrained(str(out_dir))
    signature = {
        "embed_size": model.config.embed_size,
        "normalised": False,
        "audio": {**audio, "sample_rate": model.sample_rate, "samples": audio_samples(model)},
        "text": {**text, "tokenizer": {
            "folder": ".", "load": "transformers.AutoTokenizer.from_pretrained(<this folder>)",
            "call": {"padding": "longest", "truncation": True, "max_length": model.text_encoder.max_length},
            "padding_side": "right", "feed": list(TEXT_INPUTS)}},
        "torch": torch.__version__,
    }
    (out_dir / SIGNATURE_FILE).write_text(json.dumps(signature, indent=2) + "\n")
    return signature


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.onnx_export", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint: ours (self-describing) or the released "
                        "model.pt (built as the paper's model)")
    parser.add_argument("--out", required=True, help="output folder (created); audio.onnx, text.onnx, "
                        "tokenizer files and signature.json are written into it")
    parser.add_argument("--opset", type=int, default=None, help=f"ONNX opset (>= {MIN_OPSET}; default: "
                        f"the exporter's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="YAML-dotted override of the config a checkpoint stores (repeatable), e.g. "
                        "text_encoder_args.type=/path/to/bert")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_opset(args.opset)
        require_export_packages()
        ckpt = Path(args.ckpt)
        if not ckpt.is_file():
            raise FileNotFoundError(f"--ckpt {ckpt}: no such file; expected a checkpoint (.pt) written by "
                                    f"pretrain.py, or the released model.pt")
        model = model_from_checkpoint(ckpt, device="cpu", overrides=args.overrides)
    except (ImportError, OSError, ValueError, CheckpointError, CheckpointMismatchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signature = export_model(model, args.out, args.opset)
    for part in ("audio", "text"):
        graph = signature[part]
        print(f"{Path(args.out) / graph['file']}: "
              + ", ".join(f"{value['name']} {value['shape']}" for value in graph["inputs"]) + " -> "
              + ", ".join(f"{value['name']} {value['shape']}" for value in graph["outputs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
