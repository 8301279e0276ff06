"""A torchrun worker for tests/test_distributed.py: joins the process group with init_distributed, all-reduces;
in the first attempt rank 1 dies with SIGKILL after the first all-reduce; in the second attempt every other rank
joins 3 s after rank 0, so that rank 0 reads the store before they have written their new addresses there.

Whether gloo then fails depends on each pair's connecting side, which it picks by comparing the two addresses
(ports the system draws): with 2 ranks a stale address went unnoticed in 1 run of 4, so the test runs 4 ranks,
where rank 0 meets three stale addresses (without the per-attempt prefix it failed 9 runs of 9)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from tools.train.distributed import cleanup_distributed, init_distributed  # noqa: E402

attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
rank = int(os.environ["RANK"])
if attempt == 1 and rank > 0:
    time.sleep(3)
init_distributed("cpu")
total = torch.ones(1)
dist.all_reduce(total)
if attempt == 0 and rank == 1:
    os.kill(os.getpid(), signal.SIGKILL)
dist.all_reduce(total)  # rank 0 of the first attempt fails here and torchrun restarts both
print(f"attempt {attempt} rank {rank} sum {total.item():g}", flush=True)
cleanup_distributed()
