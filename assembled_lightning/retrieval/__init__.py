"""Image retrieval: Recall@K as the paper reports it on SOP, CUB-200-2011 and Cars-196, and the
training of its retrieval models (arXiv 2001.06268, Table 9): GeM pooling, margin heads, the
P×K sampler, the embedding network, ``RetrievalTask`` and the zero-shot DataModules.

The metric, pooling, heads, sampler and embedding network need only torch and torchmetrics, so
an evaluation script can use them alone; ``RetrievalTask`` and the DataModules, which need
Lightning, are imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .heads import MARGIN_KINDS, MarginHead, MarginKind
from .metrics import (
    CARS_KS,
    CUB_KS,
    DEFAULT_CHUNK_BYTES,
    DISTRACTOR,
    SOP_KS,
    RecallAtK,
    similarity_block_bytes,
)
from .model import EmbeddingNetwork
from .pooling import POOLING_KINDS, GeM, GlobalAvgPool, PoolingKind, make_pooling
from .sampler import ClassBalancedSampler

if TYPE_CHECKING:
    from .datamodules import (
        Cars196RetrievalDataModule,
        CUB200RetrievalDataModule,
        RetrievalDataModule,
        SOPRetrievalDataModule,
    )
    from .task import RetrievalTask

_LAZY = {
    "CUB200RetrievalDataModule": "datamodules",
    "Cars196RetrievalDataModule": "datamodules",
    "RetrievalDataModule": "datamodules",
    "SOPRetrievalDataModule": "datamodules",
    "RetrievalTask": "task",
}

__all__ = [
    "CARS_KS",
    "CUB_KS",
    "DEFAULT_CHUNK_BYTES",
    "DISTRACTOR",
    "MARGIN_KINDS",
    "POOLING_KINDS",
    "SOP_KS",
    "CUB200RetrievalDataModule",
    "Cars196RetrievalDataModule",
    "ClassBalancedSampler",
    "EmbeddingNetwork",
    "GeM",
    "GlobalAvgPool",
    "MarginHead",
    "MarginKind",
    "PoolingKind",
    "RecallAtK",
    "RetrievalDataModule",
    "RetrievalTask",
    "SOPRetrievalDataModule",
    "make_pooling",
    "similarity_block_bytes",
]


def __getattr__(name: str) -> Any:
    """``RetrievalTask`` and the DataModules, imported with Lightning on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
