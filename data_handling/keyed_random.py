"""Random draws of training keyed by where they happen, not by a running generator state.

A training run draws random numbers for each sample (the crop offset of a clip longer than the window) and
for each step (SpecAugment stripes, DropPath masks, dropout). Drawn from a running state (torch's global
RNG, a loader worker's RNG) they depend on everything drawn before them: on how many loader workers share
the batches, on the draws a DataLoader makes when its iterator starts, on the process that was killed and
restarted. Keyed draws depend only on their key, so a run resumed from any checkpoint (a step or an epoch,
any loader workers, ranks, files or shards) draws exactly what the uninterrupted run would have drawn.

- A sample's key is a `DrawKey(seed, epoch, batch_position, slot)`: the run's seed, the epoch (0-based), the
  batch's position in the epoch's batch list over all ranks (see DurationBucketBatchSampler) and the
  sample's slot in its batch. The batch sampler hands it to the dataset as a `SampleDraw(row, key)`.
- `crop_offset(key, excess)` is the crop's first sample, uniform over 0..excess, from
  numpy.random.default_rng([CROP_STREAM, seed, epoch, batch_position, slot]).
- `seed_step_draws(seed, rank, epoch, batch_position)` seeds torch's global RNG (CPU and CUDA) before a
  training step, so the model's own draws in that step are keyed as well.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

CROP_STREAM = 0x63726F70
"""First word of a crop offset's key ('crop'): crops never share a stream with another kind of draw."""
STEP_STREAM = 0x73746570
"""First word of a training step's key ('step')."""


class DrawKey(NamedTuple):
    """Where a training sample is drawn: seed, epoch (0-based), batch position in the epoch (all ranks), slot."""

    seed: int
    epoch: int
    batch_position: int
    slot: int


class SampleDraw(NamedTuple):
    """A dataset row and the key of its random draws (what a keyed batch sampler yields per sample)."""

    row: int
    key: DrawKey


def crop_offset(key: DrawKey, excess: int) -> int:
    """The first sample of a random window in a clip `excess` samples longer than it: uniform over 0..excess."""
    if excess < 0:
        raise ValueError(f"expected excess >= 0 samples, got {excess}")
    return int(np.random.default_rng([CROP_STREAM, *key]).integers(0, excess + 1))


def step_seed(seed: int, rank: int, epoch: int, batch_position: int) -> int:
    """The 63-bit seed of a training step's draws on a rank (its batch_position-th batch of the epoch)."""
    words = np.random.SeedSequence([STEP_STREAM, seed, rank, epoch, batch_position]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seed_step_draws(seed: int, rank: int, epoch: int, batch_position: int) -> None:
    """Seed torch's global RNG (CPU and every CUDA device) for one training step (see step_seed)."""
    torch.manual_seed(step_seed(seed, rank, epoch, batch_position))
