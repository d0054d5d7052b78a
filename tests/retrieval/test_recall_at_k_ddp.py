"""Under DDP (2 CPU processes, gloo) RecallAtK, each process updated with an uneven shard of a
fixed data set plus padding repeats, computes exactly what one process updated with all of it
once computes: the gathered samples are deduplicated by global index."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_a_rank_without_samples_still_gathers_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A split smaller than the devices leaves a rank with nothing to evaluate: it takes part
    in the gathering with empty states and gets the same numbers."""
    monkeypatch.setenv(recall_ddp_worker.EMPTY_RANK, "1")
    ranks = run_two_ranks(SCRIPT, tmp_path)
    alone = recall_ddp_worker.evaluate(rank=0, world_size=1)
    for rank in ranks:
        assert rank == alone
