"""A validation split carved out of the training split, so that checkpoints are selected on
images that are not the test split's. The original evaluated its fine-tuning runs on the test
split while training (ORIGINAL.md §3.3: every 10 epochs, then every epoch of the last 10 %) and
picked its retrieval numbers by test Recall@1; a number selected that way is optimistic.

The carve-out is stratified and depends only on the samples and ``seed``, never on the global
seed or the process rank: every DDP rank, every resumed run and every later ``test`` run holds
out exactly the same images.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from .samples import Sample


def held_out_count(class_size: int, fraction: float) -> int:
    """Images of a class of ``class_size`` held out: ``round(fraction · size)``, at least one
    where the class has two or more (so every class is validated), never all of them (so every
    class is still trained on)."""
    if class_size < 2:
        return 0
    return min(max(round(fraction * class_size), 1), class_size - 1)


def carve_validation(
    samples: Sequence[Sample], fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """(training, validation) samples: per class, ``held_out_count`` samples drawn by a
    permutation seeded with ``seed`` over the class's samples sorted by ``sample_id``; both
    lists keep the input's order."""
    if not 0 < fraction < 1:
        raise ValueError(
            f"val_fraction must be in (0, 1) to carve a validation split, got {fraction}; "
            "0 validates on the data set's evaluation split instead"
        )
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        by_class[sample.label].append(index)
    generator = torch.Generator().manual_seed(seed)
    held_out: set[int] = set()
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda i: samples[i].sample_id)
        order = torch.randperm(len(members), generator=generator).tolist()
        count = held_out_count(len(members), fraction)
        held_out.update(members[i] for i in order[:count])
    training = [s for i, s in enumerate(samples) if i not in held_out]
    validation = [s for i, s in enumerate(samples) if i in held_out]
    return training, validation
