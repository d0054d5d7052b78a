"""The quickstart's embedded data set: coloured shapes drawn deterministically by the package, so
the whole training loop runs on a laptop CPU with nothing to download."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from .samples import collate_samples
from .stream import TrainingStream
from .transforms import ORIGINAL_MEAN_RGB

SHAPES = ("disc", "square", "triangle", "cross", "ring", "stripes")


def shape_indices(shapes: Sequence[str]) -> list[int]:
    """Indices into ``SHAPES`` of the named shapes (each once, at least two)."""
    unknown = [name for name in shapes if name not in SHAPES]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], SHAPES, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown shape {unknown[0]!r}{did_you_mean}; the shapes: {SHAPES}")
    if len(set(shapes)) != len(shapes) or len(shapes) < 2:
        raise ValueError(f"shapes must name at least two different shapes, got {list(shapes)}")
    return [SHAPES.index(name) for name in shapes]


def draw_shapes(
    count: int,
    size: int,
    seed: int,
    num_classes: int = len(SHAPES),
    shapes: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` uint8 images [N, 3, size, size] of random shapes at random positions, scales
    and colours on noisy backgrounds, plus their labels: class i is ``shapes[i]`` (default: the
    first ``num_classes`` of ``SHAPES``), so that disjoint shape sets make disjoint tasks, e.g.
    to pretrain on some shapes and transfer to the others."""
    if shapes is None:
        if not 2 <= num_classes <= len(SHAPES):
            raise ValueError(f"num_classes must be 2..{len(SHAPES)}, got {num_classes}")
        shapes = SHAPES[:num_classes]
    drawn = torch.tensor(shape_indices(shapes))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(drawn), (count,), generator=generator)
    centre = torch.rand(count, 2, generator=generator) * 0.4 + 0.3
    radius = torch.rand(count, generator=generator) * 0.15 + 0.15
    axis = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    dy = (y[None] - centre[:, 0, None, None]) / radius[:, None, None]
    dx = (x[None] - centre[:, 1, None, None]) / radius[:, None, None]
    distance = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack(
        [
            distance < 1,
            (dx.abs() < 0.8) & (dy.abs() < 0.8),
            (dy < 0.8) & (dy > -0.8) & (dx.abs() < (dy + 0.8) / 1.6 * 0.9),
            ((dx.abs() < 0.25) | (dy.abs() < 0.25)) & (dx.abs() < 1) & (dy.abs() < 1),
            (distance < 1) & (distance > 0.55),
            (torch.sin(dx * 6) > 0) & (distance < 1),
        ]
    )[drawn[labels], torch.arange(count)]
    background = torch.rand(count, 3, 1, 1, generator=generator) * 0.5
    foreground = torch.rand(count, 3, 1, 1, generator=generator) * 0.5 + 0.5
    noise = torch.rand(count, 3, size, size, generator=generator) * 0.2
    images = torch.where(masks[:, None], foreground, background) + noise
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


class _TensorImages(Dataset[dict[str, Any]]):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, prefix: str) -> None:
        mean = torch.tensor(ORIGINAL_MEAN_RGB).view(3, 1, 1)
        self.images, self.labels, self.prefix = images.float() - mean, labels, prefix
        self.flip = prefix == "train"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.images[index]
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return {
            "image": image,
            "target": int(self.labels[index]),
            "sample_id": f"{self.prefix}/{index:06d}",
            "index": index,  # a retrieval metric's global sample index
        }


class SyntheticShapesDataModule(L.LightningDataModule):
    """Shapes to classify (up to 6 classes), generated in memory: the quickstart's data.

    Args:
        num_classes: Shapes to tell apart, 2–6 (disc, square, triangle, cross, ring, stripes);
            None: 4, or as many as ``shapes`` names.
        train_size: Training images drawn.
        val_size: Validation images drawn (another seed than the training ones).
        image_size: Side of the square images, a multiple of 32.
        batch_size: Images per batch.
        num_workers: Loader worker processes (0: load in the main process).
        seed: Seed of the drawing, so every run sees the same images.
        shapes: The shapes to tell apart, by name, in label order (e.g. ``[cross, ring,
            stripes]``); None: the first ``num_classes`` shapes. Disjoint shape sets make a
            pretraining task and a transfer task.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        train_size: int = 2048,
        val_size: int = 512,
        image_size: int = 32,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        shapes: list[str] | None = None,
    ) -> None:
        super().__init__()
        if image_size % 32:
            raise ValueError(
                f"image_size must be a multiple of 32 (BigLittleNet), got {image_size}"
            )
        self.save_hyperparameters()
        if shapes is not None:
            shape_indices(shapes)  # a typo fails here, with the known names
            if num_classes not in (None, len(shapes)):
                raise ValueError(
                    f"num_classes={num_classes} but {len(shapes)} shapes are named; leave "
                    "num_classes out or make it match"
                )
        num_classes = len(shapes) if shapes is not None else num_classes or 4
        if not 2 <= num_classes <= len(SHAPES):
            raise ValueError(f"num_classes must be 2..{len(SHAPES)}, got {num_classes}")
        self.num_classes = num_classes
        self.classes = list(shapes) if shapes is not None else list(SHAPES[:num_classes])
        """Class names in label order."""
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_set: _TensorImages
        self.val_set: _TensorImages

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        for name, size, seed in (
            ("train", hp["train_size"], hp["seed"]),
            ("val", hp["val_size"], hp["seed"] + 1),
        ):
            images, labels = draw_shapes(size, hp["image_size"], seed, shapes=self.classes)
            setattr(self, f"{name}_set", _TensorImages(images, labels, name))

    def _loader(
        self, dataset: Dataset[dict[str, Any]], sampler: TrainingStream | None = None
    ) -> DataLoader[Any]:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )

    def optimizer_steps(self, epochs: float) -> int:
        """Optimizer steps of ``epochs`` training epochs on the attached trainer (the
        original's ``int(epochs · N / batch)``, see :mod:`.stream`)."""
        if not hasattr(self, "train_set"):
            self.setup("fit")
        return TrainingStream.from_trainer(self.train_set, self.batch_size, self.trainer).steps(
            epochs
        )

    def train_dataloader(self) -> DataLoader[Any]:
        """Full batches of the original's training stream (:mod:`.stream`)."""
        stream = TrainingStream.from_trainer(self.train_set, self.batch_size, self.trainer)
        stream.refresh_every_epoch(self.trainer)
        return self._loader(self.train_set, stream)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.val_set)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.val_set)
