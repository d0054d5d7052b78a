"""Calibration and held-out images for int8 quantization, from any DataModule's eval split.

Eval splits are usually stored class by class (ImageNet's ``val/<wnid>/``), so the first N
batches would calibrate on a handful of classes: both sets are drawn from one seeded
permutation of the whole split instead, disjoint, in the DataModule's own batches and
preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

EvalSplit = Literal["val", "test"]


@dataclass(frozen=True)
class CalibrationImages:
    """Preprocessed input batches: those the quantizer observes and those it is judged on."""

    calibration: list[torch.Tensor]
    held_out: list[torch.Tensor]


def eval_loader(datamodule: L.LightningDataModule, split: EvalSplit) -> DataLoader[Any]:
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    datamodule.setup("validate" if split == "val" else "test")
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    if not isinstance(loader, DataLoader):
        raise TypeError(f"{type(datamodule).__name__}.{split}_dataloader() gives no DataLoader")
    return loader


def images_of(batch: Any) -> torch.Tensor:
    """The model input of a batch: our DataModules' ``batch["image"]`` or a tuple's first."""
    images = batch["image"] if isinstance(batch, dict) else batch[0]
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise TypeError("calibration batches must hold images as a float [N, 3, H, W] tensor")
    return images.float()


def calibration_images(
    datamodule: L.LightningDataModule,
    calibration_batches: int = 8,
    held_out_batches: int = 8,
    split: EvalSplit = "val",
    seed: int = 0,
) -> CalibrationImages:
    """``calibration_batches`` + ``held_out_batches`` disjoint batches of the eval ``split``,
    drawn at random (``seed``) across the whole split."""
    if calibration_batches < 1 or held_out_batches < 0:
        raise ValueError(
            f"need calibration_batches >= 1 and held_out_batches >= 0, got "
            f"{calibration_batches} and {held_out_batches}"
        )
    loader = eval_loader(datamodule, split)
    batch_size = loader.batch_size or 1
    dataset = loader.dataset
    size = len(dataset)  # type: ignore[arg-type]
    wanted = (calibration_batches + held_out_batches) * batch_size
    if size < calibration_batches * batch_size + min(held_out_batches, 1):
        raise ValueError(
            f"the {split} split has {size} images, fewer than {calibration_batches} calibration "
            f"batches of {batch_size} plus held-out images: lower --calibration-batches or the "
            "DataModule's batch_size"
        )
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:wanted].tolist()
    cut = calibration_batches * batch_size

    def batches(indices: list[int]) -> list[torch.Tensor]:
        subset = DataLoader(
            Subset(dataset, indices),
            batch_size=batch_size,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
        )
        return [images_of(batch) for batch in subset]

    return CalibrationImages(batches(order[:cut]), batches(order[cut:]) if order[cut:] else [])
