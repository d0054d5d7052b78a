"""``make-imagenet-c``: write the official ImageNet-C layout from a folder of images, as the
reference generator does (hendrycks' ``make_imagenet_c.py``): Resize(256) + CenterCrop(224)
with PIL, the corruption, truncation to uint8 (``np.uint8``), JPEG quality 85 with
``optimize=True``.

Images are corrupted in batches on any device. Every file is written under a temporary name and
renamed when complete, so an interrupted run leaves no half-written image, and a rerun skips
the files that exist: it only does what is left.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ..data.decode import ImageDecodeError, decode_image
from ..data.samples import naming_os_errors
from .corruptions import corrupt, quantize_like_release, resolve_corruptions, resolve_severities

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class GenerationSummary:
    images: int
    written: int
    already_there: int
    bad_images: list[str]


def source_images(source: Path) -> list[Path]:
    """Images of ``source``: class folders (``<wnid>/*.JPEG``, the layout kept in the output)
    or a flat folder; sorted, so reruns see the same order."""
    if not source.is_dir():
        raise FileNotFoundError(
            f"{source} is not a folder: give a folder of images, e.g. ImageNet's val/ in class "
            "folders (<val>/<wnid>/*.JPEG)"
        )
    images = sorted(
        p.relative_to(source)
        for p in source.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {source}")
    return images


def output_name(relative: Path) -> Path:
    """The file name the reference writes: the source name, saved as JPEG."""
    suffix = relative.suffix if relative.suffix.lower() in (".jpg", ".jpeg") else ".JPEG"
    return relative.with_suffix(suffix)


class _Prepared(Dataset[dict[str, Any]]):
    """Decoded images after the reference's torchvision Resize(resize) + CenterCrop(crop) on PIL."""

    def __init__(self, source: Path, images: Sequence[Path], resize: int, crop: int) -> None:
        self.source, self.images = source, list(images)
        self.prepare = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.source / self.images[index]
        try:
            decoded = decode_image(path)
        except (ImageDecodeError, OSError) as error:
            return {"index": index, "error": str(error)}
        image = self.prepare(Image.fromarray(decoded.permute(1, 2, 0).numpy()))
        return {"index": index, "image": torch.from_numpy(np.asarray(image).copy())}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    good = [item for item in items if "image" in item]
    return {
        "index": [item["index"] for item in good],
        "image": torch.stack([item["image"] for item in good]) if good else None,
        "errors": [(item["index"], item["error"]) for item in items if "error" in item],
    }


def _save_jpeg(image: np.ndarray, path: Path, quality: int) -> None:
    """Write ``path`` atomically: a partial file never carries the final name."""
    partial = path.with_name(path.name + ".partial")
    with naming_os_errors(partial):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(partial, format="JPEG", quality=quality, optimize=True)
        os.replace(partial, path)


def make_imagenet_c(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    *,
    resize: int = 256,
    crop: int = 224,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | torch.device = "cpu",
    seed: int = 0,
    jpeg_quality: int = 85,
    frost_textures: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> GenerationSummary:
    """Write ``<output>/<corruption>/<severity>/<relative path>.JPEG`` for every image of
    ``source``; existing files are kept (a rerun resumes). Returns what was done."""
    source, output = Path(source), Path(output)
    names = resolve_corruptions(corruptions)
    levels = resolve_severities(severities)
    if output.resolve() == source.resolve() or source.resolve() in output.resolve().parents:
        raise ValueError(f"write the output outside the source folder {source}, not into it")
    images = source_images(source)
    targets = {
        (c, s): [output / c / str(s) / output_name(image) for image in images]
        for c in names
        for s in levels
    }
    todo = sorted({i for paths in targets.values() for i, p in enumerate(paths) if not p.exists()})
    total = sum(not p.exists() for paths in targets.values() for p in paths)
    summary = GenerationSummary(len(images), 0, len(images) * len(targets) - total, [])
    if not todo:
        return summary
    loader = DataLoader(
        _Prepared(source, [images[i] for i in todo], resize, crop),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    bar = _progress_bar(total, progress)
    inputs = {"frost_textures": frost_textures} if frost_textures is not None else {}
    for batch in loader:
        for index, error in batch["errors"]:
            summary.bad_images.append(str(images[todo[index]]))
            warnings.warn(f"skipping bad image: {error}", RuntimeWarning, stacklevel=2)
        if batch["image"] is None:
            continue
        rows = [todo[i] for i in batch["index"]]
        clean = batch["image"].to(device).permute(0, 3, 1, 2).float() / 255
        for (corruption, severity), paths in targets.items():
            missing = [k for k, row in enumerate(rows) if not paths[row].exists()]
            if not missing:
                continue
            generator = torch.Generator(device=clean.device)
            generator.manual_seed(zlib.crc32(f"{seed}/{corruption}/{severity}/{rows[0]}".encode()))
            extra = inputs if corruption == "frost" else {}
            corrupted = corrupt(clean, corruption, severity, generator=generator, **extra)
            pixels = quantize_like_release(corrupted, None).permute(0, 2, 3, 1).cpu().numpy()
            for k in missing:
                _save_jpeg(pixels[k], paths[rows[k]], jpeg_quality)
            summary.written += len(missing)
            bar.update(len(missing))
    bar.close()
    return summary


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="make-imagenet-c", disable=not enabled)
