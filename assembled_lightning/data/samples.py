"""Image datasets as lists of samples, decoded robustly; the batch format of the package.

Every data set parser produces :class:`Sample` s (path, label, stable id = the path relative to the
data root). :class:`ImageDataset` decodes them with :func:`decode_image`; a bad file (content
that does not decode, a path that cannot be read: :func:`~.decode.is_bad_image_error`) raises
an error naming it, or — with ``skip_bad_images=True`` — is skipped with a warning and counted,
so an epoch never dies on one broken JPEG and never trains on garbage. Training sets replace a
skipped sample by the next good one of the split (``replace_bad_images``), so batches stay full
and even (mixup pairs their halves) and the training stream keeps its step counts; evaluation
sets drop it from its batch instead, so that no image is scored twice (a batch may then be
empty). Each batch says how many it skipped (``num_skipped``) and which (``skipped_files``),
counted in the loader worker that met them, so counts from every worker and rank add up.

Paths read from annotation files and listings go through :func:`listed_path`, which keeps them
inside their data set's folder.
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

from .decode import ImageDecodeError, decode_image, is_bad_image_error

Batch = dict[str, Any]
"""``image`` [N, 3, H, W], ``target`` [N], ``sample_id`` list[str], ``num_skipped`` int (bad
files skipped: replaced or dropped), ``skipped_files`` list[str] (their paths), and
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


class ImageDataset(Dataset[dict[str, Any]]):
    """Decoded, transformed samples as dicts.

    A skipped bad file gives the next good sample of the list (wrapping around) when
    ``replace_bad_images`` is set, the bad file's path under ``skipped``; otherwise an item
    with only ``skipped``, which :func:`collate_samples` drops from its batch.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        skip_bad_images: bool = False,
        teacher_logits: LogitLookup | None = None,
        replace_bad_images: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.teacher_logits = teacher_logits
        self.replace_bad_images = replace_bad_images

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, sample: Sample) -> torch.Tensor | Exception:
        """The image, or the error of a bad file when skipping (other errors propagate)."""
        try:
            return decode_image(sample.path)
        except (ImageDecodeError, OSError) as error:
            if not self.skip_bad_images or not is_bad_image_error(error):
                raise
            return error

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image = self._decode(sample)
        if not isinstance(image, Exception):
            return self._item(sample, image, [])
        skipped = [str(sample.path)]
        if not self.replace_bad_images:
            warnings.warn(f"skipping bad image: {image}", RuntimeWarning, stacklevel=2)
            return {"skipped": skipped}
        # the next good sample; bad ones on the way are counted where they are drawn themselves
        for offset in range(1, len(self.samples)):
            candidate = self.samples[(index + offset) % len(self.samples)]
            replacement = self._decode(candidate)
            if not isinstance(replacement, Exception):
                warnings.warn(
                    f"skipping bad image (replaced by the next good one, {candidate.path}): "
                    f"{image}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return self._item(candidate, replacement, skipped)
        raise ImageDecodeError(
            f"all {len(self.samples)} images of the data set are bad, e.g. {image}; check the "
            "data root"
        )

    def _item(self, sample: Sample, image: torch.Tensor, skipped: list[str]) -> dict[str, Any]:
        if self.transform is not None:
            image = self.transform(image)
        item = {"image": image, "target": sample.label, "sample_id": sample.sample_id}
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[sample.sample_id]
        if skipped:
            item["skipped"] = skipped
        return item

    @property
    def labels(self) -> list[int]:
        return [sample.label for sample in self.samples]


def collate_samples(items: list[dict[str, Any]]) -> Batch:
    """Stack the samples that have an image; ``num_skipped`` counts the bad files that were
    skipped (replaced, or dropped from this batch), ``skipped_files`` names them. A batch whose
    files were all dropped has no images (``image`` and ``target`` of length 0)."""
    skipped = [path for item in items for path in item.get("skipped", ())]
    good = [{k: v for k, v in item.items() if k != "skipped"} for item in items if "image" in item]
    batch: Batch = (
        default_collate(good)
        if good
        else {"image": torch.empty(0), "target": torch.empty(0, dtype=torch.long), "sample_id": []}
    )
    batch["num_skipped"] = len(skipped)
    batch["skipped_files"] = skipped
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
