"""A batch sampler that groups clips of similar duration, for one process or for DDP.

Buckets come from explicit edges e_1 < ... < e_k (durations in seconds, from the json): bucket 0 is
d < e_1, bucket j is e_j <= d < e_{j+1}, bucket k is d >= e_k, so k edges make k + 1 buckets. The
reference's edges 5, 10, 15, 20, 25, 30 (numpy.linspace(5, 30, 6)) give 7 buckets: < 5, [5, 10), ...,
[25, 30), >= 30; a clip of exactly 5.0 s is in [5, 10).

Each epoch, with a generator seeded by seed + epoch (identical on every rank):
1. the indices of each bucket are shuffled and cut into batches of batch_size; drop_last=True (the
   reference) drops each bucket's incomplete last batch, so an epoch has sum_k floor(n_k / batch_size)
   batches; drop_last=False keeps it (sum_k ceil(n_k / batch_size) batches);
2. the batches of all buckets are shuffled together, so consecutive batches come from different buckets;
3. the batch list is split between ranks by striding (rank r takes batches r, r + R, r + 2R, ...).
   Every rank gets the same number of batches: drop_last=True drops the last (T mod R) batches of the
   list; drop_last=False pads it by repeating its first batches (a few clips are then seen twice in the
   epoch, on different ranks, as with torch's DistributedSampler). When no padding is needed the
   ranks' batches are disjoint.

Resuming mid-epoch: set_epoch(epoch) and then set_start_batch(k) make the iterations skip this rank's
first k batches of that epoch, until the next set_epoch (a DataLoader with workers iterates its batch
sampler twice when it starts; both must skip).

Keyed draws: with draw_keys=True each batch is a list of `SampleDraw(row, DrawKey(seed, epoch, position,
slot))` (data_handling/keyed_random.py), where position is the batch's place in the epoch's batch list over
all ranks (rank r's k-th batch is r + k R) and slot the row's place in the batch: the dataset draws the
sample's crop from that key, so the draws of a batch are the same whichever rank, loader worker or resumed
run reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from data_handling.keyed_random import DrawKey, SampleDraw

REFERENCE_BUCKET_EDGES = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
"""The reference's duration bucket edges in seconds (7 buckets)."""


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


def check_bucket_edges(edges: Sequence[float]) -> np.ndarray:
    """The edges as float64 [k]; raises ValueError unless they are finite and strictly increasing."""
    array = np.asarray(list(edges), dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all() or np.any(np.diff(array) <= 0):
        raise ValueError(f"duration bucket edges must be finite seconds in strictly increasing order, e.g. "
                         f"{list(REFERENCE_BUCKET_EDGES)}; got {list(edges)}")
    return array


def duration_bucket_ids(durations: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """int64 [N]: the bucket of each duration, 0 .. len(edges) (see the module docstring)."""
    return np.searchsorted(check_bucket_edges(edges), np.asarray(durations, dtype=np.float64), side="right")


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """Readable names of the len(edges) + 1 buckets, e.g. ['<5', '5-10', ..., '>=30'] (a-b means [a, b))."""
    values = [f"{edge:g}" for edge in check_bucket_edges(edges)]
    if not values:
        return ["all"]
    return [f"<{values[0]}"] + [f"{low}-{high}" for low, high in zip(values, values[1:], strict=False)] \
        + [f">={values[-1]}"]


def duration_histogram(durations: Sequence[float], edges: Sequence[float]) -> dict[str, int]:
    """Durations per bucket, keyed by bucket_labels (every bucket, also the empty ones), in bucket order."""
    counts = np.bincount(duration_bucket_ids(durations, edges), minlength=len(edges) + 1)
    return dict(zip(bucket_labels(edges), counts.tolist(), strict=True))


class DurationBucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose durations fall in the same bucket (see the module doc).

    Args:
        durations: seconds per dataset index.
        batch_size: indices per batch (per rank).
        bucket_edges: strictly increasing seconds; k edges make k + 1 buckets. Default: the reference's.
        shuffle: shuffle within buckets and the batch order; False keeps index order, bucket by bucket.
        seed: the generator of epoch e is seeded with seed + e; must be the same on all ranks.
        drop_last: True (the reference) drops each bucket's incomplete batch and, under DDP, the
            batches left over after an equal split; False keeps them and pads the batch list by repetition.
        num_replicas, rank: default to torch.distributed's when initialised, else 1 and 0.
        draw_keys: yield SampleDraw(row, key) per sample instead of the row alone (see the module doc).
    """

    def __init__(self, durations: Sequence[float], batch_size: int,
                 bucket_edges: Sequence[float] = REFERENCE_BUCKET_EDGES, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True, num_replicas: int | None = None, rank: int | None = None,
                 draw_keys: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.draw_keys = draw_keys
        self.num_replicas, self.rank = _default_replicas_and_rank(num_replicas, rank)
        self.bucket_edges = check_bucket_edges(bucket_edges)  # [k]
        bucket_of_index = duration_bucket_ids(durations, self.bucket_edges)  # [N]
        self.bucket_indices = [np.flatnonzero(bucket_of_index == b) for b in range(len(self.bucket_edges) + 1)]
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the iterations yield (call it on every rank); no batch is skipped."""
        self.epoch = epoch
        self.start_batch = 0

    def set_start_batch(self, start_batch: int) -> None:
        """Make the iterations skip this rank's first start_batch batches of the epoch, until set_epoch."""
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        self.start_batch = start_batch

    def _batches_in_bucket(self, bucket_size: int) -> int:
        return bucket_size // self.batch_size if self.drop_last else math.ceil(bucket_size / self.batch_size)

    @property
    def bucket_sizes(self) -> list[int]:
        """Indices per bucket (len(bucket_edges) + 1 values)."""
        return [len(indices) for indices in self.bucket_indices]

    @property
    def total_batches(self) -> int:
        """Batches of one epoch over all ranks, before the equal split (padding or dropping)."""
        return sum(self._batches_in_bucket(size) for size in self.bucket_sizes)

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

    def __iter__(self) -> Iterator[list[int]] | Iterator[list[SampleDraw]]:
        batches = self.rank_batches()[self.start_batch:]
        if not self.draw_keys:
            return iter(batches)
        positions = range(self.rank + self.start_batch * self.num_replicas, len(self) * self.num_replicas,
                          self.num_replicas)
        return iter([[SampleDraw(row, DrawKey(self.seed, self.epoch, position, slot)) for slot, row in enumerate(batch)]
                     for position, batch in zip(positions, batches, strict=True)])
