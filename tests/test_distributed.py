"""Distributed training on CPU with gloo: the gathered loss equals the single-process loss on the global batch;
torchrun's restarted attempts join under a store prefix of their own. A two-process torchrun training run (only
rank 0 writes) is tests/test_exact_resume.py's torchrun test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from models.losses import ContrastiveLoss
from tests.warm_python import run_python, run_ranks, warm_stand_ins

REPO = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
PER_RANK = 3
RESTARTED_RANKS = 4


def global_batch(kind: str):
    generator = torch.Generator().manual_seed(0)
    audio = F.normalize(torch.randn(WORLD_SIZE * PER_RANK, 8, generator=generator, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(WORLD_SIZE * PER_RANK, 8, generator=generator, dtype=torch.float64), dim=-1)
    idx = torch.tensor([0, 1, 2, 2, 3, 4])  # a repeated clip id crosses the rank boundary
    return audio, text, idx


def rank_worker(rank: int, kind: str, out_dir: str) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        audio, text, idx = global_batch(kind)
        part = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        local_audio = audio[part].clone().requires_grad_(True)
        local_text = text[part].clone().requires_grad_(True)
        criterion = ContrastiveLoss(kind, embed_regularization=True, gather_across_ranks=True)
        loss = criterion(local_audio, local_text, idx[part], torch.tensor(0.07, dtype=torch.float64))
        loss.backward()
        torch.save({"loss": loss.detach(), "audio_grad": local_audio.grad, "text_grad": local_text.grad},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hard_negative", "infonce"])
def test_gathered_loss_and_gradients_equal_single_process(kind, tmp_path):
    run_ranks(rank_worker, (kind, str(tmp_path)), WORLD_SIZE)
    audio, text, idx = global_batch(kind)
    audio.requires_grad_(True)
    text.requires_grad_(True)
    criterion = ContrastiveLoss(kind, embed_regularization=True)
    loss = criterion(audio, text, idx, torch.tensor(0.07, dtype=torch.float64))
    loss.backward()
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        part = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        torch.testing.assert_close(result["loss"], loss.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(result["audio_grad"], audio.grad[part], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(result["text_grad"], text.grad[part], rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_a_process_restarted_by_torchrun_joins_the_new_attempt_not_the_dead_one():
    """torchrun keeps one store across --max-restarts attempts: without a prefix per attempt the restarted rank 0
    reads the killed rank's old address and gloo fails ("connectFullMesh failed ... Connection refused") or
    waits until the time-out (tests/restart_attempt_worker.py)."""
    with warm_stand_ins(timeout=60) as warm:  # hung workers are killed after 60 s
        try:
            result = run_python(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                 str(RESTARTED_RANKS), "--max-restarts", "1", *warm,
                                 str(REPO / "tests" / "restart_attempt_worker.py")], timeout=60)
        except subprocess.TimeoutExpired as error:
            pytest.fail(f"torchrun hung for 60 s: {error.stderr[-3000:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    total = RESTARTED_RANKS ** 2  # two all-reduces of ones
    assert all(f"attempt 1 rank {rank} sum {total}" in result.stdout for rank in range(RESTARTED_RANKS)), result.stdout
