"""The embedding network of retrieval: a registered backbone without its classifier, global
pooling and an optional embedding layer, giving unit-length embeddings (ORIGINAL.md §5.2: the
GAP feature or an embedding layer, compared by cosine similarity). Plain PyTorch, no Lightning:
a script can embed images with it alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Backbone


class EmbeddingNetwork(nn.Module):
    """``image → backbone.forward_features → pooling → [1×1 conv + BN] → L2 normalisation``.

    The backbone stays a submodule (``backbone``), so that the task's DropBlock schedule, which
    looks for every :class:`~assembled_lightning.models.Backbone` inside its model, drives it.

    Args:
        backbone: A package backbone; its classifier is not used (build it with
            ``num_classes=0``).
        pooling: ``[N, C, H, W]`` → ``[N, C]`` (``pooling.GlobalAvgPool`` or ``pooling.GeM``).
        embedding_dim: Width of a 1×1 conv + BatchNorm embedding layer after the pooling; None
            or 0: the pooled feature is the embedding (``backbone.num_features`` wide).
    """

    def __init__(
        self, backbone: Backbone, pooling: nn.Module, embedding_dim: int | None = None
    ) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"the backbone must be a package Backbone (with forward_features), got "
                f"{type(backbone).__name__}"
            )
        if embedding_dim is not None and embedding_dim < 0:
            raise ValueError(f"embedding_dim must be >= 0 or None (no layer), got {embedding_dim}")
        self.backbone = backbone
        self.pooling = pooling
        self.embedding: nn.Sequential | None = None
        self.embedding_dim = embedding_dim or backbone.num_features
        if embedding_dim:
            self.embedding = nn.Sequential(
                nn.Conv2d(backbone.num_features, embedding_dim, 1, bias=False),
                nn.BatchNorm2d(embedding_dim),
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings ``[N, embedding_dim]``."""
        pooled = self.pooling(self.backbone.forward_features(images))
        if self.embedding is not None:
            pooled = self.embedding(pooled[:, :, None, None]).flatten(1)
        return F.normalize(pooled, dim=1)
