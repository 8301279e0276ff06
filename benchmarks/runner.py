"""Running the benchmark: every mode in this process or each in a fresh subprocess, and the JSON report.

On CPU with `--mode both`, each mode runs by default in its own `python -m benchmarks.benchmark`
process, rebuilt from the settings (`settings_to_argv`), so that its peak RSS is its own.
The report says which code was measured (`code`): ours, or the reference's from a checkout
(`--reference-checkout`), with a fingerprint of the reference's files and the run-time patches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.machine import machine_info
from benchmarks.measure import run_mode
from benchmarks.settings import BenchmarkSettings, settings_to_argv

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_mode_in_subprocess(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """Run one mode in a fresh Python process (so its peak RSS is its own); returns its figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        single = dataclasses.replace(settings, mode=mode, isolate=False)
        command = [sys.executable, "-m", "benchmarks.benchmark", *settings_to_argv(single), "--out", str(out),
                   "--quiet"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                          os.environ.get("PYTHONPATH")]))}
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"benchmark subprocess for mode '{mode}' failed (exit {completed.returncode}):\n"
                               f"{completed.stderr[-4000:]}")
        return json.loads(out.read_text())["results"][mode]


def default_label(settings: BenchmarkSettings) -> str:
    """The run's name in tables: which code, and every setting that differs from that code's defaults."""
    if settings.reference_checkout:
        parts = ["reference (real code)"]
    else:
        parts = ["emulated reference" if settings.emulate_reference_overheads else "ours"]
        if not settings.fused_attention and not settings.emulate_reference_overheads:
            parts.append("no fused attn")
        if not settings.onednn_linear and not settings.emulate_reference_overheads:
            parts.append("no oneDNN linear")
        parts += [name for name, on in (("compile", settings.compile), ("channels_last", settings.channels_last))
                  if on]
    if settings.optimizer_impl != "default" and settings.mode != "infer":
        parts.append(f"{settings.optimizer_impl} Adam")
    reuses_by_default = not (settings.emulate_reference_overheads or settings.reference_checkout)
    if settings.effective_reuse_freed_memory != reuses_by_default:
        parts.append("reusing freed memory" if settings.effective_reuse_freed_memory else "glibc malloc defaults")
    return ", ".join(parts)


def code_info(settings: BenchmarkSettings) -> dict[str, Any]:
    """Which code a run measured: ours, or the reference's checkout (path, fingerprint of its files, patches)."""
    if not settings.reference_checkout:
        return {"measured": "emulated reference" if settings.emulate_reference_overheads else "ours"}
    from benchmarks.reference_code import (
        REFERENCE_REPOSITORY,
        check_checkout,
        code_fingerprint,
        unused_imports_to_stand_in,
    )

    checkout = check_checkout(settings.reference_checkout)
    return {"measured": "reference", "repository": REFERENCE_REPOSITORY, "checkout": str(checkout),
            "files_sha256": code_fingerprint(checkout),
            "stand_ins_for_unused_imports": unused_imports_to_stand_in(),
            "patches": "run time only, see benchmarks/reference_code.py"}


def run_benchmark(**kwargs: Any) -> dict[str, Any]:
    """Run the benchmark; keyword arguments are `BenchmarkSettings` fields. Returns the JSON report.

    The report has `machine`, `settings` (with the switches as run: `effective_*`), `results`
    ({mode: figures}) and `code` (which code was measured: `code_info`).
    """
    settings = BenchmarkSettings(**kwargs)
    settings.validate()
    settings.label = settings.label or default_label(settings)
    isolate = settings.isolate
    if isolate is None:
        isolate = torch.device(settings.device).type == "cpu" and settings.mode == "both"
    machine = machine_info(settings.device)
    results = {mode: run_mode_in_subprocess(settings, mode) if isolate else run_mode(settings, mode)
               for mode in settings.modes()}
    machine["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"machine": machine,
            "settings": {**dataclasses.asdict(settings), "isolate": isolate,
                         "effective_fused_attention": settings.effective_fused_attention,
                         "effective_reuse_freed_memory": settings.effective_reuse_freed_memory,
                         "effective_onednn_linear": settings.effective_onednn_linear},
            "results": results,
            "code": code_info(settings)}
