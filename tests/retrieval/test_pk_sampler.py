"""The P×K sampler: every batch holds P distinct classes × K images of each (without
replacement where a class has K, with replacement where it has fewer), the draws repeat per
(seed, epoch) and change with the epoch, two simulated DDP ranks get batches of disjoint
classes (hence images) at every step and the same number of batches, and a DataLoader cuts
the stream into exactly those batches."""

from __future__ import annotations

from collections import Counter

import pytest
from torch.utils.data import DataLoader

from assembled_lightning.retrieval import ClassBalancedSampler

# 12 classes: class c has c + 1 images (class 0: one image, class 11: twelve), labels shuffled
LABELS = [label for c in range(12) for label in [c] * (c + 1)][::-1]
P, K = 3, 4


def batches(sampler: ClassBalancedSampler) -> list[list[int]]:
    flat = list(sampler)
    size = P * K
    assert len(flat) == len(sampler) and len(flat) % size == 0
    return [flat[i : i + size] for i in range(0, len(flat), size)]


def test_every_batch_holds_p_classes_of_k_images() -> None:
    sampler = ClassBalancedSampler(LABELS, P, K, batches_per_epoch=20)
    for batch in batches(sampler):
        counts = Counter(LABELS[i] for i in batch)
        assert len(counts) == P and set(counts.values()) == {K}
        for label in counts:
            drawn = [i for i in batch if LABELS[i] == label]
            if LABELS.count(label) >= K:  # enough images: no repeats
                assert len(set(drawn)) == K
            else:  # fewer than K images: repeats, from that class only
                assert len(set(drawn)) <= LABELS.count(label)


def test_default_length_is_one_pass_of_images() -> None:
    sampler = ClassBalancedSampler(LABELS, P, K)
    assert sampler.batches_per_epoch == len(LABELS) // (P * K) == 78 // 12
    assert len(ClassBalancedSampler(LABELS, P, K, num_replicas=2)) == (78 // 24) * P * K


def test_draws_are_deterministic_per_seed_and_epoch() -> None:
    def stream(seed: int, epoch: int) -> list[int]:
        sampler = ClassBalancedSampler(LABELS, P, K, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert stream(0, 0) == stream(0, 0)
    assert stream(0, 0) != stream(0, 1)
    assert stream(0, 0) != stream(1, 0)


@pytest.mark.parametrize("epoch", [0, 3])
def test_two_ranks_get_disjoint_batches_of_equal_count(epoch: int) -> None:
    ranks = [
        ClassBalancedSampler(LABELS, P, K, num_replicas=2, rank=r, seed=5, batches_per_epoch=9)
        for r in (0, 1)
    ]
    for sampler in ranks:
        sampler.set_epoch(epoch)
    first, second = (batches(s) for s in ranks)
    assert len(first) == len(second) == 9
    for a, b in zip(first, second, strict=True):
        assert not {LABELS[i] for i in a} & {LABELS[i] for i in b}
        assert not set(a) & set(b)
    assert first != second


def test_a_loader_cuts_the_stream_into_the_batches() -> None:
    sampler = ClassBalancedSampler(LABELS, P, K, batches_per_epoch=4)
    loader = DataLoader(LABELS, batch_size=P * K, sampler=sampler)
    loaded = [batch.tolist() for batch in loader]
    assert len(loaded) == 4
    for batch in loaded:
        assert sorted(Counter(batch).values()) == [K] * P


def test_too_few_classes_for_a_step_is_explained() -> None:
    with pytest.raises(ValueError, match=r"needs 14 distinct classes .* has 12"):
        ClassBalancedSampler(LABELS, 7, K, num_replicas=2)
