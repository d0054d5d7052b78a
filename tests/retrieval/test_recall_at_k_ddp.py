"""Under DDP (2 CPU processes, gloo) RecallAtK, each process updated with an uneven shard of a
fixed data set plus padding repeats, computes exactly what one process updated with all of it
once computes: the gathered samples are deduplicated by global index."""

from __future__ import annotations

from pathlib import Path

import recall_ddp_worker
from two_ranks import run_two_ranks

SCRIPT = Path(recall_ddp_worker.__file__)


def test_two_processes_compute_what_one_computes(tmp_path: Path) -> None:
    ranks = run_two_ranks(SCRIPT, tmp_path)

    alone = recall_ddp_worker.evaluate(rank=0, world_size=1)
    assert list(alone) == [f"recall@{k}" for k in recall_ddp_worker.KS]
    assert 0 < alone["recall@1"] < alone["recall@16"] < 1
    for rank in ranks:
        assert rank == alone  # every number, exactly
