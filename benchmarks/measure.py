"""Measuring one mode in this process: step times, FLOPs, peak memory, and the figures derived from them.

Timing: `warmup` untimed steps, then `repeats` timed steps; the median step time is reported, with
the minimum, every step time and the process CPU time per step. FLOPs of one step come from
torch.utils.flop_counter.FlopCounterMode (matmuls, convs, attention; forward and backward). Peak
memory is torch.cuda.max_memory_allocated on CUDA, the process's peak RSS on CPU (benchmarks.machine).
The model measured is ours or, with `--reference-checkout`, the reference's (benchmarks.steps); the
comparison of the two is a table of both runs (benchmarks.report), not a figure quoted here.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.machine import peak_cpu_memory_mb, proc_status_mb
from benchmarks.settings import BenchmarkSettings
from benchmarks.steps import build_model, import_model_code, make_infer_step, make_train_step
from models.memory import reuse_freed_memory

# Dense (no sparsity) bf16 tensor-core peak in TFLOP/s from the vendors' data sheets. The first
# entry whose key is in torch.cuda.get_device_name() wins, so more specific names come first.
GPU_PEAK_BF16_TFLOPS = (
    ("H200", 989.0),      # H200 SXM (and GH200): same tensor cores as H100 SXM
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),      # H100 SXM (reported e.g. as "NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("V100", 125.0),      # fp16 tensor cores (V100 has no bf16)
)


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], settings: BenchmarkSettings) -> tuple[list[float], list[float]]:
    """Run `warmup` untimed steps, then `repeats` timed ones; returns their wall and process CPU times (s).

    The CPU time (all threads of this process) is less sensitive than the wall time to other
    processes competing for the cores; on an idle machine it is about threads x wall time.
    """
    for _ in range(settings.warmup):
        step()
    synchronize(settings.device)
    wall_times, cpu_times = [], []
    for _ in range(settings.repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        synchronize(settings.device)
        wall_times.append(time.perf_counter() - start_wall)
        cpu_times.append(time.process_time() - start_cpu)
    return wall_times, cpu_times


def count_step_flops(step: Callable[[], None]) -> int:
    """FLOPs of one step as counted by FlopCounterMode (forward and backward matmuls, convs, SDPA).

    torch's table has no entry for the CPU flash-attention kernels nor for oneDNN's linear
    (models.onednn_linear); they are added here (torch's own SDPA formulas; 2 * M * K * N for a
    linear), so every kernel choice counts the same FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def cpu_flash(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)

    def cpu_flash_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    def onednn_linear(x_shape: Any, weight_shape: Any, *args: Any, **kwargs: Any) -> int:
        return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * weight_shape[0]

    aten = torch.ops.aten
    custom = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash,
              aten._scaled_dot_product_flash_attention_for_cpu_backward: cpu_flash_backward}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        custom[torch.ops.mkldnn._linear_pointwise] = onednn_linear
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    with counter:
        step()
    return int(counter.get_total_flops())


def gpu_peak_bf16_tflops(name: str) -> float | None:
    for key, peak in GPU_PEAK_BF16_TFLOPS:
        if key in name:
            return peak
    return None


def run_mode(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """Build the model and measure one mode in this process; returns that mode's figures."""
    torch.manual_seed(settings.seed)
    if settings.effective_reuse_freed_memory:
        reuse_freed_memory()  # process-wide and permanent: isolated runs (the CPU default) measure it alone
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return measure_mode(settings, mode)
    finally:
        torch.set_num_threads(previous_threads)


def measure_mode(settings: BenchmarkSettings, mode: str) -> dict[str, Any]:
    """`run_mode` after the thread setting: import the model's code, build, time, read peak memory, count FLOPs.

    `rss_at_start_mb` is read after the model's code is imported (for the reference, with the
    packages its model module imports), before the model is built.
    """
    is_cuda = torch.device(settings.device).type == "cuda"
    if is_cuda:
        torch.cuda.reset_peak_memory_stats(settings.device)
    import_model_code(settings)
    rss_at_start = proc_status_mb("VmRSS")
    model = build_model(settings)
    step = make_train_step(model, settings) if mode == "train" else make_infer_step(model, settings)
    rss_after_build = proc_status_mb("VmRSS")
    times, cpu_times = time_steps(step, settings)
    if is_cuda:
        peak_mb = torch.cuda.max_memory_allocated(settings.device) / 2**20
    else:
        peak_mb = peak_cpu_memory_mb()
    flops = count_step_flops(step) if settings.count_flops and not settings.compile else None
    figures = mode_figures(settings, mode, times, peak_mb, rss_after_build, flops)
    figures["process_cpu_s_per_step"] = statistics.median(cpu_times)
    figures["rss_at_start_mb"] = rss_at_start
    return figures


def mode_figures(settings: BenchmarkSettings, mode: str, times: list[float], peak_mb: float,
                 rss_after_build: float | None, flops: int | None) -> dict[str, Any]:
    """Throughput, memory and FLOP figures of one mode as a JSON-ready dict."""
    median = statistics.median(times)
    figures: dict[str, Any] = {
        "clips_per_s": settings.batch_size / median, "s_per_clip": median / settings.batch_size,
        "median_step_s": median, "min_step_s": min(times), "step_times_s": times, "peak_memory_mb": peak_mb,
        "memory_measure": "cuda_max_memory_allocated" if settings.device.startswith("cuda") else "process_peak_rss",
        "rss_after_model_build_mb": rss_after_build, "flops_per_step": flops,
        "achieved_tflops": flops / median / 1e12 if flops else None,
    }
    if settings.device.startswith("cuda"):
        peak = gpu_peak_bf16_tflops(torch.cuda.get_device_name(settings.device))
        figures["gpu_peak_bf16_tflops"] = peak
        figures["share_of_bf16_peak"] = figures["achieved_tflops"] / peak if peak and flops else None
    return figures

