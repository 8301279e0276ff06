"""A batch sampler that groups clips of similar duration, for one process or for DDP.

Each epoch, with a generator seeded by seed + epoch (identical on every rank):
1. clips are put into num_buckets duration buckets whose edges are evenly spaced between min_duration
   and max_duration (shorter clips go to the first bucket, longer ones to the last);
2. the indices of each bucket are shuffled and cut into batches of batch_size; the last batch of a bucket
   may be smaller (drop_last=True drops it);
3. the batches of all buckets are shuffled together, so consecutive batches come from different buckets;
4. the batch list is split between ranks by striding (rank r takes batches r, r + R, r + 2R, ...).
   To give every rank the same number of batches, drop_last=False pads the list by repeating its first
   batches (a few clips are then seen twice in the epoch, on different ranks, as with torch's
   DistributedSampler); drop_last=True drops the last (T mod R) batches instead. When no padding is
   needed, the ranks' batches are disjoint and, with drop_last=False, hold every index exactly once.

Resuming mid-epoch: set_epoch(epoch) and set_start_batch(k) make the next iteration skip this rank's
first k batches of that epoch; the skip applies to one iteration only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def _default_replicas_and_rank(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """torch.distributed's world size and rank when a process group is initialised, else 1 and 0."""
    distributed = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if distributed else 1
    if rank is None:
        rank = dist.get_rank() if distributed else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"expected num_replicas >= 1 and 0 <= rank < num_replicas, "
                         f"got num_replicas={num_replicas}, rank={rank}")
    return num_replicas, rank


class DurationBucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose durations fall in the same bucket (see the module doc).

    Args:
        durations: seconds per dataset index.
        batch_size: indices per batch (per rank).
        num_buckets, min_duration, max_duration: bucket edges = linspace(min_duration, max_duration,
            num_buckets + 1); values outside [min_duration, max_duration) go to the first / last bucket.
        shuffle: shuffle within buckets and the batch order; False keeps index order, bucket by bucket.
        seed: the generator of epoch e is seeded with seed + e; must be the same on all ranks.
        drop_last: drop each bucket's incomplete batch and, under DDP, the batches left over after an
            equal split; False keeps them and pads the batch list by repetition.
        num_replicas, rank: default to torch.distributed's when initialised, else 1 and 0.
    """

    def __init__(self, durations: Sequence[float], batch_size: int, num_buckets: int = 6,
                 min_duration: float = 5.0, max_duration: float = 30.0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, num_replicas: int | None = None, rank: int | None = None) -> None:
        if batch_size < 1 or num_buckets < 1:
            raise ValueError(f"batch_size and num_buckets must be >= 1, got {batch_size} and {num_buckets}")
        if not min_duration < max_duration:
            raise ValueError(f"expected min_duration < max_duration, got {min_duration} and {max_duration}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas, self.rank = _default_replicas_and_rank(num_replicas, rank)
        self.bucket_edges = np.linspace(min_duration, max_duration, num_buckets + 1)  # [num_buckets + 1]
        bucket_of_index = np.searchsorted(self.bucket_edges[1:-1], np.asarray(durations, dtype=np.float64),
                                          side="right")  # [N]
        self.bucket_indices = [np.flatnonzero(bucket_of_index == b) for b in range(num_buckets)]
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields (call it on every rank)."""
        self.epoch = epoch

    def set_start_batch(self, start_batch: int) -> None:
        """Make the next iteration skip this rank's first start_batch batches (resuming mid-epoch)."""
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        self.start_batch = start_batch

    def _batches_in_bucket(self, bucket_size: int) -> int:
        return bucket_size // self.batch_size if self.drop_last else math.ceil(bucket_size / self.batch_size)

    @property
    def total_batches(self) -> int:
        """Batches of one epoch over all ranks, before the equal split (padding or dropping)."""
        return sum(self._batches_in_bucket(len(indices)) for indices in self.bucket_indices)

    def __len__(self) -> int:
        """Batches per rank in a full epoch (whatever set_start_batch says)."""
        if self.drop_last:
            return self.total_batches // self.num_replicas
        return math.ceil(self.total_batches / self.num_replicas)

    def _epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch, in their (shuffled) order, before the split between ranks."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches: list[list[int]] = []
        for indices in self.bucket_indices:
            if self.shuffle:
                indices = indices[torch.randperm(len(indices), generator=generator).numpy()]
            count = self._batches_in_bucket(len(indices))
            batches += [indices[k * self.batch_size:(k + 1) * self.batch_size].tolist() for k in range(count)]
        if self.shuffle:
            batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch: len(self) lists of indices (start_batch ignored)."""
        batches = self._epoch_batches()
        needed = len(self) * self.num_replicas
        if needed > len(batches):  # drop_last=False: pad by repeating from the start
            batches = (batches * math.ceil(needed / len(batches)))[:needed]
        return batches[:needed][self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()[self.start_batch:]
        self.start_batch = 0
        return iter(batches)
