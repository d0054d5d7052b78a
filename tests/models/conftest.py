"""Fixtures of the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_intra_op_thread() -> Iterator[None]:
    """Run each model test with one intra-op thread, then restore the previous count.

    The tests use tiny tensors, which gain nothing from a second thread; on a busy 2-core
    machine, OpenMP workers spinning for a core that another process holds made a 16 ms
    forward/backward of a thin BigLittleNet take ~6 s. One thread keeps the suite fast and
    its timings stable.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
