"""Fixtures for the corruption tests: the real photographs, prepared as the reference does.

The reference generator (hendrycks' ``make_imagenet_c.py``) loads each image with PIL, applies
torchvision's ``Resize(256)`` (shorter side, PIL bilinear) and ``CenterCrop(224)``, and works on
``np.array(image) / 255.`` in float64; its outputs are truncated to uint8 (``np.uint8``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee_portrait.jpg", "hubble_deep_field.jpg")


@pytest.fixture(scope="session")
def reference_photos(reference_dir: Path) -> np.ndarray:
    """The four JPEGs of ``../shared/reference/tf/preprocessing`` as 4×224×224×3 uint8, after
    the reference's Resize(256) + CenterCrop(224)."""
    prepare = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    folder = reference_dir / "tf" / "preprocessing"
    return np.stack(
        [np.asarray(prepare(Image.open(folder / name).convert("RGB"))) for name in PHOTOS]
    )


@pytest.fixture(autouse=True)
def split_cpu_batches_unevenly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every corruption test runs CPU batches in pieces of 3 images (the 4 photos as 3 + 1), so
    the comparisons with the reference also check the piece-wise path of ``corrupt``."""
    from assembled_lightning.robustness.corruptions import pieces

    monkeypatch.setattr(pieces, "CPU_PIECE_IMAGES", 3)
