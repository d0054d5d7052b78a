"""One process of a 2-process gloo run, started by test_metrics_ddp.py with RANK set: updates
the three robustness metrics with its half of a fixed data set and writes what they compute
(synchronised over both processes) to ``rank<r>.json`` in the folder given.

``data()`` and ``evaluate()`` are imported by the test too, to compute the same numbers in one
process from all of the data.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from assembled_lightning.robustness.corruptions import CORRUPTIONS, SEVERITIES
from assembled_lightning.robustness.metrics import (
    CorruptionError,
    ExpectedCalibrationError,
    FlipProbability,
)

FLIP_RUNS = (("gaussian_noise", 1), ("rotate", 1), ("rotate", 2), ("translate", 3))


def data() -> dict[str, Any]:
    """A fixed data set: every ImageNet-C cell (and clean) 4 times, shuffled; videos of scores
    for four ImageNet-P runs; dyadic probabilities (k/64) so that float sums are exact in any
    order."""
    generator = torch.Generator().manual_seed(0)
    cells = [(c, s) for c in CORRUPTIONS for s in SEVERITIES] + [("clean", 0)]
    order = torch.randperm(4 * len(cells), generator=generator)
    names = [cells[i % len(cells)][0] for i in order.tolist()]
    severities = torch.tensor([cells[i % len(cells)][1] for i in order.tolist()])
    logits = torch.randn(len(names), 5, generator=generator)
    targets = torch.randint(0, 5, (len(names),), generator=generator)
    videos = {run: torch.randn(8, 9, 12, generator=generator) for run in FLIP_RUNS}
    # 64 draws over the first 1…8 classes: confidences from 1/8 up to 1, all multiples of 1/64
    counts = torch.stack(
        [
            torch.bincount(torch.randint(0, 1 + i % 8, (64,), generator=generator), minlength=8)
            for i in range(200)
        ]
    )
    probs = counts.double() / 64
    ece_targets = torch.randint(0, 8, (len(probs),), generator=generator)
    return {
        "names": names,
        "severities": severities,
        "logits": logits,
        "targets": targets,
        "videos": videos,
        "probs": probs,
        "ece_targets": ece_targets,
    }


def evaluate(rank: int, world_size: int) -> dict[str, Any]:
    """The three metrics updated with this rank's half (rank 0 of 1: everything)."""
    d = data()

    def part(n: int) -> slice:
        size = (n + world_size - 1) // world_size
        return slice(rank * size, (rank + 1) * size)

    corruption = CorruptionError()
    mine = part(len(d["names"]))
    names, severities = d["names"][mine], d["severities"][mine]
    logits, targets = d["logits"][mine], d["targets"][mine]
    for start in range(0, len(names), 50):  # several updates per rank
        batch = slice(start, start + 50)
        corruption.update(logits[batch], targets[batch], names[batch], severities[batch])

    flips = FlipProbability()
    for (perturbation, difficulty), scores in d["videos"].items():
        flips.update(scores[part(len(scores))], perturbation, difficulty)

    ece = ExpectedCalibrationError(from_logits=False)
    mine = part(len(d["probs"]))
    ece.update(d["probs"][mine], d["ece_targets"][mine])

    return {
        "corruption": corruption.compute().as_dict(),
        "flips": flips.compute().as_dict(),
        "ece": float(ece.compute()),
    }


def main() -> None:
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        result = evaluate(rank, world_size)
    finally:
        dist.destroy_process_group()
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
