"""Run by test_recall_memory.py in a fresh interpreter: the peak resident memory that
RecallAtK.compute() adds, for a small chunk budget and for one block of all queries, as JSON.

The kernel's high-water mark (VmHWM) is reset just before each compute (``/proc/self/clear_refs``
5), so the peak is measured by Linux, counting every allocation (torch's, BLAS's, Python's);
the test runs it with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed, so freed blocks are unmapped.
Each compute runs twice, on two metrics: the first sets up BLAS and the allocator.
"""

from __future__ import annotations

import json
import sys

import torch

from assembled_lightning.retrieval import RecallAtK, similarity_block_bytes

SAMPLES, FEATURES, KS = 4000, 32, (1, 2, 4, 8)
UNSUPPORTED = 3  # exit status where the kernel's peak cannot be reset: the test skips


def resident(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_of_compute(metric: RecallAtK) -> int:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = resident("VmRSS")
    metric.compute()
    return resident("VmHWM") - before


def main() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError as error:
        print(f"cannot reset the peak resident memory: {error}")
        sys.exit(UNSUPPORTED)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(SAMPLES, FEATURES, generator=generator)
    labels = torch.randint(0, 100, (SAMPLES,), generator=generator)
    result = {}
    for name, queries in (("chunked", int(sys.argv[1])), ("whole", SAMPLES)):
        budget = similarity_block_bytes(queries, SAMPLES, max(KS))
        for _ in range(2):
            metric = RecallAtK(KS, chunk_bytes=budget)
            metric.update(embeddings, labels, torch.arange(SAMPLES))
            peak = peak_of_compute(metric)
        result[name] = {"budget": budget, "peak": peak}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
