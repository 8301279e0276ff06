"""DurationBucketBatchSampler: coverage, bucketing, epochs, DDP split, resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_handling.samplers import DurationBucketBatchSampler


def random_durations(count: int = 203, seed: int = 0) -> list[float]:
    """Durations from 1 to 40 s, so some fall below min_duration and some above max_duration."""
    return np.random.default_rng(seed).uniform(1.0, 40.0, count).tolist()


def bucket_of(duration: float, edges: np.ndarray) -> int:
    return int(np.clip(np.searchsorted(edges, duration, side="right") - 1, 0, len(edges) - 2))


def test_every_index_once_per_epoch():
    durations = random_durations()
    sampler = DurationBucketBatchSampler(durations, batch_size=8)
    indices = [index for batch in sampler for index in batch]
    assert sorted(indices) == list(range(len(durations)))
    assert len(list(sampler)) == len(sampler)


def test_batches_hold_one_bucket():
    durations = random_durations()
    sampler = DurationBucketBatchSampler(durations, batch_size=8, num_buckets=6, min_duration=5, max_duration=30)
    np.testing.assert_allclose(sampler.bucket_edges, [5, 9 + 1 / 6, 13 + 1 / 3, 17.5, 21 + 2 / 3, 25 + 5 / 6, 30])
    bucket_counts = np.bincount([bucket_of(d, sampler.bucket_edges) for d in durations], minlength=6)
    for batch in sampler:
        buckets = {bucket_of(durations[i], sampler.bucket_edges) for i in batch}
        assert len(buckets) == 1
    assert len(sampler) == sum(int(np.ceil(n / 8)) for n in bucket_counts)
    assert sampler.bucket_indices[0].tolist() == [i for i, d in enumerate(durations) if d < 5 + 25 / 6]
    assert sampler.bucket_indices[-1].tolist() == [i for i, d in enumerate(durations) if d >= 30 - 25 / 6]


def test_drop_last_gives_full_batches():
    sampler = DurationBucketBatchSampler(random_durations(), batch_size=8, drop_last=True)
    batches = list(sampler)
    assert batches and all(len(batch) == 8 for batch in batches)


def test_epoch_and_seed_decide_the_order():
    durations = random_durations()
    first = DurationBucketBatchSampler(durations, batch_size=8, seed=3)
    second = DurationBucketBatchSampler(durations, batch_size=8, seed=3)
    first.set_epoch(1)
    second.set_epoch(1)
    assert list(first) == list(second)
    assert list(first) == list(first)  # iterating twice repeats the epoch
    second.set_epoch(2)
    assert list(first) != list(second)
    assert list(DurationBucketBatchSampler(durations, batch_size=8, seed=10)) != list(first)


def test_order_does_not_depend_on_global_rng():
    durations = random_durations()
    sampler = DurationBucketBatchSampler(durations, batch_size=8)
    torch.manual_seed(0)
    before = list(sampler)
    torch.manual_seed(99)
    assert list(sampler) == before


def test_no_shuffle_is_index_order():
    durations = [6.0, 29.0, 6.5, 7.0, 29.5]
    batches = list(DurationBucketBatchSampler(durations, batch_size=2, shuffle=False))
    assert batches == [[0, 2], [3], [1, 4]]


@pytest.mark.parametrize("drop_last", [False, True])
def test_two_ranks_equal_counts_and_disjoint(drop_last):
    durations = random_durations()
    ranks = [DurationBucketBatchSampler(durations, batch_size=8, seed=5, drop_last=drop_last,
                                        num_replicas=2, rank=r) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(7)
    batches = [list(sampler) for sampler in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == len(ranks[1]) > 0
    total = ranks[0].total_batches
    expected = total // 2 if drop_last else -(-total // 2)
    assert len(ranks[0]) == expected
    if total % 2 == 0 or drop_last:  # no padding: disjoint
        assert not {i for b in batches[0] for i in b} & {i for b in batches[1] for i in b}


def test_ranks_cover_every_index_once_without_padding():
    durations = [6.0] * 16 + [29.0] * 16  # 4 batches of 8: splits evenly between 2 ranks
    ranks = [DurationBucketBatchSampler(durations, batch_size=8, num_replicas=2, rank=r) for r in range(2)]
    indices = [i for sampler in ranks for batch in sampler for i in batch]
    assert sorted(indices) == list(range(32))
    assert len(ranks[0]) == len(ranks[1]) == 2


def test_padding_repeats_batches():
    durations = [6.0] * 24  # 3 batches for 2 ranks: the first batch is repeated at the end
    rank0, rank1 = (list(DurationBucketBatchSampler(durations, batch_size=8, num_replicas=2, rank=r))
                    for r in range(2))
    assert len(rank0) == len(rank1) == 2
    assert rank1[-1] == rank0[0]
    counts = np.bincount([i for batch in rank0 + rank1 for i in batch], minlength=24)
    assert sorted(counts.tolist()) == [1] * 16 + [2] * 8  # every index; one whole batch twice


def test_fewer_batches_than_ranks():
    ranks = [DurationBucketBatchSampler([6.0, 7.0], batch_size=8, num_replicas=4, rank=r) for r in range(4)]
    assert all(len(list(sampler)) == len(sampler) == 1 for sampler in ranks)
    assert len(DurationBucketBatchSampler([6.0, 7.0], 8, num_replicas=4, rank=0, drop_last=True)) == 0


def test_set_start_batch_skips_once():
    sampler = DurationBucketBatchSampler(random_durations(), batch_size=8, num_replicas=2, rank=1)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.set_start_batch(4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # the skip applies to one iteration
    assert len(sampler) == len(full)


def test_dataloader_uses_it_as_batch_sampler():
    durations = random_durations(40)
    sampler = DurationBucketBatchSampler(durations, batch_size=4)
    loader = torch.utils.data.DataLoader(list(range(40)), batch_sampler=sampler)
    sampler.set_start_batch(2)
    assert [batch.tolist() for batch in loader] == list(sampler)[2:]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DurationBucketBatchSampler([1.0], batch_size=0)
    with pytest.raises(ValueError, match="min_duration"):
        DurationBucketBatchSampler([1.0], batch_size=1, min_duration=30, max_duration=5)
    with pytest.raises(ValueError, match="rank"):
        DurationBucketBatchSampler([1.0], batch_size=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="start_batch"):
        DurationBucketBatchSampler([1.0], batch_size=1).set_start_batch(-1)
