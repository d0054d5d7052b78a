"""Evaluation sets made of (corruption, severity) parts, and their loaders.

ImageNet-C and on-the-fly corruption both evaluate one model on many versions of a data set:
one part per corruption × severity, plus optionally the clean images (corruption ``"clean"``,
severity 0). :class:`CorruptionGrid` concatenates the parts and stamps every item with its
part, so a batch says which corruption and severity each image has; parts follow each other, so
a batch holds one or two parts and the corruption step works on whole groups.

Under DDP the loader uses Lightning's ``UnrepeatedDistributedSampler``: ranks share the images
without the padding of ``DistributedSampler``, so no image is scored twice and the metrics over
all ranks equal one process's.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.samples import collate_samples


@dataclass(frozen=True)
class GridPart:
    corruption: str
    severity: int
    dataset: Dataset[dict[str, Any]]


class CorruptionGrid(Dataset[dict[str, Any]]):
    """The parts one after another; item ``i`` is its part's item plus its ``corruption``,
    ``severity`` and ``grid_index`` (``i``: seeds on-the-fly corruption independently of
    the loader)."""

    def __init__(self, parts: Sequence[GridPart]) -> None:
        if not parts:
            raise ValueError("no (corruption, severity) parts to evaluate")
        self.parts = list(parts)
        self.offsets: list[int] = []
        total = 0
        for part in self.parts:
            self.offsets.append(total)
            total += len(part.dataset)  # type: ignore[arg-type]
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.total:
            raise IndexError(index)
        part_index = bisect.bisect_right(self.offsets, index) - 1
        part = self.parts[part_index]
        item = dict(part.dataset[index - self.offsets[part_index]])
        if "image" in item:  # a dropped bad file keeps only its "skipped" entry
            item.update(corruption=part.corruption, severity=part.severity, grid_index=index)
        return item


def grid_loader(
    grid: CorruptionGrid,
    trainer: Any,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
) -> DataLoader[Any]:
    """A loader in grid order; under DDP each rank gets its share without padding."""
    sampler = None
    if trainer is not None and trainer.world_size > 1:
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        sampler = UnrepeatedDistributedSampler(
            grid, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )
    return DataLoader(
        grid,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_samples,
    )


def groups(batch: dict[str, Any]) -> list[tuple[str, int, torch.Tensor]]:
    """(corruption, severity, indices) of each part present in a batch, in batch order."""
    keys = list(zip(batch["corruption"], batch["severity"].tolist(), strict=True))
    found: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(keys):
        found.setdefault(key, []).append(i)
    return [(c, s, torch.tensor(rows)) for (c, s), rows in found.items()]
