"""Under DDP (2 CPU processes, gloo) CorruptionError, FlipProbability and
ExpectedCalibrationError, each process updated with its half of a fixed data set, compute
exactly what one process updated with all of it computes."""

from __future__ import annotations

import json
from pathlib import Path

import metrics_ddp_worker
from two_ranks import run_two_ranks

SCRIPT = Path(metrics_ddp_worker.__file__)


def test_two_processes_compute_what_one_computes(tmp_path: Path) -> None:
    ranks = run_two_ranks(SCRIPT, tmp_path)

    alone = json.loads(json.dumps(metrics_ddp_worker.evaluate(rank=0, world_size=1)))
    assert {"mce_15", "mce_19", "relative_mce_15", "unnormalized_mce"} <= set(alone["corruption"])
    assert {"fp/rotate/2", "ut5d/translate/3", "fr/gaussian_noise"} <= set(alone["flips"])
    assert 0 < alone["ece"] < 1
    for rank in ranks:
        assert rank == alone  # every number, exactly
