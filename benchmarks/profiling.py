"""`--profile N`: the top operators of one step per mode (torch.profiler), instead of timing."""

from __future__ import annotations

import torch

from benchmarks.measure import synchronize
from benchmarks.settings import BenchmarkSettings
from benchmarks.steps import build_model, make_infer_step, make_train_step
from models.memory import reuse_freed_memory


def profile_step(settings: BenchmarkSettings, mode: str, row_limit: int) -> str:
    """Top operators by self CPU time (and, on CUDA, self CUDA time) of one step after warm-up."""
    from torch.profiler import ProfilerActivity, profile

    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.effective_reuse_freed_memory:
        reuse_freed_memory()
    model = build_model(settings)
    step = make_train_step(model, settings) if mode == "train" else make_infer_step(model, settings)
    for _ in range(max(1, settings.warmup)):
        step()
    activities = [ProfilerActivity.CPU]
    if torch.device(settings.device).type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as profiler:
        step()
        synchronize(settings.device)
    averages = profiler.key_averages()
    tables = averages.table(sort_by="self_cpu_time_total", row_limit=row_limit)
    if torch.device(settings.device).type == "cuda":
        tables += f"\n\ntop {row_limit} by self CUDA time:\n"
        tables += averages.table(sort_by="self_cuda_time_total", row_limit=row_limit)
    return tables
