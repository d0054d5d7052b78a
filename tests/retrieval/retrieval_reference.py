"""Helpers of the retrieval task tests: the brute-force Recall@K reference and embedding
extraction from a trained task, independent of RecallAtK."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from assembled_lightning.retrieval import RetrievalTask

TINY_MODEL = {"base_width": 8, "block_counts": [1, 1, 1, 1]}
KS = (1, 2, 4, 8)


def brute_force_recall(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every item a query against all the others: cosine similarity in float64, ties to the
    lower index, hit at K when one of the K nearest has the query's label."""
    x = embeddings.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    similarity = x @ x.T
    hits = dict.fromkeys(KS, 0)
    for q in range(len(x)):
        others = np.array([i for i in range(len(x)) if i != q])
        ranked = others[np.lexsort((others, -similarity[q, others]))]
        for k in KS:
            hits[k] += bool(np.any(labels[ranked[:k]] == labels[q]))
    return {f"recall@{k}": hits[k] / len(x) for k in KS}


@torch.no_grad()
def extract(task: RetrievalTask, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    task.eval()
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item["image"] for item in items])
    return task(images).numpy(), np.array([item["target"] for item in items])
