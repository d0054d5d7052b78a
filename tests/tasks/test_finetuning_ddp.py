"""StagedUnfreeze under Lightning ``strategy="ddp"`` on two CPU processes (gloo): every parameter
is in DDP from step 0 (no unused-parameter error, real gradients everywhere), frozen stages stay
bitwise still on both ranks, layer4 trains from its unfreeze epoch, and the ranks end with the
same weights. The ranks run ddp_finetuning.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from two_ranks import free_port

SCRIPT = Path(__file__).with_name("ddp_finetuning.py")
STILL = {"weights": False, "stats": False}
TRAINING = {"weights": True, "stats": True}


def test_staged_unfreeze_under_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": "2",
        "NODE_RANK": "0",
        "OMP_NUM_THREADS": "1",
    }
    logs = [tmp_path / f"log{rank}.txt" for rank in (0, 1)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tmp_path)],
            env={**env, "LOCAL_RANK": str(rank)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for rank, log in zip((0, 1), logs, strict=True)
    ]
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=180) == 0, log.read_text()[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank in ranks:
        assert rank["steps"] == 4  # 2 epochs × 16 images / (2 ranks × 4)
        assert all(total > 0 for total in rank["smallest_gradient_sums"].values())
        assert len(rank["smallest_gradient_sums"]) == 6  # every stage has gradients
        first, second = rank["changes"]
        assert first == {**dict.fromkeys(first, STILL), "head": {"weights": True, "stats": False}}
        assert second["layer4"] == TRAINING and second["head"]["weights"]
        for stage in ("stem", "layer1", "layer2", "layer3"):
            assert second[stage] == STILL, stage
    assert ranks[0]["parameters"] == ranks[1]["parameters"]  # DDP kept the ranks in step
