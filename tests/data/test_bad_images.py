"""Bad image files (issue #10 items 1-2): skipping works with every recipe, is counted and
logged, fails past ``max_bad_fraction``; bad paths are bad images; huge images are bounded."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_layouts
import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from assembled_lightning.cli import main
from assembled_lightning.data import (
    Food101DataModule,
    ImageDecodeError,
    ImageFolderDataModule,
    decode_image,
)
from assembled_lightning.data.samples import ImageDataset, Sample, collate_samples
from assembled_lightning.data.shards import INDEX_FILE, ShardedImageDataset
from assembled_lightning.data.stream import TrainingStream

RECIPE = Path(__file__).resolve().parents[2] / "assembled_lightning/recipes/finetune/food101.yaml"
# the recipe's task and data with a narrow network on one CPU (mixup 'halves', AutoAugment,
# DropBlock as shipped); no pretrained weights
ON_ONE_CPU = [
    "--trainer.fast_dev_run=true",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.strategy=auto",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--model.init_args.weights=null",
    "--model.init_args.model_overrides={bn_momentum: 0.034, dropblock: true, base_width: 8}",
    "--data.init_args.batch_size=4",
    "--data.init_args.num_workers=0",
    "--data.init_args.train_size=32",
    "--data.init_args.eval_type=imagenet_32",
    "--data.init_args.pin_memory=false",
]
BAD_TRAINING_ENTRIES = [
    "apple_pie/corrupt",  # a truncated JPEG
    "apple_pie/folder",  # a directory named folder.jpg
    "apple_pie/loop",  # a symbolic link to itself
    "apple_pie/fifo",  # a FIFO: reading it would wait for a writer forever
    "apple_pie/0.jpg/under",  # a path under a regular file (ENOTDIR)
]


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO) fails the test instead of hanging the suite."""

    def fail(signum: int, frame: Any) -> None:
        raise TimeoutError("reading an image blocked for 5 minutes")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def truncated_jpeg(path: Path) -> Path:
    fake_layouts.write_image(path, 0)
    path.write_bytes(path.read_bytes()[:100])
    return path


