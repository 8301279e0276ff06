"""Process-wide memory setting: glibc keeps freed tensor memory for reuse (on Linux; elsewhere a no-op).

Called at start-up by pretrain.py, the zero-shot scripts, example.py, the benchmark and the synthetic
corpus's worker processes. It changes no number, only where freed memory goes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
_TRIM_THRESHOLD = 2**30


def reuse_freed_memory() -> bool:
    """Keep freed tensor memory in the process for reuse (glibc on Linux; elsewhere a no-op).

    By default glibc serves every allocation above 128 KB-32 MB with a fresh mmap and unmaps it when
    freed, so each CPU step of the paper-size model touches ~120 MB of new pages (about 30,000 page
    faults per inference step at batch 4) and zeroes them in the kernel. With allocations up to 32 MB
    taken from the heap (M_MMAP_THRESHOLD) and up to 1 GB of freed heap kept (M_TRIM_THRESHOLD), the
    same memory is reused from step to step: no page faults after the first steps, 25-30 % less CPU
    time per step (benchmarks/RESULTS.md). Numbers are unchanged. Returns True when applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    if not applied:
        log.debug("mallopt refused the allocator settings; continuing with the defaults")
    return applied
