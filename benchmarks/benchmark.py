"""Speed and memory benchmark of MGA-CLAP: training step, audio inference, peak memory.

Run from the repository root (`python benchmarks/benchmark.py ...` works the same):

    python -m benchmarks.benchmark --preset paper --batch-size 4 --threads 2 --warmup 1 --repeats 3
    python -m benchmarks.benchmark --preset paper --mode train --reference-checkout /tmp/mgaclap_ref
    python -m benchmarks.benchmark --table ours.json reference.json   # one markdown table from saved runs

What is measured (random inputs, weights randomly initialised: speed does not depend on them):
- train: clips/s of a full step on a batch of random 10 s clips and random ~12-word captions:
  `loss = model(audio, captions, idx)`, backward, Adam step, zero_grad (train mode, SpecAugment on).
  `--optimizer-impl` picks torch's Adam kernel; the default is the project's optimiser
  (`tools.train.optim.build_optimizer`: Adam, fused kernel), "for-loop" is torch's plain Adam as the reference
  used it (the single-tensor loop on CPU).
- infer: clips/s of `encode_audio` + `msc` (frame and clip embeddings), eval mode, `torch.no_grad`
  (without HTS-AT's unused pooled clip feature, as tools/eval/embedding.py; the emulation computes it).
- peak memory: on CPU the process's peak resident set size (VmHWM in /proc/self/status, else
  getrusage). VmHWM is process-wide and never decreases, so with `--mode both` on CPU each mode runs
  in its own fresh subprocess; the figure includes the Python/torch runtime, the model, the optimiser
  state and the activations. On CUDA: torch.cuda.max_memory_allocated for the mode.
- the process allocator: like pretrain.py and the scripts, the benchmark first calls
  `models.memory.reuse_freed_memory` (glibc keeps freed tensor memory instead of unmapping it);
  `--no-reuse-freed-memory` measures glibc's defaults, which the reference and its emulation keep.
- FLOPs of one step (torch.utils.flop_counter.FlopCounterMode, matmuls/convs/attention, forward and
  backward) and the achieved FLOP/s; on CUDA also the share of the GPU's dense bf16 peak
  (`GPU_PEAK_BF16_TFLOPS`; a float32 run is compared with the same bf16 peak).

Timing: `warmup` untimed steps, then `repeats` timed steps; the median step time is reported (the
JSON also has the minimum and every step time, and the process CPU time per step). Wall times are
only comparable on an otherwise idle machine: other processes on the same cores slow a run down
by up to several times (benchmarks/RESULTS.md says how its figures were protected from that).

The reference, measured: `--reference-checkout PATH` runs the same steps on the reference's own
code (Ming-er/MGA-CLAP) imported from a checkout at PATH, with run-time patches only (a CPU device
for its sparsemax, its BERT built from bert-base-uncased's config and its tokenizer class read from
a local uncased vocabulary, stand-ins for imports its model never uses; benchmarks/reference_code.py
lists them and why none changes the cost). Its training step is pretrain.py's (its Adam from its
tools/optim_utils.py), its inference example.py's audio path (`encode_audio` + `msc`, eval, no_grad).
It runs with glibc's malloc defaults, as the reference did; our switches (fused attention, oneDNN,
compile, channels-last) do not apply to it. Presets paper and tiny. `--table ours.json
reference.json` puts both runs in one table, each row of ours with the reference's s/clip of the
same preset, mode, device, dtype, batch, threads and clip length, and the speed-up.
`--emulate-reference-overheads` is an older APPROXIMATION of the reference on our code, for when no
checkout is at hand: it switches fused attention, the oneDNN linear layers and the allocator setting
off, uses torch's for-loop Adam and, through forward hooks, adds the extra work the reference does
(the LAB value path in every Swin block, attention maps collected and averaged per stage in eval
mode, the tscam/head tagging output computed and discarded, a conv1d STFT with two 513 x 1024
kernels whose log-mel replaces ours; torch.stft still runs). The reference's other differences
(its training loop, fp16 autocast on GPU, its sparsemax, ...) are not emulated: prefer the real code.

Code: benchmarks/settings.py (the options), presets.py (model sizes), steps.py (model and steps),
reference_code.py (the reference's code from a checkout), reference_overheads.py (the emulation's
hooks), measure.py (timing, FLOPs, figures), machine.py (memory and machine probes), runner.py
(modes in process or in subprocesses, the JSON report), report.py (tables), profiling.py
(--profile); this file is the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if not __package__:  # run as `python benchmarks/benchmark.py`: import from the repository root, not benchmarks/
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from benchmarks.profiling import profile_step
from benchmarks.report import markdown_table, summary_lines
from benchmarks.runner import run_benchmark
from benchmarks.settings import BenchmarkSettings, add_setting_arguments, settings_from_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The settings' options (benchmarks.settings) and the options of this command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_arguments(parser)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="instead of timing, print the top N operators of one step per mode")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print one markdown table of saved JSON reports and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print(markdown_table([json.loads(path.read_text()) for path in args.table]))
        return
    if args.profile:
        settings = BenchmarkSettings(**settings_from_args(args))
        settings.validate()
        for mode in settings.modes():
            print(f"## {mode}: top {args.profile} operators by self CPU time\n")
            print(profile_step(settings, mode, args.profile))
        return
    report = run_benchmark(**settings_from_args(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    if not args.quiet:
        print(markdown_table([report]))
        print("\n".join(summary_lines(report)))


if __name__ == "__main__":
    main()
