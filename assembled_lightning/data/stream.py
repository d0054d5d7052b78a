"""The original's training stream, cut into Lightning epochs (ORIGINAL.md §3.1).

The original's input pipeline (master:utils/data_util.py ``process_record_dataset``) reshuffles
the training set at every pass, repeats it ``train_epochs`` times — twice as often with mixup
type 1, which loads twice the batch and mixes its two halves into one batch
(master:functions/input_fns.py ``input_fn_cls``) — and batches the stream with the remainder kept
(``drop_remainder=False``). Its batches therefore run across epoch boundaries, no image is
dropped, and its LR and DropBlock schedules span ``int(train_epochs · N / batch)`` steps
(master:functions/model_fns.py).

A Lightning epoch is one pass of a loader. :class:`TrainingStream` gives every epoch its share of
that one stream: epoch ``e`` holds the optimizer steps ``⌊e·x⌋ … ⌊(e+1)·x⌋ − 1`` with
``x = passes · N / (global loaded batch)``, each a full batch on every rank, so ``max_epochs``
epochs take exactly the original's number of steps. Epochs then differ by at most one step, so
the loader is rebuilt every epoch (:meth:`TrainingStream.refresh_every_epoch`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sized
from fractions import Fraction
from typing import Any

import torch
from torch.utils.data import DistributedSampler, IterableDataset


def stream_steps(epochs: float, num_samples: int, passes: int, images_per_step: int) -> int:
    """Optimizer steps in the first ``epochs`` epochs, ⌊epochs · passes · N / images_per_step⌋
    in exact arithmetic: the original's ``int(train_epochs · N / batch)`` (and its warm-up,
    ``int(warmup_epochs · N / batch)``), since ``images_per_step = passes · batch``."""
    return math.floor(Fraction(epochs) * passes * num_samples / images_per_step)


def data_passes(trainer: Any) -> int:
    """Passes over the data per epoch that the trained module asks for (its
    ``data_passes_per_epoch``: 2 for ClassificationTask's mixup 'halves'), else 1."""
    module = getattr(trainer, "lightning_module", None)
    return int(getattr(module, "data_passes_per_epoch", 1))


class TrainingStream(DistributedSampler[int]):
    """This rank's sample indices for one epoch of the original's training stream.

    The stream is the concatenation of permutations of the data set, pass ``k`` shuffled with
    seed ``seed + k``, so every rank builds the same stream. Each optimizer step takes the next
    ``num_replicas × batch_size × accumulate_grad_batches`` positions, rank ``r`` the ``r``-th
    ``batch_size`` of every round. A ``DistributedSampler`` so that Lightning keeps it under DDP
    (it already shards); :meth:`set_epoch` selects the epoch.

    Args:
        dataset: The training set (only its length is used).
        batch_size: Loaded images per batch and device.
        num_replicas: Processes (devices) sharing the stream.
        rank: This process's rank.
        passes: Passes over the data per epoch (2 with mixup 'halves').
        accumulate_grad_batches: Batches per optimizer step.
        seed: Shuffling seed, the same on every rank.
        epoch: The epoch to yield.
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        passes: int = 1,
        accumulate_grad_batches: int = 1,
        seed: int = 0,
        epoch: int = 0,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        if batch_size < 1 or passes < 1 or accumulate_grad_batches < 1:
            raise ValueError(
                "batch_size, passes and accumulate_grad_batches must be >= 1, got "
                f"{batch_size}, {passes}, {accumulate_grad_batches}"
            )
        if batch_size % passes:
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of the {passes} passes per epoch: "
                "with mixup 'halves' each batch holds two halves that are mixed into one"
            )
        self.num_images = len(dataset)
        self.batch_size = batch_size
        self.passes = passes
        self.accumulate_grad_batches = accumulate_grad_batches
        self.epoch = epoch
        if passes * self.num_images < self.images_per_step:
            raise ValueError(
                f"the training set ({self.num_images} images × {passes} passes) holds less "
                f"than one optimizer step of {self.images_per_step} images "
                f"({num_replicas} devices × batch {batch_size} × {accumulate_grad_batches}); "
                "use a smaller batch_size"
            )

    @classmethod
    def from_trainer(cls, dataset: Sized, batch_size: int, trainer: Any | None) -> TrainingStream:
        """The stream of ``trainer``'s current epoch: its world size, rank and gradient
        accumulation, the passes its LightningModule asks for, and Lightning's global seed
        (``PL_GLOBAL_SEED``, which Lightning's own distributed sampler uses too). Without a
        trainer: one device, one pass, epoch 0."""
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        if trainer is None:
            return cls(dataset, batch_size, seed=seed)
        return cls(
            dataset,
            batch_size,
            num_replicas=trainer.world_size,
            rank=trainer.global_rank,
            passes=data_passes(trainer),
            accumulate_grad_batches=trainer.accumulate_grad_batches,
            seed=seed,
            epoch=trainer.current_epoch,
        )

    @property
    def images_per_step(self) -> int:
        """Loaded images per optimizer step, all devices together."""
        return self.num_replicas * self.batch_size * self.accumulate_grad_batches

    @property
    def uniform_epochs(self) -> bool:
        """Whether every epoch holds the same number of steps."""
        return (self.passes * self.num_images) % self.images_per_step == 0

    def steps(self, epochs: float) -> int:
        """Optimizer steps in the first ``epochs`` epochs (see :func:`stream_steps`)."""
        return stream_steps(epochs, self.num_images, self.passes, self.images_per_step)

    def _batches(self) -> tuple[int, int]:
        """First and end (exclusive) loader-batch round of the current epoch."""
        per_step = self.accumulate_grad_batches
        return self.steps(self.epoch) * per_step, self.steps(self.epoch + 1) * per_step

    def __len__(self) -> int:
        first, end = self._batches()
        return (end - first) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        first, end = self._batches()
        if end <= first:
            return iter([])
        rounds = torch.arange(first, end)
        within = torch.arange(self.batch_size) + self.rank * self.batch_size
        positions = (rounds[:, None] * (self.num_replicas * self.batch_size) + within).flatten()
        pass_index = positions // self.num_images
        first_pass = int(pass_index[0])
        permutations = torch.stack(
            [
                torch.randperm(
                    self.num_images, generator=torch.Generator().manual_seed(self.seed + k)
                )
                for k in range(first_pass, int(pass_index[-1]) + 1)
            ]
        )
        return iter(permutations[pass_index - first_pass, positions % self.num_images].tolist())

    def refresh_every_epoch(self, trainer: Any | None) -> None:
        """Epochs of different lengths need a loader built for each: ask the trainer to
        rebuild it every epoch (``reload_dataloaders_every_n_epochs=1``), since Lightning reads
        a loader's length once."""
        if trainer is None or self.uniform_epochs:
            return
        reload = trainer.reload_dataloaders_every_n_epochs
        if reload not in (0, 1):
            raise ValueError(
                f"reload_dataloaders_every_n_epochs={reload}: the training stream needs a new "
                "loader every epoch (its epochs differ by one step); set it to 1 or 0"
            )
        trainer.reload_dataloaders_every_n_epochs = 1


class RepeatedPasses(IterableDataset[Any]):
    """An iterable data set read ``passes`` times per epoch (streamed shards with mixup
    'halves'); every loader worker reads its share ``passes`` times, so it yields an even count
    for two passes."""

    def __init__(self, dataset: IterableDataset[Any], passes: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.passes = passes

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.passes):
            yield from self.dataset

    def __len__(self) -> int:
        return self.passes * len(self.dataset)  # type: ignore[arg-type]
