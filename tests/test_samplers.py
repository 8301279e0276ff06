"""DurationBucketBatchSampler: the reference's buckets and drop_last, epochs, DDP split, resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_handling.samplers import (
    REFERENCE_BUCKET_EDGES,
    DurationBucketBatchSampler,
    bucket_labels,
    duration_bucket_ids,
    duration_histogram,
)


def random_durations(count: int = 203, seed: int = 0) -> list[float]:
    """Durations from 1 to 40 s, so every one of the 7 default buckets has clips."""
    return np.random.default_rng(seed).uniform(1.0, 40.0, count).tolist()


def bucket_of(duration: float, edges=REFERENCE_BUCKET_EDGES) -> int:
    """The bucket by the rule, written out: 0 below the first edge, j for edges[j-1] <= d < edges[j]."""
    return sum(duration >= edge for edge in edges)


def test_default_edges_are_the_reference_seven_buckets():
    assert REFERENCE_BUCKET_EDGES == (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    sampler = DurationBucketBatchSampler(random_durations(), batch_size=8)
    assert sampler.bucket_edges.tolist() == list(REFERENCE_BUCKET_EDGES)
    assert len(sampler.bucket_indices) == 7 and all(size > 0 for size in sampler.bucket_sizes)
    assert sampler.drop_last is True
    assert bucket_labels(REFERENCE_BUCKET_EDGES) == ["<5", "5-10", "10-15", "15-20", "20-25", "25-30", ">=30"]


def test_bucket_membership_at_the_boundaries():
    durations = [0.0, 4.999, 5.0, 9.999, 10.0, 24.99, 25.0, 29.999, 30.0, 300.0]
    expected = [0, 0, 1, 1, 2, 4, 5, 5, 6, 6]
    assert duration_bucket_ids(durations, REFERENCE_BUCKET_EDGES).tolist() == expected
    assert [bucket_of(d) for d in durations] == expected
    assert duration_histogram(durations, REFERENCE_BUCKET_EDGES) == {
        "<5": 2, "5-10": 2, "10-15": 1, "15-20": 0, "20-25": 1, "25-30": 2, ">=30": 2}
    assert duration_histogram([], [2.0]) == {"<2": 0, ">=2": 0} and duration_histogram([1.0], []) == {"all": 1}
    sampler = DurationBucketBatchSampler(durations, batch_size=1)
    assert [sampler.bucket_indices[b].tolist() for b in range(7)] == [[0, 1], [2, 3], [4], [], [5], [6, 7], [8, 9]]


def test_explicit_edges():
    sampler = DurationBucketBatchSampler([1.0, 2.0, 3.0, 3.5], batch_size=1, bucket_edges=[2.0, 3.5])
    assert [indices.tolist() for indices in sampler.bucket_indices] == [[0], [1, 2], [3]]
    assert len(DurationBucketBatchSampler([1.0, 9.0], batch_size=1, bucket_edges=[]).bucket_indices) == 1


def test_drop_last_keeps_full_batches_of_one_bucket():
    durations = random_durations()
    sampler = DurationBucketBatchSampler(durations, batch_size=8)  # drop_last=True by default
    counts = np.bincount([bucket_of(d) for d in durations], minlength=7)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(n // 8 for n in counts) == sampler.total_batches
    assert all(len(batch) == 8 for batch in batches)
    assert all(len({bucket_of(durations[i]) for i in batch}) == 1 for batch in batches)
    indices = [i for batch in batches for i in batch]
    assert len(indices) == len(set(indices)) == sum(n - n % 8 for n in counts)


def test_without_drop_last_every_index_once():
    durations = random_durations()
    sampler = DurationBucketBatchSampler(durations, batch_size=8, drop_last=False)
    counts = np.bincount([bucket_of(d) for d in durations], minlength=7)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(-(-n // 8) for n in counts)
    assert sorted(i for batch in batches for i in batch) == list(range(len(durations)))
    assert all(len({bucket_of(durations[i]) for i in batch}) == 1 for batch in batches)


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
    assert list(DurationBucketBatchSampler(durations, batch_size=2, shuffle=False, drop_last=False)) == \
        [[0, 2], [3], [1, 4]]
    assert list(DurationBucketBatchSampler(durations, batch_size=2, shuffle=False)) == [[0, 2], [1, 4]]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("count", [203, 100])
def test_ranks_get_equal_counts(world_size, drop_last, count):
    durations = random_durations(count)
    ranks = [DurationBucketBatchSampler(durations, batch_size=8, seed=5, drop_last=drop_last,
                                        num_replicas=world_size, rank=r) for r in range(world_size)]
    for sampler in ranks:
        sampler.set_epoch(7)
    batches = [list(sampler) for sampler in ranks]
    assert len({len(rank_batches) for rank_batches in batches} | {len(sampler) for sampler in ranks}) == 1
    total = ranks[0].total_batches
    counts = np.bincount([bucket_of(d) for d in durations], minlength=7)
    assert total == (sum(n // 8 for n in counts) if drop_last else sum(-(-n // 8) for n in counts))
    assert len(batches[0]) == (total // world_size if drop_last else -(-total // world_size)) > 0
    seen = [i for rank_batches in batches for batch in rank_batches for i in batch]
    if drop_last or total % world_size == 0:  # no padding: disjoint
        assert len(seen) == len(set(seen))
    else:
        assert set(seen) == set(range(count))  # padded: every index, some twice


def test_ranks_cover_every_index_once_without_padding():
    durations = [6.0] * 16 + [29.0] * 16  # 4 batches of 8: splits evenly between 2 ranks
    ranks = [DurationBucketBatchSampler(durations, batch_size=8, num_replicas=2, rank=r) for r in range(2)]
    indices = [i for sampler in ranks for batch in sampler for i in batch]
    assert sorted(indices) == list(range(32))
    assert len(ranks[0]) == len(ranks[1]) == 2


def test_padding_repeats_batches():
    durations = [6.0] * 24  # 3 batches for 2 ranks: the first batch is repeated at the end
    rank0, rank1 = (list(DurationBucketBatchSampler(durations, batch_size=8, num_replicas=2, rank=r,
                                                    drop_last=False)) for r in range(2))
    assert len(rank0) == len(rank1) == 2
    assert rank1[-1] == rank0[0]
    counts = np.bincount([i for batch in rank0 + rank1 for i in batch], minlength=24)
    assert sorted(counts.tolist()) == [1] * 16 + [2] * 8  # every index; one whole batch twice


def test_fewer_batches_than_ranks():
    ranks = [DurationBucketBatchSampler([6.0, 7.0], batch_size=8, num_replicas=4, rank=r, drop_last=False)
             for r in range(4)]
    assert all(len(list(sampler)) == len(sampler) == 1 for sampler in ranks)
    assert len(DurationBucketBatchSampler([6.0, 7.0], 8, num_replicas=4, rank=0)) == 0


def test_set_start_batch_skips_until_the_next_epoch():
    sampler = DurationBucketBatchSampler(random_durations(), batch_size=8, num_replicas=2, rank=1)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.set_start_batch(4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full[4:]  # a DataLoader with workers iterates its batch sampler twice
    assert len(sampler) == len(full)
    sampler.set_epoch(3)
    assert list(sampler) == full


def test_dataloader_uses_it_as_batch_sampler():
    durations = random_durations(40)
    sampler = DurationBucketBatchSampler(durations, batch_size=4)
    sampler.set_epoch(1)
    full = list(sampler)
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(list(range(40)), batch_sampler=sampler, num_workers=workers)
        sampler.set_epoch(1)
        sampler.set_start_batch(2)
        assert [batch.tolist() for batch in loader] == full[2:]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DurationBucketBatchSampler([1.0], batch_size=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        DurationBucketBatchSampler([1.0], batch_size=1, bucket_edges=[30, 5])
    with pytest.raises(ValueError, match="strictly increasing"):
        DurationBucketBatchSampler([1.0], batch_size=1, bucket_edges=[5, 5, 10])
    with pytest.raises(ValueError, match="rank"):
        DurationBucketBatchSampler([1.0], batch_size=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="start_batch"):
        DurationBucketBatchSampler([1.0], batch_size=1).set_start_batch(-1)
