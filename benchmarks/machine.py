"""What the process and the machine report: peak and current memory of this process, CPU, GPU, versions.

Peak memory on CPU is the process's peak resident set size (VmHWM in /proc/self/status, else
getrusage). VmHWM is process-wide and never decreases, which is why each mode of a CPU run gets
its own subprocess (benchmarks.runner).
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import torch


def proc_status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (VmHWM, VmRSS) in MB, or None where there is none."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def peak_cpu_memory_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM, else getrusage's ru_maxrss)."""
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max_rss / (1024 * 1024) if sys.platform == "darwin" else max_rss / 1024


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, cores, torch version and (when a CUDA device is used) the GPU's name."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(), "gpu": None,
        "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
