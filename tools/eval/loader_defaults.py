"""How evaluation reads and batches audio when the YAML says `auto` (eval.batch_size, eval.num_workers): the
best setting of the machine the scripts run on, as measured (docs/scripts_benchmark.md).

- Batch size: on a CPU the model is compute-bound and smaller batches keep its activations in cache: on a
  2-core CPU the paper-size model takes 0.13-0.15 s per clip at batches of 2 or 4 against 0.19-0.22 s at 32
  (`python -m benchmarks.benchmark --preset paper --mode infer --batch-size B`), so `auto` is 4. On a GPU
  the larger batch fills the device: `auto` is 32.
- Loader processes: decoding and resampling a clip costs about 5 % of its model time on a CPU (5-8 ms against
  0.14 s for a 5-10 s clip at 32-44.1 kHz). With two cores or fewer a loader process can only take them
  from torch's two threads: on 2 cores, embedding 40 AudioSet-shaped files took 0.155 s per clip decoding in
  the main process against 0.174 with one loader process (docs/benchmarks.md). `auto` is 0 there, and 1 on larger
  CPUs, where one process keeps up with the decoding on a core of its own. On a GPU the model is much
  faster than decoding: up to 8 processes, one core left to the main process, and pinned memory.

Batch size and loader processes change the wall time only: every protocol gives the same numbers for any
value of either (files are read, padded and cropped per file; tests/test_inference.py checks equality).
"""

from __future__ import annotations

import os

import torch

AUTO = "auto"
CPU_BATCH_SIZE = 4
CUDA_BATCH_SIZE = 32
CUDA_MAX_WORKERS = 8
SMALL_CPU_CORES = 2
"""At or below this many usable cores, `auto` decodes in the main process on a CPU."""


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def explicit_or_auto(value: int | str, key: str, minimum: int) -> int | None:
    """An int >= minimum, or None for 'auto'; anything else is a ValueError naming the key."""
    if value == AUTO:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum} or '{AUTO}', got {value!r}")
    return value


def eval_batch_size(batch_size: int | str, device: torch.device | str) -> int:
    """Audio files per batch: `batch_size` itself, or for 'auto' the device's measured best (CPU 4, GPU 32)."""
    explicit = explicit_or_auto(batch_size, "eval.batch_size", 1)
    if explicit is not None:
        return explicit
    return CUDA_BATCH_SIZE if torch.device(device).type == "cuda" else CPU_BATCH_SIZE


def eval_num_workers(num_workers: int | str, device: torch.device | str, cpus: int | None = None) -> int:
    """Audio loading processes: `num_workers` itself, or for 'auto': on a GPU min(8, cores - 1), at least 1;
    on a CPU 0 with two cores or fewer, else 1."""
    explicit = explicit_or_auto(num_workers, "eval.num_workers", 0)
    if explicit is not None:
        return explicit
    cpus = usable_cpus() if cpus is None else cpus
    if torch.device(device).type == "cuda":
        return max(1, min(CUDA_MAX_WORKERS, cpus - 1))
    return 0 if cpus <= SMALL_CPU_CORES else 1
