"""Recall@K for zero-shot image retrieval, as a torchmetrics metric.

The paper reports Recall@K on Stanford Online Products, CUB-200-2011 and Cars-196 (SOP Recall@1
82.9 → 85.9) with the standard zero-shot protocol of the original's ``metric/recall_metric.py``
(ORIGINAL.md §5.2): the query set *is* the gallery, and a query counts as retrieved at K when
one of its K nearest other samples (cosine similarity) has its label. The whole evaluation set
is needed at once, so the metric keeps every embedding and ranks them in
:meth:`RecallAtK.compute`, one block of queries at a time: SOP's 60,502 × 60,502 similarity
matrix (14.6 GB in float32) is never built.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

SOP_KS: tuple[int, ...] = (1, 10, 100, 1000)
"""The K reported on Stanford Online Products since Song et al. 2016 (the original's
``recall_metric.py`` defaults to K = 1, 5)."""

CUB_KS: tuple[int, ...] = (1, 2, 4, 8)
"""The K reported on CUB-200-2011."""

CARS_KS: tuple[int, ...] = (1, 2, 4, 8)
"""The K reported on Cars-196."""

DEFAULT_CHUNK_BYTES = 1_000_000_000
"""1 GB: a block of SOP's evaluation then holds 1,347 of its 60,502 queries (45 blocks)."""

DISTRACTOR = -1
"""The label of a gallery-only sample: it can be retrieved, but it is never a query."""

_KEY_FLOOR = torch.iinfo(torch.int64).min  # below every ranking key: a query's own key


def similarity_block_bytes(queries: int, gallery_size: int, max_k: int) -> int:
    """Peak bytes one block of ``queries`` rows takes in :meth:`RecallAtK.compute`: float32
    similarities and their int64 ranking keys (12 bytes a query-gallery pair), then the top-K
    keys and positions (16 bytes per neighbour). ``chunk_bytes`` is spent by this formula."""
    return queries * (12 * gallery_size + 16 * max_k)


def _ranking_keys(similarity: Tensor, reversed_positions: Tensor) -> Tensor:
    """int64 keys that order each row by (−similarity, gallery position), consuming
    ``similarity`` (float32, overwritten).

    ``topk`` on the floats picks among tied values in no documented order; on these keys, all
    distinct, it is exact and deterministic. The upper 32 bits are the float's bits made monotone
    (negative floats count down), the lower 32 ``2³² − 1 − position``, so a tie goes to the lower
    position.
    """
    similarity += 0.0  # −0.0 → +0.0: equal similarities must get equal keys
    bits = similarity.view(torch.int32)
    flip = bits >> 31  # −1 for negative floats: their other 31 bits grow as the value falls
    flip &= 0x7FFFFFFF
    bits ^= flip
    del flip
    keys = bits.to(torch.int64)
    del similarity, bits
    keys *= 2**32
    keys += reversed_positions
    return keys


def _validate_ks(ks: Sequence[int]) -> tuple[int, ...]:
    values = tuple(ks)
    bad = [k for k in values if isinstance(k, bool) or not isinstance(k, int) or k < 1]
    if not values or bad:
        raise ValueError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise ValueError(f"ks must be strictly increasing (sorted, no repeats), got {ks!r}")
    return values


def _check_integer(name: str, values: Tensor, size: int) -> None:
    if values.ndim != 1 or len(values) != size:
        raise ValueError(
            f"{name} must be 1-D with one entry per embedding ({size}), got shape "
            f"{tuple(values.shape)}"
        )
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {values.dtype}")


