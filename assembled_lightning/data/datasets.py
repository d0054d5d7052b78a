"""Parsers of the on-disk layouts of every data set the paper uses → samples and class names.

Layouts are the ones the data sets ship with, under the folder names torchvision's downloaders
create (``food-101``, ``stanford_cars``, ``flowers-102``, ``fgvc-aircraft-2013b``,
``oxford-iiit-pet``), so a root prepared by torchvision works here. We parse the split files
ourselves so that decoding, sample ids and error messages are ours, and so that tests can fake
the layouts (torchvision checks the md5 of some annotation files). Every path read from a split
or annotation file goes through :func:`~.samples.listed_path`: an absolute path or a ``..`` in a
listing is an error naming the listing, never a read outside the data set's folder.

Folders of images (ImageFolder, ImageNet's class folders) list the files whose suffix is one of
torchvision's ``IMG_EXTENSIONS`` (:data:`IMAGE_SUFFIXES`), so a tree gives the samples
torchvision's ``ImageFolder`` gives; each file is decoded by content (a multi-page TIFF gives its
first page). Other files that Pillow could read (``.gif``, which torchvision does not list either,
``.jp2`` …) are left out with a warning that counts and names them: convert them to JPEG or PNG
to use them. Entries with an image suffix that are no image files (a directory named ``x.jpg``)
stay in the list and fail, or are skipped, as bad images.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

from PIL import Image

from .samples import Sample, listed_path, relative_id, require_files

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
"""torchvision's ``IMG_EXTENSIONS`` (compared in lower case)."""
Parsed = tuple[list[Sample], list[str]]


def _images_in(folder: Path, left_out: list[Path]) -> list[Path]:
    """The image files of ``folder``; files Pillow could read but with another suffix are
    appended to ``left_out``."""
    paths = sorted(folder.iterdir())
    readable = {
        suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN
    }
    left_out += [p for p in paths if p.suffix.lower() in readable - IMAGE_SUFFIXES]
    return [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]


def _warn_left_out(left_out: list[Path], where: Path) -> None:
    if left_out:
        warnings.warn(
            f"{where}: left out {len(left_out)} file(s) whose suffix is not an image suffix of "
            f"torchvision's ImageFolder ({', '.join(sorted(IMAGE_SUFFIXES))}), e.g. "
            f"{', '.join(str(p) for p in left_out[:3])}; convert them to JPEG or PNG to use them",
            UserWarning,
            stacklevel=3,
        )


def parse_class_folders(root: Path, split_dir: Path, classes: list[str] | None = None) -> Parsed:
    """``split_dir/<class>/<image>`` (ImageFolder and ImageNet's class-folder layout)."""
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(
            f"{split_dir} has class folders not in the training classes: {unknown[:5]}"
        )
    index = {name: i for i, name in enumerate(classes)}
    left_out: list[Path] = []
    samples = [
        Sample(path, index[folder], relative_id(path, root))
        for folder in found
        for path in _images_in(split_dir / folder, left_out)
    ]
    _warn_left_out(left_out, split_dir)
    return samples, classes


IMAGENET_LAYOUT = """  <root>/train/<wnid>/*.JPEG            (1000 class folders, e.g. n01440764)
  <root>/val/<wnid>/*.JPEG              (class folders, as torchvision's ImageNet prepares), or
  <root>/val/ILSVRC2012_val_*.JPEG      flat, with val_labels= either one wnid per line in file-name
                                        order (imagenet_2012_validation_synset_labels.txt) or
                                        Kaggle's LOC_val_solution.csv
ImageNet is not downloadable automatically: get ILSVRC-2012 from image-net.org."""


def _read_val_labels(labels_file: Path, images: list[Path]) -> list[str]:
    text = labels_file.read_text()
    if text.startswith("ImageId"):
        rows = csv.DictReader(text.splitlines())
        by_name = {row["ImageId"]: row["PredictionString"].split()[0] for row in rows}
        missing = [p.stem for p in images if p.stem not in by_name]
        if missing:
            raise ValueError(f"{labels_file} has no label for {missing[:3]} ...")
        return [by_name[p.stem] for p in images]
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    if len(wnids) != len(images):
        raise ValueError(
            f"{labels_file} has {len(wnids)} labels for {len(images)} validation images; it must "
            "list one wnid per image, in file-name order"
        )
    return wnids


