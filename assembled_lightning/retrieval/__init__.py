"""Image retrieval: Recall@K as the paper reports it on SOP, CUB-200-2011 and Cars-196.

Needs only torch and torchmetrics (no Lightning), so an evaluation script can use it alone.
"""

from __future__ import annotations

from .metrics import (
    CARS_KS,
    CUB_KS,
    DEFAULT_CHUNK_BYTES,
    DISTRACTOR,
    SOP_KS,
    RecallAtK,
    similarity_block_bytes,
)

__all__ = [
    "CARS_KS",
    "CUB_KS",
    "DEFAULT_CHUNK_BYTES",
    "DISTRACTOR",
    "SOP_KS",
    "RecallAtK",
    "similarity_block_bytes",
]
