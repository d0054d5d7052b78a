"""Image datasets as lists of samples, decoded robustly; the batch format of the package.

Every data set parser produces :class:`Sample` s (path, label, stable id = the path relative to the
data root). :class:`ImageDataset` decodes them with :func:`decode_image`; a bad file raises an
error naming it, or — with ``skip_bad_images=True`` — is dropped from its batch with a warning
and counted, so an epoch never dies on one broken JPEG and never trains on garbage. Paths read
from annotation files and listings go through :func:`listed_path`, which keeps them inside their
data set's folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset, default_collate

from .decode import ImageDecodeError, decode_image

Batch = dict[str, Any]
"""``image`` [N, 3, H, W], ``target`` [N], ``sample_id`` list[str], ``num_skipped`` int, and
``teacher_logits`` [N, C] when a teacher-logit store is attached."""


class LogitLookup(Protocol):
    """Teacher logits by sample id (a :class:`~.teacher_logits.TeacherLogitStore`)."""

    def __getitem__(self, sample_id: str) -> torch.Tensor: ...


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    sample_id: str
    """Stable id (relative path): keys teacher logits and retrieval results."""


class ImageDataset(Dataset[dict[str, Any] | None]):
    """Decoded, transformed samples as dicts; ``None`` for a skipped bad image."""

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        skip_bad_images: bool = False,
        teacher_logits: LogitLookup | None = None,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.teacher_logits = teacher_logits

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample = self.samples[index]
        try:
            image = decode_image(sample.path)
        except (ImageDecodeError, FileNotFoundError) as error:
            if not self.skip_bad_images:
                raise
            warnings.warn(f"skipping bad image: {error}", RuntimeWarning, stacklevel=2)
            return None
        if self.transform is not None:
            image = self.transform(image)
        item = {"image": image, "target": sample.label, "sample_id": sample.sample_id}
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[sample.sample_id]
        return item

    @property
    def labels(self) -> list[int]:
        return [sample.label for sample in self.samples]


def collate_samples(items: list[dict[str, Any] | None]) -> Batch:
    """Stack the good samples; ``num_skipped`` counts the bad ones dropped from this batch."""
    good = [item for item in items if item is not None]
    batch: Batch = (
        default_collate(good)
        if good
        else {"image": torch.empty(0), "target": torch.empty(0, dtype=torch.long), "sample_id": []}
    )
    batch["num_skipped"] = len(items) - len(good)
    return batch


def relative_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def listed_path(folder: Path, entry: str, listing: Path) -> Path:
    """``folder / entry`` for a path read from an annotation file or listing, which must name a
    file inside ``folder``: an absolute path or a ``..`` would make a crafted listing read (and
    ``make-shards`` pack) any file on the machine. The check is on the text, not on resolved
    links, so a data root whose folders are symbolic links to other disks keeps working."""
    parts = PurePosixPath(entry).parts
    if (
        not entry
        or "\0" in entry
        or "\\" in entry
        or entry.startswith("/")
        or PureWindowsPath(entry).drive
        or ".." in parts
    ):
        raise ValueError(
            f"{listing} names {entry!r}, which is outside {folder} or not a plain relative "
            "path: a listing may only name files inside its data set's folder (relative, "
            "without '..'). Restore the listing from the data set's own download"
        )
    return folder / entry


@contextmanager
def naming_os_errors(path: Path) -> Iterator[None]:
    """Give an ``OSError`` without a file name (a full disk reports ``ENOSPC`` on a write
    without one) the name of the file being written, so that messages say which file failed."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def require_files(dataset: str, root: Path, expected: Sequence[str], layout: str) -> None:
    """Raise a message that says where the data comes from and the exact layout expected."""
    missing = [name for name in expected if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"{dataset} not found under {root} (missing: {', '.join(missing)}).\n"
            f"Expected layout:\n{layout}"
        )
