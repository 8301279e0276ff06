"""What `embed_audio_files` costs beyond the model's forward passes, with and without a loader process.

    python -m benchmarks.embedding_overhead [--preset paper|tiny] [--files 40] [--rounds 3] [--batch-size 4]
                                            [--workdir /tmp/mga_clap_suite]

On `--files` AudioSet-shaped clips (10 s FLAC at 32 kHz, benchmarks.script_suite.make_sed, written once into
<workdir>/overhead_<files>/) and the suite's random-weight checkpoint, interleaved rounds of: the model alone on clips decoded beforehand
(`tools.eval.embedding._encode_items`, batch by batch), then `embed_audio_files` decoding in the main process
(num_workers 0) and with one loader process (num_workers 1). Prints seconds per clip of each round and the
medians: the difference between the first and the others is loading, decoding and what a loader process
takes from torch's threads; and the seconds of each batch of the process's first pass over the clips (its
warm-up, before the rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.script_suite import DEFAULT_WORKDIR, make_checkpoint, make_sed


def measure(preset: str, num_files: int, rounds: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    import torch

    from models.factory import model_from_checkpoint
    from models.memory import reuse_freed_memory
    from tools.eval.embedding import AudioFileDataset, _encode_items, embed_audio_files

    reuse_freed_memory()  # as the scripts do
    model = model_from_checkpoint(make_checkpoint(workdir, preset), device="cpu")
    audio = make_sed(workdir / f"overhead_{num_files}", num_files) / "audio" / "AudioSet_SL_eval"
    paths = sorted(audio.glob("*.flac"))
    dataset = AudioFileDataset(paths, model.sample_rate, "tile", long_audio="cut")
    decoded = [dataset[index] for index in range(len(dataset))]
    device = torch.device("cpu")

    def model_only() -> None:
        with torch.no_grad():
            for start in range(0, len(decoded), batch_size):
                _encode_items(model, decoded[start:start + batch_size], device, 10.0)

    cases = {
        "model on decoded clips": model_only,
        "embed_audio_files, decoding in the main process": lambda: embed_audio_files(
            model, paths, "cpu", batch_size, 0, pad_mode="tile", long_audio="cut"),
        "embed_audio_files, one loader process": lambda: embed_audio_files(
            model, paths, "cpu", batch_size, 1, pad_mode="tile", long_audio="cut"),
    }
    first_pass = []                      # the process's first forward passes, batch by batch (the warm-up)
    with torch.no_grad():
        for start in range(0, len(decoded), batch_size):
            began = time.perf_counter()
            _encode_items(model, decoded[start:start + batch_size], device, 10.0)
            first_pass.append(time.perf_counter() - began)
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            seconds[name].append((time.perf_counter() - start) / len(paths))
    result: dict[str, Any] = {name: {"s_per_clip": values, "median": statistics.median(values)}
                              for name, values in seconds.items()}
    return {**result, "first_pass_s_per_batch": first_pass}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    args = parser.parse_args(argv)
    result = measure(args.preset, args.files, args.rounds, args.batch_size, Path(args.workdir))
    print("| | s per clip, each round | median |\n|---|---|---|")
    for name, values in result.items():
        if name != "first_pass_s_per_batch":
            print(f"| {name} | {', '.join(f'{value:.3f}' for value in values['s_per_clip'])} | "
                  f"{values['median']:.3f} |")
    print("first forward passes of the process (warm-up), s per batch:",
          ", ".join(f"{value:.3f}" for value in result["first_pass_s_per_batch"]))
    return result


if __name__ == "__main__":
    main()
