"""A CPU batch corrupted a few images at a time (``pieces.in_pieces``) gives the whole batch's
result, and ``corrupt`` returns contiguous N×C×H×W whatever the input's memory layout."""

from __future__ import annotations

import pytest
import torch

from assembled_lightning.robustness.corruptions import CORRUPTIONS, corrupt, pieces
from assembled_lightning.robustness.corruptions.frost import FROST_WEIGHTS, procedural_frost

SPLIT_CORRUPTIONS = (
    "brightness",
    "saturate",
    "contrast",
    "pixelate",
    "elastic_transform",
    "glass_blur",
    "defocus_blur",
    "zoom_blur",
)
"""The corruptions that run in pieces and draw (if at all) for the whole batch first."""


def _images(count: int = 7, side: int = 40) -> torch.Tensor:
    return torch.rand(count, 3, side, side, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", SPLIT_CORRUPTIONS)
@pytest.mark.parametrize("severity", [1, 5])
def test_pieces_give_the_whole_batch_result(
    name: str, severity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """7 images in pieces of 3 (3 + 3 + 1) against one whole-batch call, same seed."""
    images = _images()
    monkeypatch.setattr(pieces, "CPU_PIECE_IMAGES", 10_000)
    whole = corrupt(images, name, severity, generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(pieces, "CPU_PIECE_IMAGES", 3)
    split = corrupt(images, name, severity, generator=torch.Generator().manual_seed(5))
    # FFT plans (defocus) may round the last float32 bit differently for another batch size
    torch.testing.assert_close(split, whole, rtol=0, atol=1e-6)


def test_in_pieces_splits_a_cpu_batch_in_order() -> None:
    sizes: list[int] = []

    def double(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        return 2 * x + y

    x, y = torch.arange(7.0), torch.arange(7.0).flip(0)
    torch.testing.assert_close(pieces.in_pieces(double, x, y, piece=3), 2 * x + y)
    assert sizes == [3, 3, 1]


def test_procedural_frost_draws_each_piece_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each CPU piece gets its own textures from the caller's generator, in batch order."""
    images = _images()
    monkeypatch.setattr(pieces, "CPU_PIECE_IMAGES", 3)
    frosted = corrupt(images, "frost", 2, generator=torch.Generator().manual_seed(8))
    generator = torch.Generator().manual_seed(8)
    textures = torch.cat(
        [procedural_frost(count, 40, 40, generator=generator) for count in (3, 3, 1)]
    )
    image_weight, frost_weight = FROST_WEIGHTS[1]
    expected = (image_weight * images + frost_weight * textures).clamp(0, 1)
    torch.testing.assert_close(frosted, expected, rtol=0, atol=0)


def test_in_pieces_rejects_mismatched_batches_and_empty_pieces() -> None:
    images = _images()
    with pytest.raises(ValueError, match="every batched tensor needs 7"):
        pieces.in_pieces(lambda x, y: x, images, images[:5])
    with pytest.raises(ValueError, match="at least one image"):
        pieces.in_pieces(lambda x: x, images, piece=0)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_channels_last_input_gives_the_same_contiguous_output(name: str) -> None:
    images = _images(count=2, side=48)
    channels_last = images.contiguous(memory_format=torch.channels_last)
    plain = corrupt(images, name, 3, generator=torch.Generator().manual_seed(2))
    out = corrupt(channels_last, name, 3, generator=torch.Generator().manual_seed(2))
    assert out.is_contiguous()
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-6)
