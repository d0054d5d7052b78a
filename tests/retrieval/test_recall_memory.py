"""RecallAtK.compute() stays within its chunk budget: Linux's peak resident memory, measured in a
fresh interpreter (recall_memory_probe.py), grows by the budget (a block of 250 of 4000 queries,
12 MB) plus the gallery copies, and by the whole 192 MB when one block holds every query."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import recall_memory_probe

SCRIPT = Path(recall_memory_probe.__file__)
MiB = 2**20


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak from /proc/self/status")
def test_peak_memory_is_bounded_by_the_chunk_budget() -> None:
    # glibc maps every allocation of 64 KiB or more afresh and unmaps it when freed (no reuse of
    # pages made resident earlier), so the peak counts each block's memory, exactly once
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "250"], capture_output=True, text=True, env=env, timeout=120
    )
    if result.returncode == recall_memory_probe.UNSUPPORTED:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    measured = json.loads(result.stdout)
    copies = 2 * recall_memory_probe.SAMPLES * recall_memory_probe.FEATURES * 4
    for run in measured.values():
        # the block is really allocated (the measurement is not blind) and nothing else is big;
        # 2 MiB for page granularity, sorting buffers and small tensors
        assert 0.9 * run["budget"] <= run["peak"] <= run["budget"] + copies + 2 * MiB, measured