class RecallAtK(Metric):
    """Recall@K of zero-shot retrieval where the queries are the gallery (ORIGINAL.md §5.2).

    ``update(embeddings, labels, indexes)``: ``embeddings`` N×D (any float dtype; AMP's fp16 or
    bf16 are stored as float32), ``labels`` N ints (≥ 0, or ``-1`` for a distractor),
    ``indexes`` N ints, each sample's *global* index in the evaluation set. :meth:`compute`
    returns ``{"recall@K": fraction}`` for every K in ``ks`` (a dict, ready for ``log_dict``).

    - Every sample is in the gallery; every sample with a label ≥ 0 is a query. A distractor
      (label −1) can be retrieved, it is never a query and never matches.
    - A query is left out of its own neighbours by its global index, not by position or by an
      equal embedding: two copies of an image with different indices retrieve each other.
    - Samples that share a global index are one sample: DDP gathers every rank's samples, and
      ``DistributedSampler`` repeats some to even the shards. The first copy (rank 0's first,
      then in update order) is kept; copies with different labels are an error.
    - Embeddings are L2-normalised here (a model need not do it; an all-zero one stays zero), in
      float32, and compared by dot product in float32. The matmul follows torch's float32 matmul
      precision: under ``torch.set_float32_matmul_precision("high")`` CUDA computes it in TF32;
      keep "highest" to rank as the paper does.
    - Neighbours are ranked by (−similarity, global index): of two equally similar samples the
      one with the lower index is nearer, so a tie at the K-th place is decided without
      randomness.
    - A K above the gallery size − 1 ranks the whole gallery (every other sample): Recall@K is
      then the fraction of queries that have any same-label sample. A query without one is a
      miss at every K.

    The similarities of a block of queries with the whole gallery take at most ``chunk_bytes``
    (by :func:`similarity_block_bytes`; at least one query a block), besides the states and at
    most two float32 N×D copies of the embeddings. ``compute_on_cpu=True`` keeps a large
    gallery off the GPU between updates.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    embeddings: list[Tensor]  # one tensor, all ranks' samples, once synchronised under DDP
    labels: list[Tensor]
    indexes: list[Tensor]

    def __init__(
        self,
        ks: Sequence[int] = CUB_KS,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ks = _validate_ks(ks)
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
        self.chunk_bytes = chunk_bytes
        self.add_state("embeddings", [], dist_reduce_fx="cat")
        self.add_state("labels", [], dist_reduce_fx="cat")
        self.add_state("indexes", [], dist_reduce_fx="cat")

    def update(self, embeddings: Tensor, labels: Tensor, indexes: Tensor) -> None:
        if embeddings.ndim != 2:
            raise ValueError(
                f"embeddings must be 2-D (samples, features), got shape {tuple(embeddings.shape)}"
            )
        if not embeddings.is_floating_point():
            raise TypeError(f"embeddings must be floating point, got {embeddings.dtype}")
        _check_integer("labels", labels, len(embeddings))
        _check_integer("indexes", indexes, len(embeddings))
        if self.embeddings:
            width = self.embeddings[0].shape[1]
            if embeddings.shape[1] != width:
                raise ValueError(
                    f"embeddings have {embeddings.shape[1]} features, earlier updates had {width}"
                )
        self.embeddings.append(embeddings.detach().float())
        self.labels.append(labels.detach().long())
        self.indexes.append(indexes.detach().long())

    def forward(self, embeddings: Tensor, labels: Tensor, indexes: Tensor) -> None:
        """Only ``update``: a batch alone is no retrieval benchmark (one sample has no
        neighbour), so there is no per-batch value; :meth:`compute` ranks them all."""
        self.update(embeddings, labels, indexes)

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.embeddings, list) and not self.embeddings:
            raise ValueError("RecallAtK.compute() needs samples: call update() first")
        gallery, labels = self._unique_samples()
        gallery /= torch.linalg.vector_norm(gallery, dim=1, keepdim=True).clamp_min_(1e-12)
        queries = torch.nonzero(labels >= 0).squeeze(1)
        if len(gallery) < 2 or len(queries) == 0:
            raise ValueError(
                f"Recall@K needs at least 2 samples and one query (label ≥ 0); got "
                f"{len(gallery)} samples and {len(queries)} queries"
            )
        max_k = min(self.ks[-1], len(gallery) - 1)
        per_query = similarity_block_bytes(1, len(gallery), max_k)
        block = max(1, self.chunk_bytes // per_query)
        positions = torch.arange(len(gallery), device=gallery.device)
        reversed_positions = (2**32 - 1) - positions
        hits = torch.zeros(len(self.ks), dtype=torch.long, device=gallery.device)
        for rows in queries.split(block):
            keys = _ranking_keys(gallery[rows] @ gallery.T, reversed_positions)
            keys[torch.arange(len(rows), device=keys.device), rows] = _KEY_FLOOR
            nearest = keys.topk(max_k, dim=1).indices
            del keys
            matches = labels[nearest] == labels[rows, None]
            hits += torch.stack([matches[:, :k].any(dim=1).sum() for k in self.ks])
        recalls = hits.double() / len(queries)
        return {f"recall@{k}": recall.float() for k, recall in zip(self.ks, recalls, strict=True)}

    def _sync_dist(
        self, dist_sync_fn: Callable[..., Any] = gather_all_tensors, process_group: Any = None
    ) -> None:
        """Gather every rank's samples, also from a rank that has none (a small split over many
        devices): its empty states take the others' embedding width, so that every rank
        gathers tensors of the same rank and dtype. The local states are restored after
        ``compute`` (torchmetrics caches them before this call)."""
        group = process_group or self.process_group
        width = self.embeddings[0].shape[1] if self.embeddings else 0
        widths = dist_sync_fn(torch.tensor([width], device=self.device), group=group)
        width = max(int(w) for w in widths)
        if not self.embeddings and width:
            self.embeddings.append(torch.zeros(0, width, device=self.device))
            self.labels.append(torch.zeros(0, dtype=torch.long, device=self.device))
            self.indexes.append(torch.zeros(0, dtype=torch.long, device=self.device))
        super()._sync_dist(dist_sync_fn, process_group)

    def _unique_samples(self) -> tuple[Tensor, Tensor]:
        """Embeddings (a new tensor) and labels of one copy per global index, in index order
        (so a gallery position orders samples as their global index does)."""
        embeddings = dim_zero_cat(self.embeddings)
        labels = dim_zero_cat(self.labels)
        indexes = dim_zero_cat(self.indexes)
        if bool((labels < DISTRACTOR).any()):
            bad = labels[labels < DISTRACTOR].unique().tolist()
            raise ValueError(f"labels must be ≥ 0, or -1 for a distractor; got {bad}")
        if not bool(torch.isfinite(embeddings).all()):
            raise ValueError("embeddings contain NaN or infinity; they cannot be ranked")
        order = torch.argsort(indexes, stable=True)
        sorted_indexes, sorted_labels = indexes[order], labels[order]
        first = torch.ones_like(sorted_indexes, dtype=torch.bool)
        first[1:] = sorted_indexes[1:] != sorted_indexes[:-1]
        copy_labels = sorted_labels[first][first.cumsum(0) - 1]
        conflict = sorted_labels != copy_labels
        if bool(conflict.any()):
            index = int(sorted_indexes[conflict][0])
            found = labels[indexes == index].unique().tolist()
            raise ValueError(
                f"global index {index} was updated with different labels {found}: indexes must "
                "name samples of the whole evaluation set (e.g. the dataset index), not batch "
                "positions"
            )
        keep = order[first]
        return embeddings[keep], labels[keep]
