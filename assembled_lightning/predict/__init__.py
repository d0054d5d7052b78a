"""Predictions users can use: the top-k classes of every image, named, in one CSV or JSON file
(also under DDP)."""

from .writer import TopKPredictionWriter

__all__ = ["TopKPredictionWriter"]
