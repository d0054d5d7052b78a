"""Training preprocessing: TF's crop sampler, flip-before-resize, truncation before AutoAugment,
the original's AutoAugment policies, and the device path doing the same arithmetic."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
import torch

from assembled_lightning.data.autoaugment import AutoAugment
from assembled_lightning.data.transforms import (
    DeviceTrainAugmentation,
    Normalize,
    TrainTransform,
    auto_augment,
    crop_flip_resize,
    sample_crop_box,
    sample_crop_boxes,
    tf_legacy_resize_bilinear,
)


def tf_crop_statistics(height: int, width: int, grid: int = 4000) -> dict[str, float]:
    """Exact statistics of TF's ``sample_distorted_bounding_box`` (whole-image box, coverage
    0.1, aspect 0.75–1.33, area 0.05–1, kernel GenerateRandomCrop) by enumeration: for each
    aspect on a fine grid, every crop height between the two rounded bounds is equally likely;
    a rejected attempt is redrawn, so the result is conditioned on acceptance."""
    f32 = np.float32
    aspect = (
        f32(0.75) + ((np.arange(grid) + 0.5) / grid).astype(f32) * (f32(1.33) - f32(0.75))
    ).astype(f32)
    min_area, max_area = f32(0.05) * f32(width) * f32(height), f32(1.0) * f32(width) * f32(height)
    low = np.rint(np.sqrt(min_area / aspect))
    high = np.rint(np.sqrt(max_area / aspect))
    fitted = np.floor((width + 0.5 - float(f32(1e-7))) / aspect.astype(np.float64)).astype(f32)
    fitted = np.where(np.rint(fitted * aspect) > width, fitted - 1, fitted)
    high = np.minimum(np.where(np.rint(high * aspect) > width, fitted, high), height)
    low = np.minimum(low, high)
    heights = low[:, None] + np.arange(height + 1)[None, :]
    weight = (heights <= high[:, None]) / (high - low + 1)[:, None]
    crop_w = np.rint(heights.astype(f32) * aspect[:, None])
    area = crop_w * heights
    grow = area < min_area
    heights = np.where(grow, heights + 1, heights)
    crop_w = np.where(grow, np.rint(heights.astype(f32) * aspect[:, None]), crop_w)
    area = crop_w * heights
    shrink = area > max_area
    heights = np.where(shrink, heights - 1, heights)
    crop_w = np.where(shrink, np.rint(heights.astype(f32) * aspect[:, None]), crop_w)
    area = crop_w * heights
    accepted = (area >= min_area) & (area <= max_area) & (crop_w <= width) & (heights <= height)
    accepted &= (crop_w > 0) & (heights > 0) & (area / f32(width * height) >= f32(0.1))
    fraction = area / (width * height)
    p_accept = (weight * accepted).sum(1).mean()
    return {
        "mean_area": (weight * accepted * fraction).sum(1).mean() / p_accept,
        "p_small": (weight * accepted * (fraction < 0.25)).sum(1).mean() / p_accept,
        "mean_aspect": (weight * accepted * crop_w / heights).sum(1).mean() / p_accept,
    }


def test_crop_sampler_follows_tfs_algorithm_not_area_uniform_sampling() -> None:
    expected = tf_crop_statistics(375, 500)
    # what TF's own kernel gives on 375×500 over 20k draws: mean 0.389, P(area < 0.25) 0.325
    assert expected["mean_area"] == pytest.approx(0.389, abs=0.004)
    assert expected["p_small"] == pytest.approx(0.325, abs=0.006)
    boxes = sample_crop_boxes(20000, 375, 500, generator=torch.Generator().manual_seed(0))
    area = (boxes[:, 2] * boxes[:, 3]).double() / (375 * 500)
    aspect = boxes[:, 3].double() / boxes[:, 2]
    assert area.mean().item() == pytest.approx(expected["mean_area"], abs=0.007)
    assert (area < 0.25).double().mean().item() == pytest.approx(expected["p_small"], abs=0.012)
    assert aspect.mean().item() == pytest.approx(expected["mean_aspect"], abs=0.005)
    assert area.min() >= 0.1 and area.max() <= 1.0  # coverage 0.1 of the whole-image box
    assert aspect.min() >= 0.74 and aspect.max() <= 1.34


def test_crop_offsets_use_tfs_range() -> None:
    boxes = sample_crop_boxes(5000, 60, 80, generator=torch.Generator().manual_seed(1))
    top, left, height, width = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    # TF draws offsets in [0, H - h): the bottom/right edge is reached only by full-size crops
    assert (top[height < 60] <= 60 - height[height < 60] - 1).all()
    assert (left[width < 80] <= 80 - width[width < 80] - 1).all()
    assert (top[height == 60] == 0).all() and (left[width == 80] == 0).all()
    assert (60 - height - top)[height < 60].min() == 1  # the last allowed offset does occur


def test_single_box_is_reproducible_and_falls_back_to_the_whole_image() -> None:
    first = sample_crop_box(300, 400, generator=torch.Generator().manual_seed(5))
    again = sample_crop_box(300, 400, generator=torch.Generator().manual_seed(5))
    assert first == again and all(isinstance(v, int) for v in first)
    assert sample_crop_box(10, 1000, area_range=(0.9, 1.0)) == (0, 0, 10, 1000)


def test_train_transform_flips_the_crop_before_resizing() -> None:
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    transform = TrainTransform(size=24, area_range=(1.0, 1.0), aspect_range=(1.0, 1.0))
    normalize = Normalize("original")
    plain = normalize(tf_legacy_resize_bilinear(image, (24, 24)))
    flipped = normalize(tf_legacy_resize_bilinear(image.flip(-1), (24, 24)))
    assert not torch.equal(flipped, plain.flip(-1))  # the legacy resize does not commute
    seen = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = transform(image, generator=generator)
        assert out.shape == (3, 24, 24) and out.dtype == torch.float32
        seen.add(
            "flip" if torch.equal(out, flipped) else "plain" if torch.equal(out, plain) else "?"
        )
    assert seen == {"flip", "plain"}


def test_train_transform_truncates_to_uint8_before_autoaugment() -> None:
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    transform = TrainTransform(size=24, autoaugment="imagenet")
    out = transform(image, generator=torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)  # the same draws, step by step
    top, left, h, w = sample_crop_box(50, 70, generator=generator)
    crop = image[:, top : top + h, left : left + w]
    if torch.rand((), generator=generator) < 0.5:
        crop = crop.flip(-1)
    resized = tf_legacy_resize_bilinear(crop, (24, 24))
    truncated = resized.clamp(0, 255).to(torch.uint8)  # tf.cast truncates
    assert not torch.equal(truncated, resized.round().to(torch.uint8))
    expected = Normalize("original")(
        AutoAugment("imagenet")(truncated, generator=generator).float()
    )
    assert torch.equal(out, expected)


def test_autoaugment_policies_are_the_originals() -> None:
    imagenet, good = auto_augment("imagenet"), auto_augment("good")
    assert isinstance(imagenet, AutoAugment) and imagenet.policy == "imagenet"
    assert len(imagenet.op_index) == 25 and imagenet.replace == 128
    assert isinstance(good, AutoAugment) and len(good.op_index) == 95 and "Cutout" in good.op_names
    assert isinstance(auto_augment("none"), torch.nn.Identity)
    for wrong in ("cifar", "rand"):
        with pytest.raises(ValueError, match="autoaugment"):
            auto_augment(wrong)  # type: ignore[arg-type]


def test_batched_crop_flip_resize_matches_the_per_image_path() -> None:
    images = torch.randint(0, 256, (5, 3, 30, 30), dtype=torch.uint8)
    boxes = sample_crop_boxes(5, 30, 30, generator=torch.Generator().manual_seed(2))
    flipped = torch.tensor([True, False, True, False, True])
    batched = crop_flip_resize(images, boxes, flipped, 16)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        crop = images[i, :, top : top + h, left : left + w]
        crop = crop.flip(-1) if flipped[i] else crop
        assert torch.equal(batched[i], tf_legacy_resize_bilinear(crop, (16, 16)))


@pytest.mark.parametrize("policy", ["none", "good"])
def test_device_augmentation_does_the_train_transform_steps_on_a_batch(
    policy: Literal["none", "good"],
) -> None:
    images = torch.randint(0, 256, (4, 3, 30, 30), dtype=torch.uint8)
    augment = DeviceTrainAugmentation(16, autoaugment=policy)
    out = augment(images, generator=torch.Generator().manual_seed(6))
    generator = torch.Generator().manual_seed(6)
    boxes = sample_crop_boxes(4, 30, 30, generator=generator)
    flipped = torch.rand(4, generator=generator) < 0.5
    expected = crop_flip_resize(images, boxes, flipped, 16)
    if policy == "good":
        truncated = expected.clamp(0, 255).to(torch.uint8)
        expected = AutoAugment(policy)(truncated, generator=generator).float()
    assert torch.equal(out, Normalize("original")(expected))
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="autoaugment"):
        DeviceTrainAugmentation(16, autoaugment="cifar")  # type: ignore[arg-type]
