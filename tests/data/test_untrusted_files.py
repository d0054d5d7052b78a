"""Files we read never run code or reach outside their root (issue #10): teacher-logit stores
resume only what they can prove, shard indexes name files of their own folder, annotation
listings name files of their own data set, and a data YAML instantiates only our DataModules."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import fake_layouts
import numpy as np
import pytest
import torch
from scipy.io import savemat

from assembled_lightning.cli import main
from assembled_lightning.data import decode_image
from assembled_lightning.data.datamodule_yaml import load_datamodule
from assembled_lightning.data.datamodules import (
    CUB200DataModule,
    FGVCAircraftDataModule,
    Food101DataModule,
    ImageNetDataModule,
    OxfordIIITPetDataModule,
    StanfordCarsDataModule,
    StanfordOnlineProductsDataModule,
)
from assembled_lightning.data.samples import ImageDataset, Sample
from assembled_lightning.data.shards import ShardedImageDataset, write_shards
from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.data.teacher_logits import TeacherLogitStore, extract_teacher_logits

SECRET = b"SECRET-BYTES-OUTSIDE-THE-ROOT"

# --------------------------------------------------------------------------- item 4: resume


def scaled(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 255


def small_teacher(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 5),
    ).eval()


@pytest.fixture
def forty_images(tmp_path: Path) -> ImageDataset:
    root = tmp_path / "images"
    samples = [
        Sample(fake_layouts.write_image(root / f"{i:03d}.jpg", i), i % 5, f"{i:03d}.jpg")
        for i in range(40)
    ]
    return ImageDataset(samples, scaled)


def interrupt_after(chunks: int) -> Any:
    finished = []

    def callback(chunk: int) -> None:
        finished.append(chunk)
        if len(finished) == chunks:
            raise KeyboardInterrupt

    return callback


@pytest.mark.parametrize(("first", "second"), [(16, 7), (7, 16)])
def test_resume_with_another_chunk_size_gives_the_teachers_own_logits(
    tmp_path: Path, forty_images: ImageDataset, first: int, second: int
) -> None:
    teacher = small_teacher()
    options = {"teacher_name": "t", "transform_name": "scaled", "batch_size": 5}
    with pytest.raises(KeyboardInterrupt):
        extract_teacher_logits(
            teacher,
            forty_images,
            tmp_path / "store",
            chunk_size=first,
            on_chunk_done=interrupt_after(2),
            **options,
        )
    extract_teacher_logits(teacher, forty_images, tmp_path / "store", chunk_size=second, **options)
    store = TeacherLogitStore(tmp_path / "store", verify=True)
    with torch.no_grad():
        for sample in forty_images.samples:
            expected = teacher(scaled(decode_image(sample.path))[None])[0]
            assert torch.allclose(store[sample.sample_id], expected, atol=1e-6), sample.sample_id


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"transform_name": "other"}, "transform"),
        ({"teacher": small_teacher(seed=1)}, "weights"),
        ({"teacher_name": "another"}, "teacher"),
    ],
)
def test_resume_refuses_a_store_of_another_teacher_or_transform(
    tmp_path: Path, forty_images: ImageDataset, change: dict[str, Any], named: str
) -> None:
    options: dict[str, Any] = {
        "teacher": small_teacher(),
        "teacher_name": "t",
        "transform_name": "scaled",
        "chunk_size": 16,
    }
    with pytest.raises(KeyboardInterrupt):
        extract_teacher_logits(
            dataset=forty_images,
            out=tmp_path / "store",
            on_chunk_done=interrupt_after(1),
            **options,
        )
    with pytest.raises(ValueError, match=named):
        extract_teacher_logits(
            dataset=forty_images, out=tmp_path / "store", **{**options, **change}
        )


def test_a_finished_store_must_prove_every_row_was_written(
    tmp_path: Path, forty_images: ImageDataset
) -> None:
    out = extract_teacher_logits(
        small_teacher(), forty_images, tmp_path / "store", teacher_name="t", transform_name="s"
    )
    TeacherLogitStore(out, verify=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["rows_done"] = [[0, 14], [21, 40]]  # rows 14-20 never written
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="rows 14"):
        TeacherLogitStore(out)
    legacy = {k: v for k, v in manifest.items() if k not in ("rows_done", "format")}
    manifest_path.write_text(json.dumps({**legacy, "chunks_done": [0]}))
    with pytest.raises(ValueError, match="extract"):
        TeacherLogitStore(out)


def test_store_rows_are_float32_of_the_recorded_width(
    tmp_path: Path, forty_images: ImageDataset
) -> None:
    out = extract_teacher_logits(
        small_teacher(), forty_images, tmp_path / "store", teacher_name="t", transform_name="s"
    )
    assert np.load(out / "logits.npy").shape == (40, 5)


# --------------------------------------------------------------------------- item 6: shard index


@pytest.fixture
def shard_folder(tmp_path: Path) -> Path:
    root = fake_layouts.imagenet(tmp_path / "data")
    samples, classes = ImageNetDataModule(root, num_classes=3).parse("train")
    return write_shards(samples, classes, tmp_path / "shards", samples_per_shard=6)


def test_a_crafted_index_cannot_run_a_pipe(
    tmp_path: Path, shard_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pwned = tmp_path / "pwned"
    index = json.loads((shard_folder / "index.json").read_text())
    index["shards"] = [f"pipe:touch {pwned}"]
    (shard_folder / "index.json").write_text(json.dumps(index))
    monkeypatch.chdir(shard_folder)
    with pytest.raises(ValueError, match="plain file name"):
        list(ShardedImageDataset(".", shuffle_buffer=0))
    assert not pwned.exists()


@pytest.mark.parametrize("kind", ["absolute", "parent", "nested", "missing"])
def test_a_crafted_index_cannot_name_tars_outside_its_folder(
    tmp_path: Path, shard_folder: Path, kind: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "other.tar").write_bytes((shard_folder / "shard-000000.tar").read_bytes())
    name = {
        "absolute": str(outside / "other.tar"),
        "parent": "../elsewhere/other.tar",
        "nested": "sub/../../elsewhere/other.tar",
        "missing": "shard-000009.tar",
    }[kind]
    index = json.loads((shard_folder / "index.json").read_text())
    index["shards"] = [name]
    (shard_folder / "index.json").write_text(json.dumps(index))
    with pytest.raises((ValueError, FileNotFoundError), match=r"index\.json"):
        list(ShardedImageDataset(shard_folder, shuffle_buffer=0))


# --------------------------------------------------------------------------- item 7: make-shards


def tar_bytes(folder: Path) -> bytes:
    content = b""
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member)
                content += handle.read() if handle else b""
    return content


def sop_with_extra_row(tmp_path: Path, path: str) -> tuple[Path, Path]:
    root = fake_layouts.stanford_online_products(tmp_path / "data")
    listing = root / "Stanford_Online_Products" / "Ebay_train.txt"
    listing.write_text(listing.read_text() + f"9 2 2 {path}\n")
    config = tmp_path / "data.yaml"
    config.write_text(f"class_path: StanfordOnlineProductsDataModule\ninit_args:\n  root: {root}\n")
    return root, config


@pytest.mark.parametrize("escape", ["absolute", "parent"])
def test_make_shards_never_packs_a_file_outside_the_data_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], escape: str
) -> None:
    secret = tmp_path / "secret.JPG"
    secret.write_bytes(SECRET)
    path = str(secret) if escape == "absolute" else "../../secret.JPG"
    _, config = sop_with_extra_row(tmp_path, path)
    out = tmp_path / "shards"
    assert main(["make-shards", "--data", str(config), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "Ebay_train.txt" in error and path in error and "Traceback" not in error
    assert not out.exists() or SECRET not in tar_bytes(out)
    with pytest.raises(ValueError, match="outside"):
        write_shards([Sample(secret, 0, "secret")], ["a"], out, root=tmp_path / "data")


def test_make_shards_packs_only_decodable_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, config = sop_with_extra_row(tmp_path, "cabinet_final/notes.JPG")
    (root / "Stanford_Online_Products" / "cabinet_final" / "notes.JPG").write_bytes(SECRET)
    out = tmp_path / "shards"
    assert main(["make-shards", "--data", str(config), "--out", str(out)]) == 2
    assert "notes.JPG" in capsys.readouterr().err
    assert not (out / "index.json").exists()
    args = ["make-shards", "--data", str(config), "--out", str(out), "--skip-bad-images"]
    with pytest.warns(RuntimeWarning, match="notes.JPG"):
        assert main(args) == 0
    assert "skipped 1" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert index["num_samples"] == 3 and index["num_skipped"] == 1
    assert SECRET not in tar_bytes(out)
    streamed = sorted(item["sample_id"] for item in ShardedImageDataset(out, shuffle_buffer=0))
    assert streamed == [
        "bicycle_final/111085122871_0.JPG",
        "bicycle_final/111085122871_1.JPG",
        "cabinet_final/1112_0.JPG",
    ]


# --------------------------------------------------------------------------- listings of layouts


def escape_food101(root: Path, outside: str) -> None:
    listing = root / "food-101" / "meta" / "train.json"
    content = json.loads(listing.read_text())
    content["apple_pie"].append(outside)
    listing.write_text(json.dumps(content))


def escape_stanford_cars(root: Path, outside: str) -> None:
    rows = [("00001.jpg", 1), (outside + ".jpg", 2)]
    table = fake_layouts._annotations(rows)
    savemat(root / "stanford_cars" / "devkit" / "cars_train_annos.mat", {"annotations": table})


def append_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


def escape_fgvc(root: Path, outside: str) -> None:
    data = root / "fgvc-aircraft-2013b" / "data"
    append_line(data / "images_variant_trainval.txt", f"{outside} 707-320")


def escape_pets(root: Path, outside: str) -> None:
    append_line(root / "oxford-iiit-pet" / "annotations" / "trainval.txt", f"{outside} 1 1 1")


def escape_cub(root: Path, outside: str) -> None:
    base = root / "CUB_200_2011"
    append_line(base / "images.txt", f"9 {outside}.jpg")
    append_line(base / "image_class_labels.txt", "9 1")
    append_line(base / "train_test_split.txt", "9 1")


def escape_sop(root: Path, outside: str) -> None:
    append_line(root / "Stanford_Online_Products" / "Ebay_train.txt", f"9 1 1 {outside}.JPG")


LISTINGS = [
    (Food101DataModule, fake_layouts.food101, escape_food101, "train.json"),
    (StanfordCarsDataModule, fake_layouts.stanford_cars, escape_stanford_cars, "annos.mat"),
    (FGVCAircraftDataModule, fake_layouts.fgvc_aircraft, escape_fgvc, "trainval.txt"),
    (OxfordIIITPetDataModule, fake_layouts.oxford_pets, escape_pets, "trainval.txt"),
    (CUB200DataModule, fake_layouts.cub200, escape_cub, "images.txt"),
    (StanfordOnlineProductsDataModule, fake_layouts.stanford_online_products, escape_sop, "Ebay"),
]


@pytest.mark.parametrize("escape", ["absolute", "parent"])
@pytest.mark.parametrize(
    ("module_class", "build", "tamper", "listing"),
    LISTINGS,
    ids=[row[0].__name__ for row in LISTINGS],
)
def test_layout_listings_only_name_files_inside_the_data_root(
    tmp_path: Path, module_class: type, build: Any, tamper: Any, listing: str, escape: str
) -> None:
    root = build(tmp_path / "data")
    fake_layouts.write_image(tmp_path / "secret.jpg", 0)
    fake_layouts.write_image(tmp_path / "secret.JPG", 0)
    outside = str(tmp_path / "secret") if escape == "absolute" else "../../../../secret"
    tamper(root, outside)
    module = module_class(root, **fake_layouts.TINY_OPTIONS)
    with pytest.raises(ValueError, match=listing) as error:
        module.parse(module.train_split)
    assert "outside" in str(error.value)


# --------------------------------------------------------------------------- item 8: data YAML


def test_a_data_yaml_cannot_call_arbitrary_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pwned = tmp_path / "pwned"
    popen = tmp_path / "popen.yaml"
    popen.write_text(f"class_path: subprocess.Popen\ninit_args:\n  args: [touch, {pwned}]\n")
    with pytest.raises(ValueError, match="ImageNetDataModule"):
        load_datamodule(str(popen))
    assert main(["make-shards", "--data", str(popen), "--out", str(tmp_path / "s")]) == 2
    assert "SyntheticShapesDataModule" in capsys.readouterr().err
    # importing a foreign module would already run its code
    (tmp_path / "evil_module.py").write_text(f"open({str(pwned)!r}, 'w').close()\nclass X: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    evil = tmp_path / "evil.yaml"
    evil.write_text("data:\n  class_path: evil_module.X\n")
    with pytest.raises(ValueError, match="class_path"):
        load_datamodule(str(evil))
    assert not pwned.exists()


@pytest.mark.parametrize(
    "class_path",
    [
        "SyntheticShapesDataModule",
        "assembled_lightning.data.SyntheticShapesDataModule",
        "assembled_lightning.data.synthetic.SyntheticShapesDataModule",
    ],
)
def test_a_data_yaml_names_our_datamodules_by_short_or_full_name(
    tmp_path: Path, class_path: str
) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(f"class_path: {class_path}\ninit_args:\n  num_classes: 3\n")
    data = load_datamodule(str(config))
    assert isinstance(data, SyntheticShapesDataModule) and data.num_classes == 3
