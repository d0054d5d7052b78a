"""``weights.transforms()`` takes PIL images, as torchvision's weight transforms do: an image
opened with PIL gives the tensor of torchvision's ``PILToTensor`` path on its RGB conversion and of
the package's decoding of the same file, for RGB, grayscale, RGBA and CMYK images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import PILToTensor

from assembled_lightning.data import ImageDecodeError, decode_image
from assembled_lightning.weights import get_weights


def pixels(mode: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(Image.new(mode, (1, 1)).getbands())
    array = rng.integers(0, 256, (300, 340, channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode)


@pytest.mark.parametrize(
    ("mode", "suffix"), [("RGB", "jpg"), ("L", "png"), ("RGBA", "png"), ("CMYK", "jpg")]
)
def test_a_pil_image_gives_the_tensor_of_its_file(tmp_path: Path, mode: str, suffix: str) -> None:
    path = tmp_path / f"image.{suffix}"
    pixels(mode, seed=len(mode)).save(path, quality=90)
    transform = get_weights("assemble_resnet50.tf_in1k").transforms()
    with Image.open(path) as image:
        assert image.mode == mode
        from_pil = transform(image)
        torchvision_path = transform(PILToTensor()(image.convert("RGB")))
    from_file = transform(decode_image(path))
    assert from_pil.shape == (3, 256, 256) and from_pil.dtype == torch.float32
    assert torch.equal(from_pil, torchvision_path)
    assert torch.equal(from_pil, from_file)


def test_sixteen_bit_grayscale_keeps_the_high_byte_and_float_images_are_refused() -> None:
    values = np.random.default_rng(0).integers(0, 65536, (300, 300), dtype=np.uint16)
    transform = get_weights("assemble_resnet50.tf_in1k").transforms()
    high_byte = torch.from_numpy((values >> 8).astype(np.uint8)).expand(3, -1, -1)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    assert torch.equal(transform(image), transform(high_byte))
    with pytest.raises(ImageDecodeError, match="floating-point"):
        transform(Image.fromarray(values.astype(np.float32)))
