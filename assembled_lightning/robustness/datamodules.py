"""LightningDataModules for corrupted evaluation: the released ImageNet-C, and any eval
DataModule corrupted on the fly on the device (how the paper's Food-101 mCE is made).

Both yield batches of uint8 images with ``corruption`` (list of names, ``"clean"`` for the
uncorrupted images) and ``severity`` (0 for clean) per image, and normalise them on the device
(``on_after_batch_transfer``) with the weights' normalisation; :class:`~.task.RobustnessTask`
scores them per corruption × severity.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import datasets
from ..data.bad_files import BadFileCounter
from ..data.datamodules import ImageDataModule
from ..data.samples import ImageDataset, Sample
from ..data.transforms import EvalTransform, Normalization, Normalize, eval_transform
from .corruptions import (
    SEVERITIES,
    corrupt,
    get_corruption,
    quantize_like_release,
    resolve_corruptions,
    resolve_severities,
)
from .grid import CorruptionGrid, GridPart, grid_loader, groups
from .metrics import CLEAN

IMAGENET_C_LAYOUT = """  <root>/<corruption>/<severity>/<wnid>/*.JPEG
  e.g. <root>/gaussian_noise/1/n01440764/ILSVRC2012_val_00000293.JPEG
  (or with the released tar files' group folders: <root>/noise/gaussian_noise/1/<wnid>/...)
Get ImageNet-C from https://zenodo.org/record/2235448 (the 5 tar files, extracted into <root>),
or make it from ImageNet's val folder with `assembled-lightning make-imagenet-c`."""

GROUP_FOLDERS = ("noise", "blur", "weather", "digital", "extra")


class ToUint8(nn.Module):
    """An eval transform without its normalisation: resize and crop, then uint8 (what the
    reference generator corrupts: a PIL image of the resized crop)."""

    def __init__(self, transform: EvalTransform) -> None:
        super().__init__()
        self.resize_and_crop = EvalTransform(
            transform.resize, transform.crop, transform.interpolation, "original"
        )
        self.resize_and_crop.normalize = nn.Identity()  # type: ignore[assignment]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.resize_and_crop(image).round().clamp(0, 255).to(torch.uint8)


class RequireSize(nn.Module):
    """ImageNet-C images are used as they are: a file of another size means a different
    benchmark (or a resized copy), so it stops the run instead of being resized."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[-2:]) != (self.size, self.size):
            raise ValueError(
                f"an ImageNet-C image is {image.shape[-1]}×{image.shape[-2]}, expected "
                f"{self.size}×{self.size}: the released files are used as they are, without "
                "resizing; set image_size to the size your copy was made at (e.g. 256 for "
                "the assembled-cnn 292 → 256 version)"
            )
        return image


class _GridDataModule(L.LightningDataModule):
    """Loader, bad-file counting and on-device normalisation shared by the two modules."""

    grid: CorruptionGrid | None

    def __init__(
        self,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
        normalization: Normalization,
        max_bad_fraction: float,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"need batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
            )
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.normalize = Normalize(normalization)
        self.bad_files = BadFileCounter(max_bad_fraction)
        self.grid = None

    def build_grid(self) -> CorruptionGrid:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.grid is None:
            self.grid = self.build_grid()

    def test_dataloader(self) -> DataLoader[Any]:
        self.setup("test")
        assert self.grid is not None
        return grid_loader(
            self.grid, self.trainer, self.batch_size, self.num_workers, self.pin_memory
        )

    predict_dataloader = test_dataloader
    val_dataloader = test_dataloader

    def corrupt_batch(self, batch: dict[str, Any]) -> None:
        """Hook: corrupt the batch's uint8 images in place (on-the-fly corruption)."""

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> Any:
        self.bad_files.count(batch, "eval")
        if len(batch["target"]):
            self.corrupt_batch(batch)
            batch["image"] = self.normalize.to(batch["image"].device)(batch["image"])
        return batch


class ImageNetCDataModule(_GridDataModule):
    """The released ImageNet-C (or one made by ``make-imagenet-c``), evaluated as it is.

    Every ``<corruption>/<severity>`` folder is one part; its images are decoded and used without
    resizing (the released files are already 224×224 centre crops: a second Resize(256) +
    CenterCrop(224) would zoom in and change the numbers). ``clean_root`` adds ImageNet's clean
    validation images with the usual eval preprocessing, for the relative mCE.

    Args:
        root: The ImageNet-C folder (layout in the error message when it is missing).
        corruptions: Corruptions to evaluate (default: all 19; name fewer to evaluate a
            subset, e.g. the 15 of the official benchmark).
        severities: Severities to evaluate (default 1–5; mCE needs all five).
        clean_root: ImageNet's folder (with ``val/<wnid>/``) to also score the clean images.
        image_size: Side of the files (224; 256 for the assembled-cnn 292 → 256 version).
        num_classes: Classes expected (1000; fewer for a subset).
        eval_type: Eval preprocessing of the clean images (see ``ImageDataModule``).
        normalization: ``original`` (converted TF weights) or ``torchvision``.
        batch_size: Images per batch and device.
        num_workers: Loader worker processes.
        pin_memory: Pin host memory of batches.
        skip_bad_images: Skip files that do not decode, with a warning (dropped from the
            scores, counted) instead of stopping.
        max_bad_fraction: With ``skip_bad_images``, stop once more than this fraction is bad.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        corruptions: list[str] | None = None,
        severities: list[int] = list(SEVERITIES),  # noqa: B006 (jsonargparse shows it)
        clean_root: str | os.PathLike[str] | None = None,
        image_size: int = 224,
        num_classes: int = 1000,
        eval_type: str = "imagenet",
        normalization: Normalization = "original",
        batch_size: int = 64,
        num_workers: int = 4,
        pin_memory: bool = True,
        skip_bad_images: bool = False,
        max_bad_fraction: float = 0.01,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, normalization, max_bad_fraction)
        self.save_hyperparameters()
        self.root = Path(root)
        self.corruptions = resolve_corruptions(corruptions)
        self.severities = resolve_severities(severities)
        self.clean_root = Path(clean_root) if clean_root else None
        self.expected_num_classes = num_classes
        self.skip_bad_images = skip_bad_images
        self.image_transform = RequireSize(image_size)
        self.clean_transform = ToUint8(eval_transform(eval_type))
        self.classes: list[str] = []

    def corruption_folder(self, corruption: str) -> Path:
        """``<root>/<corruption>``, or under its group folder as the tar files extract."""
        direct = self.root / corruption
        if direct.is_dir():
            return direct
        for group in (get_corruption(corruption).group, "extra"):
            grouped = self.root / group / corruption
            if grouped.is_dir():
                return grouped
        raise FileNotFoundError(
            f"ImageNet-C corruption {corruption!r} not found under {self.root}; pass "
            f"corruptions=[...] to evaluate fewer.\nExpected layout:\n{IMAGENET_C_LAYOUT}"
        )

    @property
    def num_classes(self) -> int:
        return self.expected_num_classes

    def _part_samples(self, folder: Path) -> list[Sample]:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} is missing: every corruption needs its severity folders "
                f"{self.severities}.\nExpected layout:\n{IMAGENET_C_LAYOUT}"
            )
        samples, classes = datasets.parse_class_folders(self.root, folder, self.classes or None)
        if not self.classes:
            if len(classes) != self.expected_num_classes:
                raise ValueError(
                    f"{folder} has {len(classes)} class folders, expected "
                    f"{self.expected_num_classes}: check the data root (or set num_classes "
                    "for a subset)"
                )
            self.classes = classes
        if not samples:
            raise FileNotFoundError(f"{folder} has no images")
        return samples

    def build_grid(self) -> CorruptionGrid:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"ImageNet-C not found at {self.root}.\nExpected layout:\n{IMAGENET_C_LAYOUT}"
            )
        parts = []
        for corruption in self.corruptions:
            folder = self.corruption_folder(corruption)
            for severity in self.severities:
                samples = self._part_samples(folder / str(severity))
                dataset = ImageDataset(samples, self.image_transform, self.skip_bad_images)
                parts.append(GridPart(corruption, severity, dataset))
        if self.clean_root is not None:
            clean, _ = datasets.parse_class_folders(
                self.clean_root, self.clean_root / "val", self.classes
            )
            dataset = ImageDataset(clean, self.clean_transform, self.skip_bad_images)
            parts.append(GridPart(CLEAN, 0, dataset))
        return CorruptionGrid(parts)


class CorruptedDataModule(_GridDataModule):
    """Any eval DataModule's images, corrupted on the fly on the device.

    The wrapped module's eval split is resized and cropped as usual (uint8, as the reference
    generator corrupts a PIL image of the crop), then each batch is corrupted on the device it
    lands on, group by group, and normalised. The clean images come first (corruption
    ``"clean"``), so the report has the clean error too. Random draws come from a generator
    seeded per batch from ``seed`` and the batch's first image: reproducible for a given batch
    size and number of processes.

    Args:
        data: The eval DataModule to corrupt (e.g. ``Food101DataModule``); its batch size,
            workers, eval preprocessing and normalisation are used.
        corruptions: Corruptions to apply (default: all 19).
        severities: Severities to apply (default 1–5).
        include_clean: Score the uncorrupted images too (clean error, relative mCE).
        seed: Seed of the corruptions' random draws.
        jpeg_quality: Re-encode every corrupted image as JPEG of this quality after uint8
            truncation, as the released ImageNet-C files are (85); None: truncation only.
        frost_textures: Folder with the reference's frost images (frost1.png … frost5.jpg);
            None: the procedural frost.
    """

    def __init__(
        self,
        data: ImageDataModule,
        corruptions: list[str] | None = None,
        severities: list[int] = list(SEVERITIES),  # noqa: B006 (jsonargparse shows it)
        include_clean: bool = True,
        seed: int = 0,
        jpeg_quality: int | None = None,
        frost_textures: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            data.batch_size,
            data.num_workers,
            data.pin_memory,
            data.hparams.get("normalization", "original"),
            data.bad_files.max_bad_fraction,
        )
        self.save_hyperparameters(ignore=["data"])
        self.data = data
        self.corruptions = resolve_corruptions(corruptions)
        self.severities = resolve_severities(severities)
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100 or None, got {jpeg_quality}")
        self.include_clean, self.seed, self.jpeg_quality = include_clean, seed, jpeg_quality
        self.frost_textures = frost_textures

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def build_grid(self) -> CorruptionGrid:
        if not isinstance(self.data.eval_transform, EvalTransform):
            raise TypeError(f"{type(self.data).__name__} has no EvalTransform to corrupt after")
        dataset = self.data.eval_dataset(self.data.eval_split, ToUint8(self.data.eval_transform))
        dataset.skip_bad_images = self.data.skip_bad_images
        parts = [GridPart(CLEAN, 0, dataset)] if self.include_clean else []
        parts += [
            GridPart(corruption, severity, dataset)
            for corruption in self.corruptions
            for severity in self.severities
        ]
        return CorruptionGrid(parts)

    def corrupt_batch(self, batch: dict[str, Any]) -> None:
        images = batch["image"]
        out = images.clone()
        first = int(batch["grid_index"][0])
        for corruption, severity, rows in groups(batch):
            if corruption == CLEAN:
                continue
            generator = torch.Generator(device=images.device)
            generator.manual_seed(
                zlib.crc32(f"{self.seed}/{corruption}/{severity}/{first}".encode())
            )
            inputs = {}
            if corruption == "frost" and self.frost_textures is not None:
                inputs["frost_textures"] = self.frost_textures
            rows = rows.to(images.device)
            corrupted = corrupt(
                images[rows].float() / 255, corruption, severity, generator=generator, **inputs
            )
            out[rows] = quantize_like_release(corrupted, self.jpeg_quality)
        batch["image"] = out