def make_bad_paths(folder: Path) -> dict[str, Path]:
    """Every kind of bad path, under ``folder``, named like images."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "folder.jpg").mkdir()
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.mkfifo(folder / "fifo.jpg")
    fake_layouts.write_image(folder / "file.jpg", 1)
    return {
        "corrupt": truncated_jpeg(folder / "corrupt.jpg"),
        "directory": folder / "folder.jpg",
        "link loop": folder / "loop.jpg",
        "FIFO": folder / "fifo.jpg",
        "not a folder": folder / "file.jpg" / "under.jpg",
    }


def food101_with_bad_files(root: Path, bad_test_split: bool = False) -> Path:
    """The fake Food-101 with BAD_TRAINING_ENTRIES listed in its training split (5 of 9)."""
    fake_layouts.food101(root)
    images = root / "food-101" / "images" / "apple_pie"
    make_bad_paths(images)
    listing = root / "food-101" / "meta" / "train.json"
    train = json.loads(listing.read_text())
    train["apple_pie"] += BAD_TRAINING_ENTRIES
    listing.write_text(json.dumps(train))
    if bad_test_split:  # both test images: the one validation batch is all bad
        for path in (
            images / "2.jpg",
            root / "food-101" / "images" / "baby_back_ribs" / "1002.jpg",
        ):
            path.write_bytes(path.read_bytes()[:100])
    return root


def capture_trainers(monkeypatch: pytest.MonkeyPatch) -> list[L.Trainer]:
    trainers: list[L.Trainer] = []
    fit = L.Trainer.fit

    def recording_fit(self: L.Trainer, *args: Any, **kwargs: Any) -> Any:
        trainers.append(self)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", recording_fit)
    return trainers


def run_recipe(root: Path, tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "fit",
            "--config",
            str(RECIPE),
            f"--trainer.default_root_dir={tmp_path}",
            f"--data.init_args.root={root}",
            "--data.init_args.skip_bad_images=true",
            *ON_ONE_CPU,
            *extra,
        ]
    )


# ------------------------------------------------------------------ item 1: skipping works


def test_a_bad_training_image_is_replaced_by_the_next_good_one(tmp_path: Path) -> None:
    good = [fake_layouts.write_image(tmp_path / f"g{i}.jpg", i) for i in range(2)]
    bad = [truncated_jpeg(tmp_path / f"b{i}.jpg") for i in range(2)]
    paths = [good[0], bad[0], bad[1], good[1]]
    samples = [Sample(path, i, path.name) for i, path in enumerate(paths)]
    dataset = ImageDataset(samples, skip_bad_images=True, replace_bad_images=True)
    with pytest.warns(RuntimeWarning, match="b0.jpg"):
        batch = collate_samples([dataset[i] for i in (1, 2, 0, 3)])
    assert batch["sample_id"] == ["g1.jpg", "g1.jpg", "g0.jpg", "g1.jpg"]  # full: 4 of 4
    assert batch["target"].tolist() == [3, 3, 0, 3]
    assert torch.equal(batch["image"][0], decode_image(good[1]))
    assert batch["num_skipped"] == 2 and batch["skipped_files"] == [str(bad[0]), str(bad[1])]
    every_bad = ImageDataset(samples[1:3], skip_bad_images=True, replace_bad_images=True)
    with pytest.raises(ImageDecodeError, match="all 2 images"):
        every_bad[0]


@pytest.fixture
def finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> L.Trainer:
    """The Food-101 fine-tune recipe (mixup 'halves') with 5 bad of 9 training files and an
    all-bad validation batch (the test split: val_fraction 0), through the real CLI with
    fast_dev_run."""
    root = food101_with_bad_files(tmp_path / "data", bad_test_split=True)
    trainers = capture_trainers(monkeypatch)
    options = ("--data.init_args.max_bad_fraction=1.0", "--data.init_args.val_fraction=0")
    with pytest.warns(RuntimeWarning, match="skipping bad image"):
        assert run_recipe(root, tmp_path, *options) == 0
    return trainers[0]


def test_a_mixup_recipe_trains_past_bad_files_and_logs_their_count(
    finished_run: L.Trainer,
) -> None:
    data = finished_run.datamodule
    dataset = data.datasets["train"]
    first_batch = list(TrainingStream(dataset, 4, passes=2, seed=0))[:4]
    bad_ids = {f"images/{entry}.jpg" for entry in BAD_TRAINING_ENTRIES}
    expected = sum(dataset.samples[i].sample_id in bad_ids for i in first_batch)
    assert expected >= 1  # seed 0 draws bad files into the one fast_dev_run batch
    assert finished_run.callback_metrics["train/skipped_images"].item() == expected
    assert data.skipped_images == expected + 2  # + the two validation images


def test_an_all_bad_validation_batch_is_counted_not_fatal(finished_run: L.Trainer) -> None:
    assert finished_run.callback_metrics["val/skipped_images"].item() == 2
    assert "val/top1" not in finished_run.callback_metrics  # no image, no accuracy


def test_too_many_bad_files_fail_with_count_fraction_and_examples(
    tmp_path: Path,
) -> None:
    root = food101_with_bad_files(tmp_path / "data")
    with (
        pytest.warns(RuntimeWarning, match="skipping bad image"),
        pytest.raises(RuntimeError, match=r"max_bad_fraction=0\.01") as error,
    ):
        run_recipe(root, tmp_path)
    message = str(error.value)
    assert "training" in message and "%" in message and "apple_pie/" in message


def test_max_bad_fraction_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bad_fraction"):
        Food101DataModule(tmp_path, max_bad_fraction=1.5)


def test_skip_counts_add_up_across_loader_workers(tmp_path: Path) -> None:
    root = fake_layouts.food101(tmp_path / "data")
    images = root / "food-101" / "images"
    for name in ("apple_pie/0.jpg", "baby_back_ribs/1001.jpg"):
        truncated_jpeg(images / name)
    options = {**fake_layouts.TINY_OPTIONS, "num_workers": 2, "batch_size": 1}
    data = Food101DataModule(root, skip_bad_images=True, max_bad_fraction=1.0, **options)
    batches = [data.on_after_batch_transfer(batch, 0) for batch in data.train_dataloader()]
    assert len(batches) == 4 and all(len(batch["target"]) == 1 for batch in batches)
    assert sum(batch["num_skipped"] for batch in batches) == 2 == data.skipped_images


def test_streamed_shards_replace_bad_records_and_count_them(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    good = fake_layouts.write_image(tmp_path / "good.jpg", 0).read_bytes()
    with tarfile.open(folder / "shard-000000.tar", "w") as archive:
        for key, data in enumerate([good, good[:100], good, good]):
            for suffix, payload in (("img", data), ("cls", b"0"), ("id", f"s{key}".encode())):
                info = tarfile.TarInfo(f"{key:09d}.{suffix}")
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    index = {"num_samples": 4, "num_skipped": 0, "shards": ["shard-000000.tar"], "classes": ["a"]}
    (folder / INDEX_FILE).write_text(json.dumps(index))
    dataset = ShardedImageDataset(folder, shuffle_buffer=0, skip_bad_images=True)
    with pytest.warns(RuntimeWarning, match="s1"):
        batch = collate_samples(list(dataset))
    assert batch["sample_id"] == ["s0", "s2", "s3", "s0"]  # full: the next pass fills in
    assert batch["num_skipped"] == 1


# ------------------------------------------------------------ item 2: bad paths, huge images


def test_bad_paths_fail_at_once_with_what_is_wrong(tmp_path: Path) -> None:
    hints = {
        "corrupt": "truncated, corrupt",
        "directory": "a directory",
        "link loop": "symbolic link",
        "FIFO": "not a regular file",
        "not a folder": "not a folder",
    }
    for kind, path in make_bad_paths(tmp_path).items():
        with pytest.raises((ImageDecodeError, OSError)) as error:
            decode_image(path)
        assert hints[kind] in str(error.value) and path.name in str(error.value), kind
        assert "skip_bad_images" in str(error.value), kind


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    path = fake_layouts.write_image(tmp_path / "secret.jpg", 0)
    path.chmod(0)
    with pytest.raises(PermissionError, match="permission"):
        decode_image(path)


def test_bad_paths_are_skipped_as_bad_images(tmp_path: Path) -> None:
    paths = list(make_bad_paths(tmp_path).values())
    good = fake_layouts.write_image(tmp_path / "good.jpg", 2)
    samples = [Sample(path, 0, path.name) for path in [*paths, good]]
    dataset = ImageDataset(samples, skip_bad_images=True)
    with pytest.warns(RuntimeWarning, match="skipping bad image"):
        batch = collate_samples([dataset[i] for i in range(len(samples))])
    assert batch["sample_id"] == ["good.jpg"]  # evaluation drops them ...
    assert batch["num_skipped"] == 5  # ... and counts them
    assert batch["skipped_files"] == [str(path) for path in paths]


def test_image_folders_list_torchvisions_suffixes_and_warn_about_others(tmp_path: Path) -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    folder = tmp_path / "train" / "cat"
    folder.mkdir(parents=True)
    pixels = np.zeros((8, 8, 3), np.uint8)
    for suffix in IMG_EXTENSIONS:
        image = Image.fromarray(pixels if suffix != ".pgm" else pixels[..., 0])
        image.save(folder / f"a{suffix}")
    Image.fromarray(pixels).save(folder / "b.gif")
    (folder / "notes.txt").write_text("not an image, not reported")
    with pytest.warns(UserWarning, match=r"1 file.*b\.gif"):
        samples, _ = ImageFolderDataModule(tmp_path).parse("train")
    assert sorted(sample.path.suffix for sample in samples) == sorted(IMG_EXTENSIONS)


def test_float_and_32_bit_images_are_refused_not_blackened(tmp_path: Path) -> None:
    for mode, pixels in (("F", np.full((4, 5), 0.5, np.float32)), ("I", np.full((4, 5), 300))):
        path = tmp_path / f"{mode}.tif"
        Image.fromarray(pixels.astype(np.float32 if mode == "F" else np.int32)).save(path)
        assert Image.open(path).mode == mode
        with pytest.raises(ImageDecodeError, match=rf"{mode}\.tif.*8-bit"):
            decode_image(path)


def png_bytes(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of zeros: huge in pixels, tiny in bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor = zlib.compressobj(9)
    rows = bytes(1 + (width + 7) // 8) * 100
    pixels = [compressor.compress(rows) for _ in range(height // 100)] + [compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(pixels))
        + chunk(b"IEND", b"")
    )


def test_a_huge_png_is_refused_from_its_header_at_once(tmp_path: Path) -> None:
    data = png_bytes(12000, 12000)
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow itself only warns up to 2×
        assert len(data) < 100_000 and Image.open(io.BytesIO(data)).size == (12000, 12000)
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match=r"huge\.png.*12000×12000.*MAX_IMAGE_PIXELS"):
        decode_image(path)
    assert time.perf_counter() - start < 1.0  # the header only: nothing is decoded


def test_an_oversized_jpeg_is_decoded_at_reduced_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    jpeg = tmp_path / "big.jpg"
    Image.fromarray(pixels).save(jpeg, quality=95)
    full = decode_image(jpeg)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 160 // 2)  # the JPEG is twice over
    with Image.open(jpeg) as reference:  # libjpeg's DCT scaling, as Pillow's draft gives it
        reference.draft("RGB", (100, 80))
        expected = np.asarray(reference.convert("RGB"))
    reduced = decode_image(jpeg)
    assert reduced.shape == (3, 80, 100) and full.shape == (3, 160, 200)
    assert np.array_equal(reduced.permute(1, 2, 0).numpy(), expected)
    png = tmp_path / "big.png"
    Image.fromarray(pixels).save(png)
    with pytest.raises(ImageDecodeError, match="200×160"):
        decode_image(png)
