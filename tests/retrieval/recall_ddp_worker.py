"""One process of a 2-process gloo run, started by test_recall_at_k_ddp.py with RANK set:
updates RecallAtK with its uneven shard (rank 1 also repeats three of rank 0's samples, as
DistributedSampler's padding does; with RECALL_TEST_EMPTY_RANK=1 rank 0 has all, rank 1 none)
and writes what it computes over both processes to ``rank<r>.json`` in the folder given.

``data()`` and ``evaluate()`` are imported by the test too, to compute the same numbers in one
process from all of the data.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from assembled_lightning.retrieval import RecallAtK, similarity_block_bytes

SAMPLES, RANK0_SAMPLES, PADDING = 301, 180, 3
KS = (1, 2, 4, 8, 16)
EMPTY_RANK = "RECALL_TEST_EMPTY_RANK"
"""Environment variable: "1" runs the empty-rank case."""


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """301 Gaussian embeddings in 20 classes with ~10 % distractors (label −1), under shuffled
    global indices."""
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(SAMPLES, 16, generator=generator)
    labels = torch.randint(0, 20, (SAMPLES,), generator=generator)
    labels[torch.rand(SAMPLES, generator=generator) < 0.1] = -1
    return embeddings, labels, torch.randperm(SAMPLES, generator=generator)


def evaluate(rank: int, world_size: int, empty_rank: bool = False) -> dict[str, float]:
    """RecallAtK updated with this rank's shard (rank 0 of 1: everything once) in batches of
    50, with a chunk budget of 64 queries; ``empty_rank``: rank 0 has every sample, rank 1
    none (it never calls ``update``)."""
    embeddings, labels, indexes = data()
    mine: slice | torch.Tensor
    if world_size == 1 or (rank == 0 and empty_rank):
        mine = slice(None)
    elif rank == 0:
        mine = slice(0, RANK0_SAMPLES)
    elif empty_rank:  # a split smaller than the devices: this rank evaluates nothing
        mine = slice(0, 0)
    else:
        mine = torch.cat([torch.arange(RANK0_SAMPLES, SAMPLES), torch.arange(PADDING)])
    embeddings, labels, indexes = embeddings[mine], labels[mine], indexes[mine]
    metric = RecallAtK(KS, chunk_bytes=similarity_block_bytes(64, SAMPLES, max(KS)))
    for start in range(0, len(labels), 50):
        part = slice(start, start + 50)
        metric.update(embeddings[part], labels[part], indexes[part])
    return {name: float(value) for name, value in metric.compute().items()}


def main() -> None:
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        result = evaluate(rank, world_size, empty_rank=os.environ.get(EMPTY_RANK) == "1")
    finally:
        dist.destroy_process_group()
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
