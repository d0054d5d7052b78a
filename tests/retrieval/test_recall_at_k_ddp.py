"""Under DDP (2 CPU processes, gloo) RecallAtK, each process updated with an uneven shard of a
fixed data set plus padding repeats, computes exactly what one process updated with all of it
once computes: the gathered samples are deduplicated by global index."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import recall_ddp_worker

SCRIPT = Path(recall_ddp_worker.__file__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_processes_compute_what_one_computes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    logs = [tmp_path / f"log{rank}.txt" for rank in (0, 1)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tmp_path)],
            env={**env, "RANK": str(rank)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for rank, log in zip((0, 1), logs, strict=True)
    ]
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]

    alone = recall_ddp_worker.evaluate(rank=0, world_size=1)
    assert list(alone) == [f"recall@{k}" for k in recall_ddp_worker.KS]
    assert 0 < alone["recall@1"] < alone["recall@16"] < 1
    for rank in ranks:
        assert rank == alone  # every number, exactly
