"""What the prediction tests share: the images they write and the trained checkpoint's parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cherry", "apple", "banana")  # not in sorted order: the class index is the sorted one
EVAL_TYPE = "imagenet_32"  # shorter side int(32 / 0.875) = 36, centre crop 32
# relative path → (height, width, PIL mode); every shorter side is 36, so no resize happens
UNLABELLED = {
    "a.png": (36, 36, "RGB"),
    "gray.png": (40, 36, "L"),
    "alpha.png": (36, 48, "RGBA"),
    "photos/b.jpg": (36, 44, "RGB"),
    "photos/c.JPEG": (44, 36, "L"),
    "photos/deeper/d.png": (36, 36, "RGB"),
    "photos/deeper/e.bmp": (36, 40, "RGB"),
}


@dataclass(frozen=True)
class Trained:
    checkpoint: Path
    train_root: Path
    images: Path


def write_image(path: Path, height: int, width: int, mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path, quality=95)
