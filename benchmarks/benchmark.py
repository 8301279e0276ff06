"""Speed and memory of MGA-CLAP's training step and audio inference, ours and the reference's own code.

    python -m benchmarks.benchmark --preset paper --batch-size 4 --threads 2 --warmup 1 --repeats 3
    python -m benchmarks.benchmark --preset paper --mode train --reference-checkout /tmp/mgaclap_ref
    python -m benchmarks.benchmark --table ours.json reference.json   # one markdown table from saved runs

What a step is and how time, FLOPs and memory are read: benchmarks/measure.py; the reference's code run from a
checkout: benchmarks/reference_code.py. A table of several runs gives each of our rows the reference's s/clip
and the speed-up under the same preset, mode, device, dtype, batch, threads and clip length. On CPU with
`--mode both` each mode runs in its own subprocess, so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/benchmark.py`: import from the repository root, not benchmarks/
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402

from benchmarks import measure, reference_code  # noqa: E402
from benchmarks.measure import REPO_ROOT, BenchmarkSettings  # noqa: E402

TABLE_HEADER = ("| run | preset | mode | device | dtype | batch | threads | fused attn | clips/s | s/clip "
                "| peak MB | GFLOP/step | TFLOP/s | % GPU bf16 peak | reference s/clip | speed-up vs reference |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
SAME_CONDITIONS = ("preset", "device", "dtype", "batch_size", "audio_seconds")  # and the mode and threads


def subprocess_command(settings: BenchmarkSettings, mode: str, out: Path) -> list[str]:
    """The command that measures one mode of `settings` in a fresh process and writes its report to `out`."""
    single = dataclasses.replace(settings, mode=mode, isolate=False)
    return [sys.executable, "-m", "benchmarks.benchmark", "--settings-json", json.dumps(dataclasses.asdict(single)),
            "--out", str(out), "--quiet"]


def run_mode_in_subprocess(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """Run one mode in a fresh Python process (so its peak RSS is its own); returns its figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.getenv("PYTHONPATH")]))}
        completed = subprocess.run(subprocess_command(settings, mode, out), cwd=REPO_ROOT, env=env,
                                   capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"benchmark subprocess for mode '{mode}' failed (exit {completed.returncode}):\n"
                               f"{completed.stderr[-4000:]}")
        return json.loads(out.read_text())["results"][mode]


def default_label(settings: BenchmarkSettings) -> str:
    """The run's name in tables: which code, and every setting that differs from that code's defaults."""
    if settings.reference_checkout:
        parts = ["reference (real code)"]
    else:
        parts = ["ours"] + [name for name, on in (("no fused attn", not settings.fused_attention),
                                                  ("no oneDNN linear", not settings.onednn_linear),
                                                  ("compile", settings.compile),
                                                  ("channels_last", settings.channels_last)) if on]
    if settings.optimizer_impl != "default" and settings.mode != "infer":
        parts.append(f"{settings.optimizer_impl} Adam")
    if settings.effective_reuse_freed_memory != (not settings.reference_checkout):
        parts.append("reusing freed memory" if settings.effective_reuse_freed_memory else "glibc malloc defaults")
    return ", ".join(parts)


def code_info(settings: BenchmarkSettings) -> dict[str, Any]:
    """Which code a run measured: ours, or the reference's checkout (path, fingerprint of its files, stand-ins)."""
    if not settings.reference_checkout:
        return {"measured": "ours"}
    checkout = reference_code.check_checkout(settings.reference_checkout)
    return {"measured": "reference", "repository": reference_code.REFERENCE_REPOSITORY, "checkout": str(checkout),
            "files_sha256": reference_code.code_fingerprint(checkout),
            "stand_ins_for_unused_imports": reference_code.unused_imports_to_stand_in(),
            "patches": "run time only, see benchmarks/reference_code.py"}


def run_benchmark(**kwargs: Any) -> dict[str, Any]:
    """Run the benchmark; keyword arguments are `BenchmarkSettings` fields. Returns the JSON report:
    `machine`, `settings` (with the switches as run: `effective_*`), `results` ({mode: figures}), `code`."""
    settings = BenchmarkSettings(**kwargs)
    settings.validate()
    settings.label = settings.label or default_label(settings)
    isolate = settings.isolate if settings.isolate is not None else (
        torch.device(settings.device).type == "cpu" and settings.mode == "both")
    machine = measure.machine_info(settings.device)
    results = {mode: run_mode_in_subprocess(settings, mode) if isolate else measure.run_mode(settings, mode)
               for mode in settings.modes()}
    machine["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"machine": machine,
            "settings": {**dataclasses.asdict(settings), "isolate": isolate,
                         "effective_fused_attention": settings.effective_fused_attention,
                         "effective_reuse_freed_memory": settings.effective_reuse_freed_memory,
                         "effective_onednn_linear": settings.effective_onednn_linear},
            "results": results, "code": code_info(settings)}


def conditions(report: dict[str, Any], mode: str) -> tuple[Any, ...]:
    """What must match for two runs to be compared: the mode, the threads and SAME_CONDITIONS."""
    settings = report["settings"]
    return (mode, settings["threads"] or report["machine"]["torch_threads"],
            *(settings.get(name) for name in SAME_CONDITIONS))


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """One row per report and mode; each of our rows with the s/clip of the reference's run of its conditions."""
    reference: dict[tuple[Any, ...], float] = {}
    for report in (report for report in reports if report["settings"].get("reference_checkout")):
        for mode, figures in report["results"].items():
            reference.setdefault(conditions(report, mode), figures["s_per_clip"])
    rows = [TABLE_HEADER]
    for report in reports:
        settings = report["settings"]
        threads = settings["threads"] or report["machine"]["torch_threads"]
        for mode, figures in report["results"].items():
            flops = figures.get("flops_per_step")
            achieved, share = figures.get("achieved_tflops"), figures.get("share_of_bf16_peak")
            reference_s = None if settings.get("reference_checkout") else reference.get(conditions(report, mode))
            cells = [settings["label"], settings["preset"], mode, settings["device"], settings["dtype"],
                     settings["batch_size"], threads, "on" if settings["effective_fused_attention"] else "off",
                     f"{figures['clips_per_s']:.3f}", f"{figures['s_per_clip']:.4f}",
                     f"{figures['peak_memory_mb']:.0f}", f"{flops / 1e9:.1f}" if flops else "-",
                     f"{achieved:.3g}" if achieved else "-", f"{100 * share:.1f}" if share else "-",
                     f"{reference_s:.4f}" if reference_s else "-",
                     f"{reference_s / figures['s_per_clip']:.2f}x" if reference_s else "-"]
            rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The settings' options (benchmarks.measure.BenchmarkSettings) and the options of this command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_setting_arguments(parser)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print one markdown table of saved JSON reports and exit")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)  # a mode's subprocess: every setting at once
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print(markdown_table([json.loads(path.read_text()) for path in args.table]))
        return
    settings = json.loads(args.settings_json) if args.settings_json else measure.settings_from_args(args)
    report = run_benchmark(**settings)
    measure.write_json(report, args.out)
    if not args.quiet:
        machine, code = report["machine"], report["code"]
        print(f"{markdown_table([report])}\nmachine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, "
              f"torch {machine['torch']}" + (f", GPU {machine['gpu']}" if machine["gpu"] else ""))
        if code["measured"] == "reference":
            print(f"code: the reference's, from {code['checkout']} (files sha256 {code['files_sha256']})")


if __name__ == "__main__":
    main()
