"""Run a worker script as two gloo ranks on the CPU and read what each rank wrote: the launcher
of the DDP tests (each worker writes ``<folder>/rank<R>.json``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_two_ranks(
    script: Path, folder: Path, timeout: float = 120, lightning: bool = False
) -> list[Any]:
    """Start ``script folder`` as ranks 0 and 1 (one thread each), wait, return their JSONs;
    a failing rank fails the test with the end of its log. ``lightning``: the processes are
    the two devices of a Lightning ``strategy="ddp"`` Trainer on one node (``LOCAL_RANK``,
    ``NODE_RANK``), as Lightning's own launcher starts them; else plain ``RANK`` processes."""
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    rank_variable = "RANK"
    if lightning:
        env["NODE_RANK"], rank_variable = "0", "LOCAL_RANK"
    logs = [folder / f"log{rank}.txt" for rank in (0, 1)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(folder)],
            env={**env, rank_variable: str(rank)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for rank, log in zip((0, 1), logs, strict=True)
    ]
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=timeout) == 0, log.read_text()[-3000:]
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]
