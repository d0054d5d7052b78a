"""ImageNet-C and on-the-fly corrupted DataModules: what each batch holds, checked against the
files on disk and the reference's formulas, and how DDP shares the images."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import fake_imagenet_c
import numpy as np
import pytest
import torch
from PIL import Image

from assembled_lightning.data.transforms import ORIGINAL_MEAN_RGB
from assembled_lightning.robustness.datamodules import CorruptedDataModule, ImageNetCDataModule
from assembled_lightning.robustness.grid import CorruptionGrid, GridPart, grid_loader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import fake_layouts

MEAN = torch.tensor(ORIGINAL_MEAN_RGB).view(1, 3, 1, 1)


def batches(data: ImageNetCDataModule | CorruptedDataModule) -> list[dict]:
    return [data.on_after_batch_transfer(b, 0) for b in data.test_dataloader()]


def imagenet_c_module(root: Path, **kwargs) -> ImageNetCDataModule:
    options = {"image_size": 32, "num_classes": 3, "batch_size": 4, "num_workers": 0}
    options["pin_memory"] = False
    return ImageNetCDataModule(root, **{**options, **kwargs})


def test_imagenet_c_batches_are_the_files_as_they_are(tmp_path: Path) -> None:
    root = fake_imagenet_c.imagenet_c(tmp_path / "c")
    data = imagenet_c_module(root, corruptions=["contrast", "gaussian_noise"])
    seen = {}
    for batch in batches(data):
        for i, sample_id in enumerate(batch["sample_id"]):
            seen[sample_id] = (batch["corruption"][i], int(batch["severity"][i]))
            on_disk = np.asarray(Image.open(root / sample_id).convert("RGB"))
            pixels = (batch["image"][i : i + 1] + MEAN)[0].permute(1, 2, 0).numpy()
            assert np.array_equal(pixels.round().astype(np.uint8), on_disk)  # no resize
            assert batch["target"][i] == fake_imagenet_c.WNIDS.index(Path(sample_id).parts[2])
    assert len(seen) == 2 * 5 * 3
    for sample_id, (corruption, severity) in seen.items():
        assert Path(sample_id).parts[:2] == (corruption, str(severity))


def test_imagenet_c_reads_the_tar_files_group_folders(tmp_path: Path) -> None:
    root = fake_imagenet_c.imagenet_c(tmp_path / "c", ["contrast"], grouped=True)
    corruptions = {
        c
        for b in batches(imagenet_c_module(root, corruptions=["contrast"]))
        for c in b["corruption"]
    }
    assert corruptions == {"contrast"}


def test_imagenet_c_errors_say_what_to_do(tmp_path: Path) -> None:
    root = fake_imagenet_c.imagenet_c(tmp_path / "c", ["contrast"], severities=[1, 2])
    with pytest.raises(ValueError, match=r"unknown corruption 'contrst'.*contrast"):
        imagenet_c_module(root, corruptions=["contrst"])
    with pytest.raises(ValueError, match="severities must be"):
        imagenet_c_module(root, corruptions=["contrast"], severities=[0, 1])
    with pytest.raises(FileNotFoundError, match=r"(?s)'fog' not found.*Expected layout"):
        imagenet_c_module(root, corruptions=["fog"]).setup()
    with pytest.raises(FileNotFoundError, match="3 is missing"):
        imagenet_c_module(root, corruptions=["contrast"]).setup()
    with pytest.raises(ValueError, match="3 class folders, expected 1000"):
        imagenet_c_module(root, corruptions=["contrast"], severities=[1], num_classes=1000).setup()
    wrong_size = imagenet_c_module(root, corruptions=["contrast"], severities=[1], image_size=224)
    with pytest.raises(ValueError, match=r"expected 224×224.*without resizing"):
        batches(wrong_size)


def test_imagenet_c_clean_root_adds_the_clean_images_with_eval_preprocessing(
    tmp_path: Path,
) -> None:
    root = fake_imagenet_c.imagenet_c(tmp_path / "c", ["contrast"], severities=[1])
    clean_root = tmp_path / "imagenet"
    for k, wnid in enumerate(fake_imagenet_c.WNIDS):
        fake_imagenet_c.write_square_jpeg(clean_root / "val" / wnid / "a.JPEG", 48, k)
    data = imagenet_c_module(
        root,
        corruptions=["contrast"],
        severities=[1],
        clean_root=clean_root,
        eval_type="imagenet_32",
    )
    clean = [
        (b["image"][i], int(b["target"][i]))
        for b in batches(data)
        for i, c in enumerate(b["corruption"])
        if c == "clean"
    ]
    assert len(clean) == 3
    assert all(image.shape == (3, 32, 32) for image, _ in clean)
    assert sorted(t for _, t in clean) == [0, 1, 2]


@pytest.mark.parametrize("total,world", [(7, 2), (10, 3)])
def test_ddp_ranks_share_the_grid_without_padding(total: int, world: int) -> None:
    """DistributedSampler pads to equal shares, scoring some images twice; ours may not."""
    items = [
        {"image": torch.zeros(3, 2, 2), "target": i, "sample_id": str(i)} for i in range(total)
    ]
    grid = CorruptionGrid([GridPart("contrast", 1, items[:3]), GridPart("contrast", 2, items[3:])])  # type: ignore[arg-type]
    ids = []
    for rank in range(world):
        trainer = SimpleNamespace(world_size=world, global_rank=rank)
        ids += [i for b in grid_loader(grid, trainer, 2, 0, False) for i in b["sample_id"]]
    assert sorted(ids, key=int) == [str(i) for i in range(total)]


def food101_module(root: Path, **kwargs) -> CorruptedDataModule:
    from assembled_lightning.data.datamodules import Food101DataModule

    inner = Food101DataModule(root, **fake_layouts.TINY_OPTIONS)
    return CorruptedDataModule(inner, **kwargs)


def test_corrupted_batches_are_the_reference_formula_of_the_clean_crop(tmp_path: Path) -> None:
    """contrast (deterministic) applied on the fly = the reference's (x − mean)·c + mean of the
    resized crop, truncated to uint8 as the released files are (severity 2: c = 0.3)."""
    data = food101_module(fake_layouts.food101(tmp_path), corruptions=["contrast"], severities=[2])
    clean, corrupted = {}, {}
    for batch in batches(data):
        pixels = (batch["image"] + MEAN).round().permute(0, 2, 3, 1).numpy()
        for i, sample_id in enumerate(batch["sample_id"]):
            (clean if batch["corruption"][i] == "clean" else corrupted)[sample_id] = pixels[i]
    assert clean.keys() == corrupted.keys() and len(clean) == 2
    for sample_id, x in clean.items():
        x = x / 255.0
        means = x.mean(axis=(0, 1), keepdims=True)
        expected = np.uint8(np.clip((x - means) * 0.3 + means, 0, 1) * 255)
        diff = np.abs(corrupted[sample_id].astype(int) - expected.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_corrupted_with_jpeg_quality_reencodes_like_the_released_files(tmp_path: Path) -> None:
    root = fake_layouts.food101(tmp_path / "food")
    options = {"corruptions": ["contrast"], "severities": [1], "include_clean": False}
    data = food101_module(root, jpeg_quality=85, **options)
    plain = food101_module(root, **options)
    for with_jpeg, without in zip(batches(data), batches(plain), strict=True):
        for a, b in zip(with_jpeg["image"] + MEAN, without["image"] + MEAN, strict=True):
            truncated = b.round().permute(1, 2, 0).numpy().astype(np.uint8)
            path = tmp_path / "x.jpg"
            Image.fromarray(truncated).save(path, quality=85)
            expected = np.asarray(Image.open(path)).astype(int)
            assert np.abs(a.round().permute(1, 2, 0).numpy() - expected).max() <= 1


def test_corrupted_draws_are_reproducible_and_seeded(tmp_path: Path) -> None:
    root = fake_layouts.food101(tmp_path / "food")

    def noisy(seed: int) -> torch.Tensor:
        options = {"corruptions": ["gaussian_noise"], "severities": [3], "include_clean": False}
        data = food101_module(root, seed=seed, **options)
        return torch.cat([b["image"] for b in batches(data)])

    assert torch.equal(noisy(0), noisy(0))
    assert not torch.equal(noisy(0), noisy(1))
