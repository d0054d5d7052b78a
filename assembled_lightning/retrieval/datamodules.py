"""DataModules of zero-shot retrieval: SOP, CUB-200-2011 and Cars-196 (paper Table 9).

Zero-shot means that the test classes are never trained on: CUB trains on classes 1–100 and
tests on 101–200, Cars-196 on 1–98 / 99–196 (both annotation files together), SOP on its own
11,318 / 11,316 class split. Training batches are P×K class-balanced
(:class:`~.sampler.ClassBalancedSampler`).

Honest protocol: the original selected its checkpoints (and so its reported Recall@1) on the
*test* classes' Recall@1. Here ``val_classes`` holds out the last classes of the training range
as validation classes, never trained on: ``fit`` validates (and a ``ModelCheckpoint`` on
``val/recall@1`` selects) on them, and ``test`` reports on the test classes. ``val_classes: 0``
validates on the test classes, as the original did.
"""

from __future__ import annotations

import math
import os
from typing import Any

from torch.utils.data import DataLoader

from ..data import datasets
from ..data.datamodules import ImageDataModule
from ..data.samples import ImageDataset, Sample
from .metrics import CARS_KS, CUB_KS, SOP_KS
from .sampler import ClassBalancedSampler


class IndexedImageDataset(ImageDataset):
    """An evaluation set whose items also carry ``index``, their position in the split: the
    global index by which :class:`~.metrics.RecallAtK` excludes a query from its own
    neighbours and merges DDP's repeated samples."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        if "image" in item:
            item["index"] = index
        return item


def held_out_classes(num_classes: int, val_classes: float) -> int:
    """Validation classes carved from ``num_classes`` training classes: ``round(val_classes ·
    num_classes)``, at least one when ``val_classes > 0``, never all."""
    if not val_classes:
        return 0
    if num_classes < 2:
        raise ValueError(
            f"val_classes={val_classes} needs at least 2 training classes to hold some out, "
            f"the data has {num_classes}; set val_classes: 0"
        )
    return min(max(round(val_classes * num_classes), 1), num_classes - 1)


class RetrievalDataModule(ImageDataModule):
    """Zero-shot retrieval: train on P×K batches of the training classes, validate on the
    held-out ``val_classes``, test on the test classes; every evaluation item is a query
    against all the others. Subclasses set the splits, ``recall_ks`` and :meth:`parse`.

    ``num_classes`` counts the trained classes (the margin head's outputs): the training
    range's minus the validation classes.

    Args:
        root: Folder holding the data set in its own layout.
        images_per_class: K, images of each class in a batch; ``batch_size`` (images per batch
            and device) must be a multiple of it, P = ``batch_size / K`` classes.
        val_classes: Fraction of the training classes (the last ones of the range, by label)
            held out for validation and checkpoint selection; 0 validates on the test classes,
            as the original (which selected its checkpoints on test Recall@1).
        **kwargs: The options of :class:`~assembled_lightning.data.datamodules.ImageDataModule`
            (``batch_size``, ``train_size``, ``eval_type``, ``autoaugment`` ...).
    """

    recall_ks: tuple[int, ...] = CUB_KS
    """The K this data set's Recall@K is reported at (the task's ``recall_ks``)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        images_per_class: int = 4,
        val_classes: float = 0.1,
        **kwargs: Any,
    ) -> None:
        for option in ("train_shards", "teacher_logits", "val_fraction"):
            if kwargs.get(option):
                raise ValueError(
                    f"{type(self).__name__} does not take {option}={kwargs[option]!r}: "
                    "retrieval trains on P×K batches of image files and holds out whole "
                    "classes (val_classes) for validation"
                )
        super().__init__(root, **kwargs)
        if images_per_class < 1 or self.batch_size % images_per_class:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of images_per_class "
                f"{images_per_class} (P classes × K images per batch)"
            )
        if not 0 <= val_classes < 1:
            raise ValueError(
                f"val_classes must be a fraction in [0, 1), got {val_classes}: e.g. 0.1 holds "
                "out the last 10 % of the training classes, 0 validates on the test classes"
            )
        self.images_per_class = images_per_class
        self.val_classes = val_classes
        self._splits: dict[str, list[Sample]] | None = None

    def retrieval_splits(self) -> dict[str, list[Sample]]:
        """``train`` (the trained classes), ``val`` (held-out classes; empty with
        ``val_classes: 0``) and ``test`` samples; parsed once."""
        if self._splits is None:
            samples, classes = self.parse(self.train_split)
            trained = len(classes) - held_out_classes(len(classes), self.val_classes)
            self.classes = classes[:trained]
            test, _ = self.parse(self.eval_split)
            self._splits = {
                "train": [s for s in samples if s.label < trained],
                "val": [s for s in samples if s.label >= trained],
                "test": test,
            }
            for name, split in self._splits.items():
                if not split and (name != "val" or self.val_classes):
                    raise FileNotFoundError(
                        f"the {name} classes of {type(self).__name__} under {self.root} have "
                        "no images: check the data root"
                    )
        return self._splits

    @property
    def num_classes(self) -> int:
        """Trained classes (known after reading the training split's listing)."""
        self.retrieval_splits()
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        splits = self.retrieval_splits()
        if stage in (None, "fit") and "train" not in self.datasets:
            self.datasets["train"] = ImageDataset(
                splits["train"], self.train_transform, self.skip_bad_images, replace_bad_images=True
            )
        for name in ("val", "test"):
            if name not in self.datasets and splits[name]:
                self.datasets[name] = IndexedImageDataset(
                    splits[name], self.eval_transform, self.skip_bad_images
                )

    def _sampler(self) -> ClassBalancedSampler:
        """The P×K sampler of the attached trainer's epoch, rank and world size, seeded by
        Lightning's global seed."""
        self.setup("fit")
        trainer = self.trainer
        sampler = ClassBalancedSampler(
            [sample.label for sample in self.retrieval_splits()["train"]],
            self.batch_size // self.images_per_class,
            self.images_per_class,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
        )
        sampler.set_epoch(trainer.current_epoch if trainer is not None else 0)
        return sampler

    def optimizer_steps(self, epochs: float) -> int:
        """Optimizer steps of ``epochs`` epochs of P×K batches (the task's LR and DropBlock
        schedules span them)."""
        accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        return int(epochs * math.ceil(self._sampler().batches_per_epoch / accumulate))

    def _eval_loader(self, name: str) -> DataLoader[Any]:
        self.setup("validate")
        dataset = self.datasets[name]
        world_size = self.trainer.world_size if self.trainer is not None else 1
        self.bad_files.set_epoch_share("eval", math.ceil(len(dataset) / world_size))
        return self.data_loader(dataset)

    def train_dataloader(self) -> DataLoader[Any]:
        sampler = self._sampler()
        self.bad_files.set_epoch_share("train", len(sampler))
        return self.data_loader(self.datasets["train"], sampler)

    def val_dataloader(self) -> DataLoader[Any]:
        """The held-out validation classes; with ``val_classes: 0`` the test classes."""
        return self._eval_loader("val" if self.val_classes else "test")

    def test_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("test")


class SOPRetrievalDataModule(RetrievalDataModule):
    """Stanford Online Products: train on its 11,318 training classes (59,551 images), test on
    its 11,316 test classes (60,502 images); Recall@1/10/100/1000."""

    recall_ks = SOP_KS

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_stanford_online_products(self.root, split)


class CUB200RetrievalDataModule(RetrievalDataModule):
    """CUB-200-2011: train on classes 1–100 (5,864 images), test on 101–200 (5,924);
    Recall@1/2/4/8."""

    train_split = "retrieval_train"
    eval_split = "retrieval_test"
    recall_ks = CUB_KS

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_cub200(self.root, split)


class Cars196RetrievalDataModule(RetrievalDataModule):
    """Cars-196 (Stanford Cars): train on classes 1–98 (8,054 images), test on 99–196 (8,131),
    from the train and test annotations together; Recall@1/2/4/8."""

    train_split = "retrieval_train"
    eval_split = "retrieval_test"
    recall_ks = CARS_KS

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_cars196_retrieval(self.root, split)