def parse_imagenet(root: Path, split: str, val_labels: Path | None = None) -> Parsed:
    """ILSVRC-2012 in class folders, or with a flat ``val`` folder plus a labels file."""
    require_files("ImageNet", root, [split], IMAGENET_LAYOUT)
    split_dir = root / split
    classes = None
    if (root / "train").is_dir():
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if any(p.is_dir() for p in split_dir.iterdir()):
        return parse_class_folders(root, split_dir, classes)
    if val_labels is None:
        raise FileNotFoundError(
            f"{split_dir} is flat (no class folders): pass val_labels=<labels file>.\n"
            f"Expected layout:\n{IMAGENET_LAYOUT}"
        )
    left_out: list[Path] = []
    images = _images_in(split_dir, left_out)
    _warn_left_out(left_out, split_dir)
    wnids = _read_val_labels(Path(val_labels), images)
    classes = classes or sorted(set(wnids))
    index = {name: i for i, name in enumerate(classes)}
    return [
        Sample(p, index[w], relative_id(p, root)) for p, w in zip(images, wnids, strict=True)
    ], classes


def parse_food101(root: Path, split: str) -> Parsed:
    base = root / "food-101"
    require_files(
        "Food-101",
        base,
        ["meta/classes.txt", f"meta/{split}.json", "images"],
        "  <root>/food-101/images/<class>/<id>.jpg, meta/classes.txt, meta/{train,test}.json",
    )
    classes = (base / "meta" / "classes.txt").read_text().split()
    index = {name: i for i, name in enumerate(classes)}
    listing_file = base / "meta" / f"{split}.json"
    listing = json.loads(listing_file.read_text())
    if not isinstance(listing, dict) or not all(
        isinstance(items, list) and all(isinstance(item, str) for item in items)
        for items in listing.values()
    ):
        raise ValueError(
            f"{listing_file} must map each class to a list of image names, as Food-101 ships it"
        )
    samples = [
        Sample(
            listed_path(base / "images", f"{item}.jpg", listing_file),
            index[name],
            f"images/{item}.jpg",
        )
        for name in classes
        for item in listing.get(name, [])
    ]
    return samples, classes


def parse_stanford_cars(root: Path, split: str) -> Parsed:
    from scipy.io import loadmat

    base = root / "stanford_cars"
    annotations = (
        "devkit/cars_train_annos.mat" if split == "train" else "cars_test_annos_withlabels.mat"
    )
    images = "cars_train" if split == "train" else "cars_test"
    require_files(
        "Stanford Cars",
        base,
        ["devkit/cars_meta.mat", annotations, images],
        "  <root>/stanford_cars/devkit/{cars_meta.mat,cars_train_annos.mat}, "
        "cars_test_annos_withlabels.mat, cars_train/, cars_test/",
    )
    classes = [
        str(c) for c in loadmat(base / "devkit/cars_meta.mat", squeeze_me=True)["class_names"]
    ]
    rows = loadmat(base / annotations, squeeze_me=True)["annotations"]
    samples = [
        Sample(
            listed_path(base / images, str(row["fname"]), base / annotations),
            int(row["class"]) - 1,
            f"{images}/{row['fname']}",
        )
        for row in rows
    ]
    return samples, classes


FLOWERS_SPLITS = {
    "train": ("trnid",),
    "val": ("valid",),
    "trainval": ("trnid", "valid"),
    "test": ("tstid",),
}


def parse_flowers102(root: Path, split: str) -> Parsed:
    from scipy.io import loadmat

    base = root / "flowers-102"
    require_files(
        "Oxford Flowers-102",
        base,
        ["jpg", "imagelabels.mat", "setid.mat"],
        "  <root>/flowers-102/jpg/image_00001.jpg ..., imagelabels.mat, setid.mat",
    )
    labels = loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"]
    set_ids = loadmat(base / "setid.mat", squeeze_me=True)
    ids = sorted(int(i) for key in FLOWERS_SPLITS[split] for i in set_ids[key].ravel())
    samples = [
        Sample(
            base / "jpg" / f"image_{i:05d}.jpg", int(labels[i - 1]) - 1, f"jpg/image_{i:05d}.jpg"
        )
        for i in ids
    ]
    return samples, [str(i) for i in range(1, 103)]


def parse_fgvc_aircraft(root: Path, split: str) -> Parsed:
    data = root / "fgvc-aircraft-2013b" / "data"
    listing = f"images_variant_{split}.txt"
    require_files(
        "FGVC Aircraft",
        data,
        ["variants.txt", listing, "images"],
        "  <root>/fgvc-aircraft-2013b/data/images/<id>.jpg, variants.txt, "
        "images_variant_{trainval,test}.txt",
    )
    classes = [
        line.strip() for line in (data / "variants.txt").read_text().splitlines() if line.strip()
    ]
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for line in (data / listing).read_text().splitlines():
        if line.strip():
            image, variant = line.strip().split(" ", 1)
            path = listed_path(data / "images", f"{image}.jpg", data / listing)
            samples.append(Sample(path, index[variant], f"images/{image}.jpg"))
    return samples, classes


