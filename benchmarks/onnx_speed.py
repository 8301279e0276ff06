"""CPU speed of the exported ONNX graphs in onnxruntime against PyTorch, paper-size model.

    python -m benchmarks.onnx_speed                        # export into a temp folder, then time
    python -m benchmarks.onnx_speed --onnx-dir DIR         # reuse (or write once) DIR/audio.onnx, text.onnx
    python -m benchmarks.onnx_speed --json run.json        # also save every time

The model is the `paper` preset (benchmarks.presets: HTS-AT 96/[2,2,6,2], bert-base text tower, E = 1024,
4096 codes) with random weights, exported by models.onnx_export. Both runtimes get `--threads` threads
(torch.set_num_threads; onnxruntime intra_op_num_threads, one inter-op thread) and the same inputs:
- audio: `--audio-batch` 10 s clips at 32 kHz -> frame and clip embeddings (PyTorch: ASE.encode_clips,
  with the model's default CPU fast paths: oneDNN linear layers, batched window attention);
- text: `--text-batch` captions of about 12 words -> word and sentence embeddings, tokenisation included
  on both sides (PyTorch: ASE.encode_text + pool_words; onnxruntime: the tokenizer, then the session).
Each round times PyTorch, then onnxruntime: 1 warm-up call, then `--repeats` timed calls, median kept;
`--rounds` rounds interleave the two so a change of machine load hits both. Reported: the median of the
round medians, and their range. The 1-minute load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.presets import preset_config
from models.ase_model import ASE
from models.onnx_export import AUDIO_FILE, TEXT_FILE, audio_samples, export_audio, export_text, tokenize

SUBJECTS = ("dog", "car", "woman", "bell", "engine", "crowd", "bird", "train")
ACTIONS = ("barks loudly", "passes by slowly", "speaks softly", "rings twice", "starts and idles",
           "cheers and claps", "chirps in the trees", "horn blows far away")
PLACES = ("in a quiet street", "near a busy road", "inside a small room", "under heavy rain")


def captions(count: int) -> list[str]:
    """`count` captions of 12 words: 'a <subject> <action> <place> while a <subject> <action>', cut to 12."""
    texts = []
    for index in range(count):
        words = (f"a {SUBJECTS[index % 8]} {ACTIONS[index % 8]} {PLACES[index % 4]} while a "
                 f"{SUBJECTS[(index + 3) % 8]} {ACTIONS[(index + 5) % 8]}").split()
        texts.append(" ".join(words[:12]))
    return texts


def time_calls(call: Callable[[], Any], repeats: int) -> list[float]:
    """One untimed warm-up call, then `repeats` timed calls (seconds)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ensure_exported(model: ASE, folder: Path) -> dict[str, float]:
    """Export the graphs into `folder` unless they are there; returns the export seconds of each written."""
    seconds = {}
    for name, export in ((AUDIO_FILE, export_audio), (TEXT_FILE, export_text)):
        if not (folder / name).is_file():
            start = time.perf_counter()
            export(model, folder / name)
            seconds[name] = time.perf_counter() - start
    return seconds


def benchmark(model: ASE, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    audio_session, text_session = ort_session(folder / AUDIO_FILE, args.threads), ort_session(
        folder / TEXT_FILE, args.threads)
    waveform = 0.1 * torch.randn(args.audio_batch, audio_samples(model), generator=torch.Generator().manual_seed(0))
    waveform_np = waveform.numpy()
    texts = captions(args.text_batch)
    tokenizer, max_length = model.text_encoder.tokenizer, model.text_encoder.max_length

    def torch_text() -> None:
        _, word_embeds, word_mask = model.encode_text(texts)
        model.pool_words(word_embeds, word_mask)

    def ort_text() -> None:
        tokens = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="np")
        text_session.run(None, {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]})

    calls = {
        ("audio", "pytorch"): lambda: model.encode_clips(waveform),
        ("audio", "onnxruntime"): lambda: audio_session.run(None, {"waveform": waveform_np}),
        ("text", "pytorch"): torch_text,
        ("text", "onnxruntime"): ort_text,
    }
    rounds: dict[str, list[list[float]]] = {f"{path}/{runtime}": [] for path, runtime in calls}
    with torch.no_grad():
        for round_index in range(args.rounds):
            for (path, runtime), call in calls.items():
                times = time_calls(call, args.repeats)
                rounds[f"{path}/{runtime}"].append(times)
                median_ms = statistics.median(times) * 1e3
                print(f"round {round_index + 1}: {path:5s} {runtime:11s} median {median_ms:8.1f} ms")
    length = tokenize(model, texts)["input_ids"].shape[1]
    return {"rounds": rounds, "text_tokens": length}


def summary_table(result: dict[str, Any], args: argparse.Namespace) -> str:
    rows = ["| path | input | PyTorch (ms) | onnxruntime (ms) | speed-up |", "|---|---|---|---|---|"]
    inputs = {"audio": f"{args.audio_batch} x 10 s",
              "text": f"{args.text_batch} captions, {result['text_tokens']} tokens"}
    for path in ("audio", "text"):
        cells = []
        medians = {}
        for runtime in ("pytorch", "onnxruntime"):
            round_medians = [statistics.median(times) * 1e3 for times in result["rounds"][f"{path}/{runtime}"]]
            medians[runtime] = statistics.median(round_medians)
            cells.append(f"{medians[runtime]:.0f} ({min(round_medians):.0f}-{max(round_medians):.0f})")
        rows.append(f"| {path} | {inputs[path]} | {cells[0]} | {cells[1]} | "
                    f"{medians['pytorch'] / medians['onnxruntime']:.2f}x |")
    return "\n".join(rows)


def onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--onnx-dir", type=Path, default=None, help="folder of the exported graphs (written "
                        "when missing); default: a temporary folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--audio-batch", type=int, default=4)
    parser.add_argument("--text-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write every time to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    torch.manual_seed(0)
    model = ASE(preset_config("paper")).eval()
    with tempfile.TemporaryDirectory(prefix="mga_clap_onnx_") as temporary:
        folder = args.onnx_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        export_seconds = ensure_exported(model, folder)
        for name, seconds in export_seconds.items():
            print(f"exported {name} in {seconds:.0f} s")
        result = benchmark(model, folder, args)
    load_after = os.getloadavg()[0]
    print(f"load average after: {load_after:.2f}")
    print(summary_table(result, args))
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {key: str(value) for key, value in vars(args).items()},
                                         "export_seconds": export_seconds, "load_after": load_after,
                                         "torch": torch.__version__, "onnxruntime": onnxruntime_version(),
                                         **result}, indent=1))


if __name__ == "__main__":
    main()
