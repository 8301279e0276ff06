"""Smoke test of the speed and memory benchmark: the tiny preset runs and reports every figure."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.benchmark import (
    BenchmarkSettings,
    build_model,
    install_reference_overheads,
    markdown_table,
    preset_config,
    random_batch,
    reference_speedup,
    run_benchmark,
)
from models.ase_model import ASE
from models.speed import set_fused_attention, window_attentions

FIGURES = ("clips_per_s", "s_per_clip", "median_step_s", "peak_memory_mb", "flops_per_step", "achieved_tflops")


def check_report(report: dict, modes: tuple[str, ...]) -> None:
    """Every mode has positive throughput, memory and FLOP figures; machine and reference are recorded."""
    assert set(report["results"]) == set(modes)
    for mode in modes:
        figures = report["results"][mode]
        for name in FIGURES:
            assert figures[name] is not None and figures[name] > 0, (mode, name, figures[name])
        assert len(figures["step_times_s"]) == 1
        assert figures["speedup_vs_reference"] is None  # tiny is not the reference's setting
    assert report["machine"]["cpu_model"]
    assert report["machine"]["torch"]
    assert report["reference"]["reference_s_per_clip"] == {"train": 0.9, "infer": 0.17}
    assert report["settings"]["preset"] == "tiny"
    json.dumps(report)  # JSON-serialisable as written by --out


def test_tiny_preset_both_modes_in_process():
    report = run_benchmark(preset="tiny", batch_size=2, warmup=0, repeats=1, mode="both", device="cpu",
                           isolate=False)
    check_report(report, ("train", "infer"))
    table = markdown_table([report])
    assert table.count("| tiny |") == 2


@pytest.mark.slow
def test_tiny_preset_in_a_subprocess_with_reference_overheads():
    """The CLI path (a fresh process per mode) and the emulated-reference hooks both run."""
    report = run_benchmark(preset="tiny", batch_size=2, warmup=0, repeats=1, mode="infer", device="cpu",
                           isolate=True, emulate_reference_overheads=True)
    check_report(report, ("infer",))
    assert report["settings"]["effective_fused_attention"] is False


def test_reference_overhead_hooks_add_work_but_keep_the_numbers():
    """The emulation changes cost only: frame and clip features stay the same, fused attention goes off."""
    settings = BenchmarkSettings(preset="tiny", batch_size=1, audio_seconds=2.0)
    torch.manual_seed(0)
    model = build_model(settings).eval()
    audio, _, _ = random_batch(settings, model.sample_rate)
    with torch.no_grad():
        clip_before, frames_before = model.encode_audio(audio)
        handles = install_reference_overheads(model)
        clip_after, frames_after = model.encode_audio(audio)
    assert len(handles) > 4
    assert not any(attention.fused_attn for attention in window_attentions(model))
    torch.testing.assert_close(frames_after, frames_before, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(clip_after, clip_before, rtol=1e-4, atol=1e-5)


def test_speed_up_is_given_only_for_the_reference_settings():
    matching = BenchmarkSettings(preset="paper", batch_size=4, threads=2, dtype="float32", device="cpu")
    assert reference_speedup(matching, "train", 0.45) == pytest.approx(2.0)
    other = BenchmarkSettings(preset="paper", batch_size=8, threads=2)
    assert reference_speedup(other, "train", 0.45) is None


def test_set_fused_attention_switches_every_window_attention():
    model = ASE(preset_config("tiny"))
    count = set_fused_attention(model, False)
    assert count == sum(len(stage.blocks) for stage in model.audio_encoder.audio_enc.layers)
    assert not any(attention.fused_attn for attention in window_attentions(model))
    set_fused_attention(model, True)
    assert all(attention.fused_attn for attention in window_attentions(model))
