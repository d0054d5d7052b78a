"""The class-balanced P×K sampler of metric-learning training: every batch holds ``P`` classes
with ``K`` images each, so that every class in a batch has positives for its margin loss and
the batch-norm statistics see several images of each class.

Each optimizer step draws ``P × world_size`` distinct classes, rank ``r`` taking the ``r``-th
``P`` of them: under DDP the ranks' batches of one step share no class (hence no image), and
every rank takes the same number of steps. Within a class, ``K`` images are drawn without
replacement; a class with fewer than ``K`` images is drawn *with* replacement, so it repeats
some images (SOP's products often have only 2–12 photos). The draws depend only on
``(seed, epoch)``: every rank rebuilds the same stream, a rerun repeats it, :meth:`set_epoch`
moves to a new one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import DistributedSampler


class ClassBalancedSampler(DistributedSampler[int]):
    """This rank's sample indices for one epoch of P×K batches, batch after batch.

    A loader with ``batch_size = classes_per_batch × images_per_class`` (and no
    ``drop_last``) cuts them into exactly those batches. A ``DistributedSampler`` so that
    Lightning keeps it under DDP (it shards by itself) and calls :meth:`set_epoch`.

    Args:
        labels: The label of every sample of the training set, in dataset order.
        classes_per_batch: ``P``, distinct classes per batch (and rank).
        images_per_class: ``K``, images per class in a batch.
        num_replicas: Processes (devices) that share the stream.
        rank: This process's rank.
        seed: Seed of the draws, the same on every rank.
        batches_per_epoch: Batches per rank and epoch; None: one pass's worth of images,
            ``N // (P · K · num_replicas)`` (at least 1).
    """

    def __init__(
        self,
        labels: Sequence[int],
        classes_per_batch: int,
        images_per_class: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(labels, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        if classes_per_batch < 1 or images_per_class < 1:
            raise ValueError(
                "classes_per_batch and images_per_class must be >= 1, got "
                f"{classes_per_batch} and {images_per_class}"
            )
        label_array = np.asarray(labels, dtype=np.int64)
        classes, inverse = np.unique(label_array, return_inverse=True)
        needed = classes_per_batch * num_replicas
        if len(classes) < needed:
            raise ValueError(
                f"a step needs {needed} distinct classes ({classes_per_batch} per batch × "
                f"{num_replicas} devices) but the training set has {len(classes)}: lower "
                "classes_per_batch (raise images_per_class, or use fewer devices)"
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))
        self.members = np.split(order, bounds[:-1])
        """The sample indices of each class (classes in sorted label order)."""
        self.classes_per_batch = classes_per_batch
        self.images_per_class = images_per_class
        self.batch_size = classes_per_batch * images_per_class
        if batches_per_epoch is None:
            batches_per_epoch = max(1, len(label_array) // (self.batch_size * num_replicas))
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
        self.batches_per_epoch = batches_per_epoch

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch (each P classes × K images, class after
        class)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        P, K = self.classes_per_batch, self.images_per_class
        mine = slice(self.rank * P, (self.rank + 1) * P)
        result = []
        for _ in range(self.batches_per_epoch):
            step_classes = rng.choice(len(self.members), P * self.num_replicas, replace=False)
            draws = [
                rng.choice(self.members[c], K, replace=len(self.members[c]) < K)
                for c in step_classes
            ]
            result.append(np.concatenate(draws[mine]).tolist())
        return result

    def __iter__(self) -> Iterator[int]:
        return iter([index for batch in self.batches() for index in batch])
