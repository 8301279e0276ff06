"""Smoke test of the speed and memory benchmark: the tiny preset runs and reports every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.benchmark import markdown_table, parse_args, run_benchmark, subprocess_command
from benchmarks.measure import BenchmarkSettings, preset_config, settings_from_args
from models.ase_model import ASE
from models.speed import set_fused_attention, window_attentions

REPO_ROOT = Path(__file__).resolve().parent.parent

FIGURES = ("clips_per_s", "s_per_clip", "median_step_s", "peak_memory_mb", "flops_per_step", "achieved_tflops")


def check_report(report: dict, modes: tuple[str, ...]) -> None:
    """Every mode has positive throughput, memory and FLOP figures; the machine and the code are recorded."""
    assert set(report["results"]) == set(modes)
    for mode in modes:
        figures = report["results"][mode]
        for name in FIGURES:
            assert figures[name] is not None and figures[name] > 0, (mode, name, figures[name])
        assert len(figures["step_times_s"]) == 1
    assert report["machine"]["cpu_model"]
    assert report["machine"]["torch"]
    assert report["code"]["measured"] == "ours"
    assert report["settings"]["preset"] == "tiny"
    json.dumps(report)  # JSON-serialisable as written by --out


def test_tiny_preset_both_modes_in_process():
    report = run_benchmark(preset="tiny", batch_size=2, warmup=0, repeats=1, mode="both", device="cpu",
                           isolate=False)
    check_report(report, ("train", "infer"))
    table = markdown_table([report])
    assert table.count("| tiny |") == 2
    assert report["settings"]["effective_onednn_linear"] is True


def test_flop_count_does_not_depend_on_the_linear_kernel():
    flops = {enabled: run_benchmark(preset="tiny", batch_size=2, warmup=0, repeats=1, mode="infer", device="cpu",
                                    isolate=False, onednn_linear=enabled)["results"]["infer"]["flops_per_step"]
             for enabled in (True, False)}
    assert flops[True] == flops[False] > 0


@pytest.mark.slow
def test_tiny_preset_in_a_subprocess():
    """The CLI path: a fresh process per mode, rebuilt from the settings."""
    report = run_benchmark(preset="tiny", batch_size=2, warmup=0, repeats=1, mode="infer", device="cpu",
                           isolate=True, fused_attention=False)
    check_report(report, ("infer",))
    assert report["settings"]["effective_fused_attention"] is False


def test_set_fused_attention_switches_every_window_attention():
    model = ASE(preset_config("tiny"))
    count = set_fused_attention(model, False)
    assert count == sum(len(stage.blocks) for stage in model.audio_encoder.audio_enc.layers)
    assert not any(attention.fused_attn for attention in window_attentions(model))
    set_fused_attention(model, True)
    assert all(attention.fused_attn for attention in window_attentions(model))


def test_training_step_needs_two_clips():
    with pytest.raises(ValueError, match="batch-size >= 2"):
        BenchmarkSettings(preset="tiny", batch_size=1, mode="train").validate()
    BenchmarkSettings(preset="tiny", batch_size=1, mode="infer").validate()


def test_command_line_defaults_are_the_settings_defaults():
    assert BenchmarkSettings(**settings_from_args(parse_args([]))) == BenchmarkSettings()
    args = parse_args([])
    assert (args.reuse_freed_memory, args.isolate, args.count_flops, args.audio_seconds) == (None, None, True, 10.0)
    assert parse_args(["--no-flops", "--seconds", "2.5"]).count_flops is False


def test_a_modes_subprocess_gets_the_same_settings():
    """The command that reruns a mode in a subprocess gives back the same settings, switches flipped or not."""
    changed = BenchmarkSettings(preset="tiny", batch_size=3, device="cuda:1", dtype="bf16", threads=2, warmup=0,
                                repeats=5, mode="infer", fused_attention=False, onednn_linear=False, compile=True,
                                channels_last=True, count_flops=False, optimizer_impl="for-loop", isolate=False,
                                reuse_freed_memory=True, audio_seconds=2.5, caption_words=7, seed=3, label="a run")
    for settings in (BenchmarkSettings(), changed):
        command = subprocess_command(settings, "infer", Path("out.json"))
        assert command[1:3] == ["-m", "benchmarks.benchmark"]
        rebuilt = BenchmarkSettings(**json.loads(parse_args(command[3:]).settings_json))
        assert rebuilt == BenchmarkSettings(**{**settings.__dict__, "mode": "infer", "isolate": False})


ALLOCATION_PATTERN = """
import ctypes, resource, sys
import torch
from models.memory import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = reuse_freed_memory() if sys.argv[1] == "on" else False
first = torch.ones(5 * 2**20)  # 20 MB, the size of a paper-size step's larger activations
mmapped_mb = libc.mallinfo2().hblkhd / 2**20
del first

def step_page_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    live = [torch.ones(5 * 2**20) for _ in range(8)]  # 160 MB alive at once, then freed, as in a step
    del live
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults = [step_page_faults() for _ in range(6)]
print(applied, round(mmapped_mb), libc.mallinfo2().arena // 2**20, faults[-1])
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")
def test_reuse_freed_memory_keeps_tensor_memory_for_the_next_step():
    def run(mode: str) -> tuple[str, int, int, int]:
        result = subprocess.run([sys.executable, "-c", ALLOCATION_PATTERN, mode], cwd=REPO_ROOT, capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        if result.returncode != 0:
            pytest.skip(f"not glibc >= 2.33 (mallinfo2): {result.stderr.strip().splitlines()[-1]}")
        applied, mmapped_mb, heap_mb, last_faults = result.stdout.split()
        return applied, int(mmapped_mb), int(heap_mb), int(last_faults)

    applied, mmapped_mb, heap_mb, last_faults = run("on")
    _, default_mmapped_mb, _, _ = run("off")
    assert applied == "True"
    assert default_mmapped_mb >= 20  # glibc's default: a fresh mmap (and page faults) for a 20 MB tensor
    assert mmapped_mb <= default_mmapped_mb - 20, "with the setting it should come from the heap"
    assert heap_mb >= 160, "freed memory should stay in the heap"
    assert last_faults < 1000, "a repeated step should touch no new pages"
