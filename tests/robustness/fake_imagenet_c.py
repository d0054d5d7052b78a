"""A tiny ImageNet-C on disk, laid out like the released one:
``<root>/<corruption>/<severity>/<wnid>/<ILSVRC2012_val_*.JPEG>`` (optionally under the tar
files' group folders), with small square JPEGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850")
GROUP = {"gaussian_noise": "noise", "contrast": "digital", "brightness": "weather"}


def write_square_jpeg(path: Path, side: int, seed: int) -> np.ndarray:
    """A smooth random image (JPEG keeps it close) of side × side; returns the decoded pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((side, side), Image.BILINEAR))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def imagenet_c(
    root: Path,
    corruptions: Sequence[str] = ("gaussian_noise", "contrast"),
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    side: int = 32,
    per_class: int = 1,
    grouped: bool = False,
) -> Path:
    for c, corruption in enumerate(corruptions):
        base = root / GROUP[corruption] / corruption if grouped else root / corruption
        for severity in severities:
            for k, wnid in enumerate(WNIDS):
                for i in range(per_class):
                    name = f"ILSVRC2012_val_{k * per_class + i + 1:08d}.JPEG"
                    write_square_jpeg(
                        base / str(severity) / wnid / name, side, 1000 * c + 10 * severity + k
                    )
    return root
