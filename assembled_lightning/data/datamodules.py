"""LightningDataModules for ImageNet, the fine-grained sets, the retrieval sets and any folder.

Each exposes ``num_classes``, its train/eval transforms and the usual loader settings; batches
are dicts (``image``, ``target``, ``sample_id``, ``num_skipped``, ``skipped_files``). Under DDP
Lightning inserts the distributed sampler and seeds workers per rank
(``seed_everything(..., workers=True)``).

Bad files (``skip_bad_images``): a bad training file is replaced by the next good one of the
split, so batches stay full and even (mixup) and the stream keeps its step counts; a bad
evaluation file is dropped from its batch, so that no image is scored twice and metrics cover
the good files only (ClassificationTask steps over a batch left empty). ClassificationTask logs
the counts per epoch (``train/skipped_images``, ``val/skipped_images``, summed over ranks); each
process stops the run with an error naming the count, the fraction and examples once more than
``max_bad_fraction`` of its share of a split turns out bad.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from . import datasets
from .bad_files import BadFileCounter
from .samples import Batch, ImageDataset, Sample, collate_samples
from .shards import ShardedImageDataset
from .stream import RepeatedPasses, TrainingStream, data_passes
from .teacher_logits import TeacherLogitStore
from .transforms import (
    AutoAugmentPolicy,
    DeviceReadyTransform,
    DeviceTrainAugmentation,
    Normalization,
    TrainTransform,
    eval_transform,
)
from .validation_split import carve_validation


class ImageDataModule(L.LightningDataModule):
    """Shared machinery: parse splits → :class:`ImageDataset` → loaders.

    ``augment_on_device=True`` moves the random crop, flip and AutoAugment of training batches
    to the device (``on_after_batch_transfer``, the same code as on the CPU); loader workers
    then only decode and resize, which helps when CPU cores are scarce next to a fast GPU.

    Training batches follow the original's data stream (:mod:`.stream`): reshuffled passes cut
    into full batches across epoch boundaries, two passes per epoch when the task mixes the
    halves of each batch (mixup 'halves'), so ``max_epochs`` epochs take the original's
    ``int(epochs · N / batch)`` optimizer steps and no image is dropped (:meth:`optimizer_steps`).

    Subclasses set ``train_split`` / ``eval_split`` and implement :meth:`parse`.

    Args:
        root: Folder holding the data set in its own layout (a missing one raises an error that
            shows the layout expected).
        batch_size: Images per batch and device. With ``mixup_type: halves`` the task mixes
            each batch into one of half the size, as the original loads 2× its batch, and an
            epoch makes two passes over the data, as the original repeats it twice.
        num_workers: Loader worker processes (0: load in the main process).
        pin_memory: Pin host memory of batches for faster copies to a GPU.
        persistent_workers: Keep loader workers alive between epochs.
        train_size: Side of the square training crop (paper: 224; 256 for BigLittleNet rows).
        eval_type: Eval preprocessing type: ``imagenet`` (shorter side 256 → centre 224),
            ``imagenet_224_256``, ``imagenet_224_256a``, ``imagenet_XXX`` or ``imagenet_XXXa``.
        normalization: ``original`` (mean subtraction on 0..255, for converted TF weights) or
            ``torchvision`` (mean/std on 0..1).
        autoaugment: AutoAugment policy of training images, applied to uint8 crops: ``none``,
            or one of the original's policies (``imagenet`` for ImageNet, the fine-tune policy
            for the fine-grained sets).
        skip_bad_images: Skip bad files (that do not decode or cannot be read) with a warning
            instead of stopping the run: training replaces each by the next good file of the
            split, evaluation drops it from its batch; the counts are logged per epoch.
        max_bad_fraction: With ``skip_bad_images``, stop with an error once more than this
            fraction of a split's files (of this process's share of an epoch, at the least)
            turns out bad: that many means a broken copy of the data, not a few bad files.
        teacher_logits: Folder of a teacher-logit store (``assembled-lightning
            extract-logits``); its logits ride along in training batches for distillation.
        augment_on_device: Crop, flip and AutoAugment training batches on the device
            (``on_after_batch_transfer``) instead of in the loader workers.
        train_shards: Folder of WebDataset shards (``assembled-lightning make-shards``) to
            stream training images from instead of ``root``.
        shuffle_buffer: Samples held in the shuffle buffer when streaming ``train_shards``.
        download: Fetch the data set into ``root`` first (torchvision's downloaders, where one
            exists); off by default so that nothing downloads unasked.
        val_fraction: Hold out this fraction of each class of the training split as the
            validation split (``validate`` and the checkpoint monitor see it; ``test`` sees the
            data set's test split), so that checkpoints are not selected on the test split;
            0 validates on the evaluation split, as the original did (:mod:`.validation_split`).
        split_seed: Seed of the held-out draw; the split never depends on the global seed or
            the rank, so every process and every later ``test`` run holds out the same images.
    """

    train_split = "train"
    eval_split = "test"
    expected_num_classes: int | None = None

    def __init__(
        self,
        root: str | os.PathLike[str],
        batch_size: int = 32,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = False,
        train_size: int = 224,
        eval_type: str = "imagenet",
        normalization: Normalization = "original",
        autoaugment: AutoAugmentPolicy = "none",
        skip_bad_images: bool = False,
        max_bad_fraction: float = 0.01,
        teacher_logits: str | os.PathLike[str] | None = None,
        augment_on_device: bool = False,
        train_shards: str | os.PathLike[str] | None = None,
        shuffle_buffer: int = 1000,
        download: bool = False,
        val_fraction: float = 0.0,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(
                f"val_fraction must be in [0, 1), got {val_fraction}: e.g. 0.1 holds out 10 % "
                "of each class for validation, 0 validates on the evaluation split"
            )
        if val_fraction and train_shards:
            raise ValueError(
                "val_fraction cannot carve a validation split out of streamed train_shards: "
                "make the shards from the training part only, or set val_fraction: 0"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.skip_bad_images = skip_bad_images
        self.teacher_logits = TeacherLogitStore(teacher_logits) if teacher_logits else None
        self.device_augmentation: DeviceTrainAugmentation | None = None
        if augment_on_device:
            self.train_transform: torch.nn.Module = DeviceReadyTransform(int(train_size / 0.875))
            self.device_augmentation = DeviceTrainAugmentation(
                train_size, autoaugment=autoaugment, normalization=normalization
            )
        else:
            self.train_transform = TrainTransform(
                train_size, autoaugment=autoaugment, normalization=normalization
            )
        self.eval_transform = eval_transform(eval_type, normalization)
        self.download = download
        self.train_shards = Path(train_shards) if train_shards else None
        self.shuffle_buffer = shuffle_buffer
        self.bad_files = BadFileCounter(max_bad_fraction)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self._carved: dict[str, tuple[list[Sample], list[Sample]]] = {}
        self.classes: list[str] = []
        self.datasets: dict[str, ImageDataset | ShardedImageDataset] = {}

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        raise NotImplementedError

    torchvision_downloader: str | None = None
    """torchvision dataset class whose ``download=True`` fetches this set into ``root``."""

    def prepare_data(self) -> None:
        """Download only when asked (``download=True``), with torchvision's downloader, which
        lays the files out exactly as :meth:`parse` reads them; runs on one process only."""
        if not self.download:
            return
        if self.torchvision_downloader is None:
            raise ValueError(
                f"{type(self).__name__} cannot download its data; fetch it by hand (see the "
                "error message of a missing root for the expected layout)"
            )
        import torchvision.datasets

        getattr(torchvision.datasets, self.torchvision_downloader)(self.root, download=True)

    @property
    def num_classes(self) -> int:
        """Number of classes (known before ``setup`` for the fixed data sets)."""
        if self.expected_num_classes is not None:
            return self.expected_num_classes
        if not self.classes:
            self.classes = self.parse(self.train_split)[1]
        return len(self.classes)

    def _samples(self, split: str) -> list[Sample]:
        """The samples of ``split``, its classes checked against the expected count."""
        samples, classes = self.parse(split)
        if not samples:
            raise FileNotFoundError(f"the {split!r} split under {self.root} has no images")
        self.classes = self.classes or classes
        expected = self.expected_num_classes
        if expected is not None and len(classes) != expected:
            raise ValueError(
                f"{type(self).__name__} expects {expected} classes but {self.root} has "
                f"{len(classes)}: check the data root"
            )
        return samples

    def _dataset(
        self,
        split: str,
        transform: Callable[[torch.Tensor], torch.Tensor],
        train: bool = False,
        part: Literal["training", "held_out"] | None = None,
    ) -> ImageDataset:
        """``split`` as a dataset; with ``val_fraction`` a ``part`` of it: what is trained on
        or what is held out for validation."""
        if part is not None and self.val_fraction:
            training, held_out = self._carved_parts(split)
            samples = training if part == "training" else held_out
        else:
            samples = self._samples(split)
        return ImageDataset(samples, transform, self.skip_bad_images, replace_bad_images=train)

    def _carved_parts(self, split: str) -> tuple[list[Sample], list[Sample]]:
        """(trained on, held out) of ``split``, parsed and carved once for both datasets."""
        if split not in self._carved:
            parts = carve_validation(self._samples(split), self.val_fraction, self.split_seed)
            if not parts[1]:
                raise ValueError(
                    f"val_fraction={self.val_fraction} holds out no image of {self.root}: "
                    "every class of its training split has a single image; set val_fraction: 0"
                )
            self._carved[split] = parts
        return self._carved[split]

    def eval_dataset(
        self,
        split: str | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> ImageDataset:
        """A split (default: the data set's whole training split, a held-out part included)
        with eval preprocessing, e.g. for a teacher's logits."""
        samples = self._samples(split or self.train_split)
        return ImageDataset(samples, transform or self.eval_transform, self.skip_bad_images)

    def _sharded_train_dataset(self, folder: Path) -> ShardedImageDataset:
        world_size = self.trainer.world_size if self.trainer is not None else 1
        dataset = ShardedImageDataset(
            folder,
            self.train_transform,
            self.shuffle_buffer,
            world_size=world_size,
            skip_bad_images=self.skip_bad_images,
        )
        self.classes = self.classes or dataset.index["classes"]
        if self.teacher_logits is not None:
            dataset.teacher_logits = self.teacher_logits  # a missing id fails when it streams
        return dataset

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and "train" not in self.datasets:
            if self.train_shards is not None:
                self.datasets["train"] = self._sharded_train_dataset(self.train_shards)
            else:
                train = self._dataset(
                    self.train_split, self.train_transform, train=True, part="training"
                )
                self._attach_teacher_logits(train)
                self.datasets["train"] = train
        if self.val_fraction and "val" not in self.datasets and stage in (None, "fit", "validate"):
            self.datasets["val"] = self._dataset(
                self.train_split, self.eval_transform, part="held_out"
            )
        if "eval" not in self.datasets:
            self.datasets["eval"] = self._dataset(self.eval_split, self.eval_transform)

    def _attach_teacher_logits(self, dataset: ImageDataset) -> None:
        """Every training sample must have stored logits of the right width (ORIGINAL.md §6)."""
        store = self.teacher_logits
        if store is None:
            return
        missing = store.missing([sample.sample_id for sample in dataset.samples])
        if missing:
            raise KeyError(
                f"{len(missing)} training sample(s) have no teacher logits in {store.path}, e.g. "
                f"{missing[:3]}; extract logits for this data set with `assembled-lightning "
                "extract-logits`"
            )
        if store.num_classes != self.num_classes:
            raise ValueError(
                f"teacher logits have {store.num_classes} classes, the data {self.num_classes}"
            )
        dataset.teacher_logits = store

    def _training_stream(self) -> TrainingStream | None:
        dataset = self.datasets.get("train")
        if dataset is None:
            self.setup("fit")
            dataset = self.datasets["train"]
        if not isinstance(dataset, ImageDataset):
            return None
        return TrainingStream.from_trainer(dataset, self.batch_size, self.trainer)

    def optimizer_steps(self, epochs: float) -> int | None:
        """Optimizer steps that ``epochs`` training epochs take on the attached trainer: the
        original's ``int(epochs · N / batch)`` (N training images, batch = the global batch of
        trained images), which ClassificationTask's warm-up, cosine and DropBlock schedules
        span. None when streaming ``train_shards`` (whose loader Lightning measures)."""
        stream = self._training_stream()
        return stream.steps(epochs) if stream is not None else None

    def _loader(self, key: str, train: bool) -> DataLoader[Any]:
        if key not in self.datasets:
            self.setup("fit" if train else "validate")
        dataset: Any = self.datasets[key]
        sampler = self._training_stream() if train else None
        if sampler is not None:
            sampler.refresh_every_epoch(self.trainer)
        elif train and (passes := data_passes(self.trainer)) > 1:
            dataset = RepeatedPasses(dataset, passes)
        world_size = self.trainer.world_size if self.trainer is not None and not train else 1
        self.bad_files.set_epoch_share(
            "train" if train else "eval",
            math.ceil(len(sampler if sampler is not None else dataset) / world_size),
        )
        return self.data_loader(dataset, sampler)

    def data_loader(self, dataset: Any, sampler: Any = None) -> DataLoader[Any]:
        """A loader of ``dataset`` with this DataModule's batch and worker settings."""
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=collate_samples,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        """The held-out part of the training split with ``val_fraction``, else the evaluation
        split."""
        return self._loader("val" if self.val_fraction else "eval", train=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("eval", train=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader("eval", train=False)

    @property
    def skipped_images(self) -> int:
        """Bad files skipped by this process so far, training and evaluation together."""
        return self.bad_files.total

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Count skipped images (and stop past ``max_bad_fraction``); with
        ``augment_on_device`` augment the (uint8) training batch on the device it now lives
        on."""
        trainer = self.trainer
        self.bad_files.count(
            batch, "eval" if trainer is not None and not trainer.training else "train"
        )
        image = batch["image"]
        if self.device_augmentation is not None and image.dtype == torch.uint8 and image.numel():
            batch["image"] = self.device_augmentation.to(image.device)(image)
        return batch


class ImageFolderDataModule(ImageDataModule):
    """Any ``<root>/{train,val}/<class>/<image>`` folder tree.

    Args:
        root: Folder holding ``train/`` and the evaluation folder, one sub-folder per class.
        val_dir: Name of the evaluation folder under ``root``.
        **kwargs: The options of :class:`ImageDataModule`.
    """

    eval_split = "val"

    def __init__(self, root: str | os.PathLike[str], val_dir: str = "val", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.eval_split = val_dir

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        layout = "  <root>/train/<class>/<image>, <root>/val/<class>/<image>"
        datasets.require_files("Image folder", self.root, [split], layout)
        classes = None
        if split != self.train_split and (self.root / self.train_split).is_dir():
            classes = self.parse(self.train_split)[1]
        return datasets.parse_class_folders(self.root, self.root / split, classes)


class ImageNetDataModule(ImageDataModule):
    """ILSVRC-2012 (1000 classes; ``val`` in class folders or flat with ``val_labels``).

    Args:
        root: Folder holding ``train/<wnid>/*.JPEG`` and ``val/``.
        val_labels: Labels of a flat ``val/``: a file with one synset per line (in file-name
            order) or Kaggle's ``LOC_val_solution.csv``; None when ``val/`` has class folders.
        num_classes: Classes expected in the data (1000; fewer for a subset).
        **kwargs: The options of :class:`ImageDataModule`.
    """

    eval_split = "val"
    expected_num_classes = 1000

    def __init__(
        self,
        root: str | os.PathLike[str],
        val_labels: str | os.PathLike[str] | None = None,
        num_classes: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.val_labels = Path(val_labels) if val_labels else None
        self.expected_num_classes = num_classes

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_imagenet(self.root, split, self.val_labels)


class Food101DataModule(ImageDataModule):
    """Food-101 (75,750 train / 25,250 test, 101 classes; paper Table 9)."""

    train_split = "train"
    eval_split = "test"
    expected_num_classes = 101
    torchvision_downloader = "Food101"

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_food101(self.root, split)


class StanfordCarsDataModule(ImageDataModule):
    """Stanford Cars (8,144 train / 8,041 test, 196 classes)."""

    train_split = "train"
    eval_split = "test"
    expected_num_classes = 196

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_stanford_cars(self.root, split)


class Flowers102DataModule(ImageDataModule):
    """Oxford Flowers-102: the paper's split, train+val 2,040 / test 6,149, 102 classes."""

    train_split = "trainval"
    eval_split = "test"
    expected_num_classes = 102
    torchvision_downloader = "Flowers102"

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_flowers102(self.root, split)


class FGVCAircraftDataModule(ImageDataModule):
    """FGVC Aircraft variants (trainval 6,667 / test 3,333, 100 classes)."""

    train_split = "trainval"
    eval_split = "test"
    expected_num_classes = 100
    torchvision_downloader = "FGVCAircraft"

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_fgvc_aircraft(self.root, split)


class OxfordIIITPetDataModule(ImageDataModule):
    """Oxford-IIIT Pets (trainval 3,680 / test 3,669, 37 breeds)."""

    train_split = "trainval"
    eval_split = "test"
    expected_num_classes = 37
    torchvision_downloader = "OxfordIIITPet"

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_oxford_pets(self.root, split)


class CUB200DataModule(ImageDataModule):
    """CUB-200-2011: ``zero_shot=True`` gives the retrieval split (train classes 1-100, test
    101-200, 5,864 / 5,924 images); otherwise the official classification split.

    Args:
        root: Folder holding ``CUB_200_2011/``.
        zero_shot: Use the retrieval split (train on classes 1–100, test on 101–200) instead
            of the classification split.
        **kwargs: The options of :class:`ImageDataModule`.
    """

    def __init__(
        self, root: str | os.PathLike[str], zero_shot: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        self.zero_shot = zero_shot
        self.train_split = "retrieval_train" if zero_shot else "train"
        self.eval_split = "retrieval_test" if zero_shot else "test"
        self.expected_num_classes = 100 if zero_shot else 200

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_cub200(self.root, split)


class StanfordOnlineProductsDataModule(ImageDataModule):
    """Stanford Online Products zero-shot retrieval: 11,318 train classes (59,551 images),
    11,316 test classes (60,502 images)."""

    def parse(self, split: str) -> tuple[list[Sample], list[str]]:
        return datasets.parse_stanford_online_products(self.root, split)
