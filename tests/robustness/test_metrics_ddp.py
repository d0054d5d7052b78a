"""Under DDP (2 CPU processes, gloo) CorruptionError, FlipProbability and
ExpectedCalibrationError, each process updated with its half of a fixed data set, compute
exactly what one process updated with all of it computes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import metrics_ddp_worker

SCRIPT = Path(metrics_ddp_worker.__file__)


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

    alone = json.loads(json.dumps(metrics_ddp_worker.evaluate(rank=0, world_size=1)))
    assert {"mce_15", "mce_19", "relative_mce_15", "unnormalized_mce"} <= set(alone["corruption"])
    assert {"fp/rotate/2", "ut5d/translate/3", "fr/gaussian_noise"} <= set(alone["flips"])
    assert 0 < alone["ece"] < 1
    for rank in ranks:
        assert rank == alone  # every number, exactly