def parse_oxford_pets(root: Path, split: str) -> Parsed:
    base = root / "oxford-iiit-pet"
    require_files(
        "Oxford-IIIT Pets",
        base,
        [f"annotations/{split}.txt", "images"],
        "  <root>/oxford-iiit-pet/images/<Breed_N>.jpg, annotations/{trainval,test}.txt",
    )
    samples, names = [], {}
    listing = base / "annotations" / f"{split}.txt"
    for line in listing.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            image, label = line.split()[:2]
            names[int(label) - 1] = image.rsplit("_", 1)[0]
            path = listed_path(base / "images", f"{image}.jpg", listing)
            samples.append(Sample(path, int(label) - 1, f"images/{image}.jpg"))
    return samples, [names.get(i, str(i)) for i in range(37)]


def parse_cub200(root: Path, split: str) -> Parsed:
    """CUB-200-2011: official 'train'/'test', or zero-shot retrieval 'retrieval_train' (classes
    1-100) / 'retrieval_test' (101-200), labels renumbered from 0 within the split."""
    base = root / "CUB_200_2011"
    files = [
        "images.txt",
        "image_class_labels.txt",
        "train_test_split.txt",
        "classes.txt",
        "images",
    ]
    require_files(
        "CUB-200-2011",
        base,
        files,
        "  <root>/CUB_200_2011/images/<class>/<image>.jpg, images.txt, classes.txt, "
        "image_class_labels.txt, train_test_split.txt",
    )

    def table(name: str) -> dict[int, str]:
        rows = (
            line.split(" ", 1) for line in (base / name).read_text().splitlines() if line.strip()
        )
        return {int(key): value.strip() for key, value in rows}

    paths, labels = table("images.txt"), table("image_class_labels.txt")
    is_train, class_names = table("train_test_split.txt"), table("classes.txt")
    if split in ("train", "test"):
        wanted_classes, offset = range(1, 201), 0
        images = [i for i in sorted(paths) if is_train[i] == ("1" if split == "train" else "0")]
    else:
        wanted_classes = range(1, 101) if split == "retrieval_train" else range(101, 201)
        offset = wanted_classes.start - 1
        images = [i for i in sorted(paths) if int(labels[i]) in wanted_classes]
    samples = [
        Sample(
            listed_path(base / "images", paths[i], base / "images.txt"),
            int(labels[i]) - 1 - offset,
            f"images/{paths[i]}",
        )
        for i in images
    ]
    return samples, [class_names[i] for i in wanted_classes]


def parse_stanford_online_products(root: Path, split: str) -> Parsed:
    """SOP zero-shot retrieval: 'train' (11,318 classes) / 'test' (11,316), labels from 0."""
    base = root / "Stanford_Online_Products"
    listing = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}[split]
    require_files(
        "Stanford Online Products",
        base,
        [listing],
        "  <root>/Stanford_Online_Products/Ebay_{train,test}.txt, <super_class>_final/*.JPG",
    )
    lines = (base / listing).read_text().splitlines()[1:]
    rows = [line.split() for line in lines if line.strip()]
    malformed = [row for row in rows if len(row) != 4 or not row[1].isdigit()]
    if malformed:
        raise ValueError(
            f"{base / listing}: expected 'image_id class_id super_class_id path' on every line, "
            f"got {' '.join(malformed[0])!r}; restore the file from the data set's download"
        )
    class_ids = sorted({int(row[1]) for row in rows})
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    samples = [
        Sample(listed_path(base, row[3], base / listing), index[int(row[1])], row[3])
        for row in rows
    ]
    return samples, [str(c) for c in class_ids]


CARS196_TRAIN_CLASSES = range(1, 99)
"""Cars-196 zero-shot retrieval: classes 1–98 train, 99–196 test (the split of Song et al.
2016 that the paper's Table 9 uses), over all 16,185 images of both annotation files."""


def parse_cars196_retrieval(root: Path, split: str) -> Parsed:
    """Cars-196 zero-shot retrieval: 'retrieval_train' (classes 1–98, 8,054 images) /
    'retrieval_test' (99–196, 8,131) from the images of Stanford Cars' train *and* test
    annotations together, labels renumbered from 0 within the split."""
    if split not in ("retrieval_train", "retrieval_test"):
        raise ValueError(
            f"Cars-196 retrieval splits are 'retrieval_train' and 'retrieval_test', got {split!r}"
        )
    train_samples, classes = parse_stanford_cars(root, "train")
    test_samples, _ = parse_stanford_cars(root, "test")
    first = len(CARS196_TRAIN_CLASSES)  # labels 0..97 are classes 1..98
    wanted = range(first) if split == "retrieval_train" else range(first, len(classes))
    samples = [
        Sample(sample.path, sample.label - wanted.start, sample.sample_id)
        for sample in train_samples + test_samples
        if sample.label in wanted
    ]
    return samples, [classes[label] for label in wanted]
