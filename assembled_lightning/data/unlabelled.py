"""A folder of unlabelled images to predict on: every image under the root (sub-folders too),
decoded as training data is and given the eval preprocessing, with the path relative to the root
as its sample id.

Files are found by torchvision's image suffixes (:data:`.datasets.IMAGE_SUFFIXES`), in sorted
order, so the order of predictions is the same on every machine. Nothing outside the root is
read: a symbolic link that points out of it is an error (copy the file in instead), and linked
folders are not descended into (inside the root, their images are listed under their real path).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from .datasets import IMAGE_SUFFIXES
from .samples import ImageDataset, Sample, collate_samples
from .transforms import Normalization, eval_transform

NO_LABEL = -1
"""The ``target`` of an unlabelled image in a batch (the batch format needs an integer)."""


def _outside(path: Path, root: Path) -> bool:
    return not path.resolve().is_relative_to(root)


def find_images(root: Path) -> list[Sample]:
    """The images under ``root`` (recursively, sorted by relative path), as unlabelled samples
    whose id is the path relative to ``root``."""
    real_root = root.resolve()
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):  # never follows linked folders
        here = Path(folder)
        for name in subfolders + files:
            entry = here / name
            if entry.is_symlink() and _outside(entry, real_root):
                raise ValueError(
                    f"{entry} is a symbolic link to {os.readlink(entry)}, outside {root}: only "
                    "files inside the folder are read. Copy the file into the folder, or remove "
                    "the link"
                )
        found += [here / name for name in files if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    ids = sorted((path.relative_to(root).as_posix(), path) for path in found)
    return [Sample(path, NO_LABEL, sample_id) for sample_id, path in ids]


class UnlabelledImageFolderDataModule(L.LightningDataModule):
    """Every image under ``root`` (sub-folders too), to predict on (``predict`` only).

    Batches are the package's (``image``, ``sample_id`` = the path relative to ``root``,
    ``num_skipped``); ``target`` is -1 (no label). It knows no classes, so the model's classes
    stay those of its checkpoint; name them with ``TopKPredictionWriter``'s ``categories``.

    Args:
        root: Folder of images, searched recursively (suffixes of torchvision's ImageFolder:
            .jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp).
        batch_size: Images per batch and device.
        num_workers: Loader worker processes (0: load in the main process).
        pin_memory: Pin host memory of batches for faster copies to a GPU.
        eval_type: Eval preprocessing type the model expects: ``imagenet`` (shorter side 256 →
            centre 224), ``imagenet_224_256``, ``imagenet_224_256a``, ``imagenet_XXX`` or
            ``imagenet_XXXa``.
        normalization: ``original`` (mean subtraction on 0..255, for converted TF weights) or
            ``torchvision`` (mean/std on 0..1), as the model was trained.
        skip_bad_images: Skip files that do not decode (with a warning) instead of stopping;
            they get no prediction.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        eval_type: str = "imagenet",
        normalization: Normalization = "original",
        skip_bad_images: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.root = Path(root)
        if not self.root.is_dir():
            problem = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(
                f"image folder {self.root} {problem}: pass the folder holding the images to "
                "predict on (--data.root=FOLDER; sub-folders are searched too)"
            )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.transform = eval_transform(eval_type, normalization)
        self.skip_bad_images = skip_bad_images
        self.dataset: ImageDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        self._predict_set()

    def _predict_set(self) -> ImageDataset:
        if self.dataset is None:
            samples = find_images(self.root)
            if not samples:
                raise FileNotFoundError(
                    f"no images under {self.root} (searched recursively for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))}): put the images to predict on in it, "
                    "or point --data.root at the folder that holds them"
                )
            self.dataset = ImageDataset(samples, self.transform, self.skip_bad_images)
        return self.dataset

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(
            self._predict_set(),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate_samples,
        )
