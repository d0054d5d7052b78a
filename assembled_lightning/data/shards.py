"""Sharded streaming format for ImageNet-size data on many nodes: WebDataset tar shards.

Why WebDataset: shards are plain POSIX tar files (inspectable with ``tar``, copyable to any
object store, streamable over ``pipe:``/HTTP URLs), the reader splits shards by node and worker
and shuffles with a buffer, and the package is small (numpy, pyyaml, braceexpand). LitData
offers the same but pulls in boto3, obstore and its own chunk format. Writing is done here with
the standard library, so only reading needs the optional ``webdataset`` extra.

A shard holds, per sample ``<key>``: ``<key>.img`` (the original file's bytes, decoded by content
with :func:`decode_image`), ``<key>.cls`` (label) and ``<key>.id`` (stable sample id, which keys
teacher logits). ``index.json`` lists the shards, the sample count and the classes.

Both sides distrust their input: the writer packs only files inside the data root that decode as
images (bad ones raise, or are counted and skipped), and the reader accepts only plain file names
of shards inside the index's own folder, so a crafted ``index.json`` can neither start a
``pipe:`` command nor read tars elsewhere.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import tarfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .decode import ImageDecodeError, decode_image, is_bad_image_error, read_image_file
from .samples import LogitLookup, Sample, naming_os_errors

INDEX_FILE = "index.json"
_NOT_IN_A_PLAIN_NAME = ("/", "\\", ":", "\0")


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    archive.addfile(info, io.BytesIO(data))


def _image_bytes(sample: Sample, root: Path | None, skip_bad_images: bool) -> bytes | None:
    """The file's bytes once they decode as an image; None for a skipped bad or missing file."""
    if root is not None and not Path(os.path.abspath(sample.path)).is_relative_to(
        os.path.abspath(root)
    ):
        raise ValueError(
            f"sample {sample.sample_id!r} is {sample.path}, outside the data root {root}: "
            "shards hold only files of the data set; fix the listing that names it"
        )
    try:
        data = read_image_file(sample.path)
        decode_image(data, name=str(sample.path))
    except (ImageDecodeError, OSError) as error:
        if not is_bad_image_error(error):
            raise
        if not skip_bad_images:
            if isinstance(error, ImageDecodeError):
                raise ImageDecodeError(
                    f"{error} (make-shards --skip-bad-images counts and skips such files)"
                ) from error
            raise
        warnings.warn(f"skipping bad image: {error}", RuntimeWarning, stacklevel=3)
        return None
    return data


def _packable(
    samples: Sequence[Sample], root: Path | None, skip_bad_images: bool, skipped: list[str]
) -> Iterator[tuple[Sample, bytes]]:
    """Each sample with its file's bytes; the ids of skipped ones are appended to ``skipped``."""
    for sample in samples:
        data = _image_bytes(sample, root, skip_bad_images)
        if data is None:
            skipped.append(sample.sample_id)
        else:
            yield sample, data


def write_shards(
    samples: Sequence[Sample],
    classes: Sequence[str],
    out: str | os.PathLike[str],
    samples_per_shard: int = 1000,
    seed: int | None = 0,
    *,
    root: str | os.PathLike[str] | None = None,
    skip_bad_images: bool = False,
) -> Path:
    """Pack samples into ``shard-000000.tar`` ... plus ``index.json``. With a ``seed`` the order
    is a seeded permutation, so every shard mixes classes (readers only shuffle within a buffer
    and across shards); ``seed=None`` keeps the given order.

    Every file must decode as an image before it is packed; ``skip_bad_images=True`` skips bad
    ones (that do not decode or cannot be read) with a warning and records their number as
    ``num_skipped`` in the index.
    With ``root``, a sample whose path lies outside it is an error. ``index.json`` is written
    last (atomically), so an interrupted run leaves no index that names unfinished shards.
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_FILE).unlink(missing_ok=True)  # the old index would name overwritten shards
    if seed is not None:
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))
        samples = [samples[i] for i in order.tolist()]
    skipped: list[str] = []
    items = _packable(samples, Path(root) if root is not None else None, skip_bad_images, skipped)
    shards: list[str] = []
    packed = 0
    while (head := next(items, None)) is not None:
        shards.append(f"shard-{len(shards):06d}.tar")
        with naming_os_errors(out / shards[-1]), tarfile.open(out / shards[-1], "w") as archive:
            for sample, data in itertools.chain(
                [head], itertools.islice(items, samples_per_shard - 1)
            ):
                key = f"{packed:09d}"
                _add_member(archive, f"{key}.img", data)
                _add_member(archive, f"{key}.cls", str(sample.label).encode())
                _add_member(archive, f"{key}.id", sample.sample_id.encode())
                packed += 1
    index: dict[str, Any] = {
        "num_samples": packed,
        "num_skipped": len(skipped),
        "shards": shards,
        "classes": list(classes),
    }
    temporary = out / f"{INDEX_FILE}.tmp"
    with naming_os_errors(out / INDEX_FILE):
        try:
            temporary.write_text(json.dumps(index, indent=1))
            os.replace(temporary, out / INDEX_FILE)
        finally:
            temporary.unlink(missing_ok=True)
    return out


def _check_shard_name(name: object, index_path: Path) -> str:
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(mark in name for mark in _NOT_IN_A_PLAIN_NAME)
    ):
        raise ValueError(
            f"{index_path} lists the shard {name!r}: only plain file names of shards inside "
            f"{index_path.parent} are accepted (no folders, '..', absolute paths or URLs such as "
            "'pipe:'); write the shards again with `assembled-lightning make-shards`"
        )
    return name


def read_index(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The index of a shard folder, checked: its shards are plain file names that exist in
    the folder, its counts are numbers; anything else raises an error naming the index."""
    folder = Path(folder)
    path = folder / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no shard index at {path}: write shards with `assembled-lightning make-shards`"
        )
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); write the shards again with make-shards"
        ) from error
    if (
        not isinstance(index, dict)
        or not isinstance(index.get("shards"), list)
        or not isinstance(index.get("classes"), list)
        or not isinstance(index.get("num_samples"), int)
        or index["num_samples"] < 0
    ):
        raise ValueError(
            f"{path} is not a shard index (it needs num_samples, shards and classes); write the "
            "shards again with `assembled-lightning make-shards`"
        )
    for name in index["shards"]:
        if not (folder / _check_shard_name(name, path)).is_file():
            raise FileNotFoundError(
                f"{path} lists the shard {name}, which is not in {folder}: copy the whole shard "
                "folder, or write the shards again with `assembled-lightning make-shards`"
            )
    return index


class ShardedImageDataset(IterableDataset[dict[str, Any]]):
    """Streams samples from the shards, split across DDP ranks and loader workers, shuffled
    with a buffer; each rank yields ``num_samples // world_size`` samples per epoch so that all
    ranks run the same number of steps. With ``skip_bad_images`` a record that does not decode
    is replaced by the next good one of the stream, which carries its name under ``skipped``
    (counted in the batch's ``num_skipped``), so batches stay full."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        shuffle_buffer: int = 1000,
        teacher_logits: LogitLookup | None = None,
        world_size: int = 1,
        skip_bad_images: bool = False,
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.index = read_index(folder)
        self.transform = transform
        self.shuffle_buffer = shuffle_buffer
        self.teacher_logits = teacher_logits
        self.skip_bad_images = skip_bad_images
        self.samples_per_rank = self.index["num_samples"] // max(world_size, 1)

    def _pipeline(self) -> Any:
        try:
            import webdataset as wds
        except ImportError as error:
            raise ImportError(
                "reading shards needs webdataset: pip install 'assembled-lightning[streaming]'"
            ) from error
        # absolute paths: WebDataset reads a relative 'pipe:...' or 'http:...' as a URL
        urls = [str((self.folder / name).absolute()) for name in self.index["shards"]]
        dataset = wds.WebDataset(
            urls,
            shardshuffle=len(urls) if self.shuffle_buffer else False,
            nodesplitter=wds.split_by_node,
            empty_check=False,
        )
        if self.shuffle_buffer:
            dataset = dataset.shuffle(self.shuffle_buffer)
        return dataset.map(self._decode).repeat()  # endless: __iter__ takes this epoch's share

    def _decode(self, record: dict[str, Any]) -> dict[str, Any]:
        sample_id = record["id"].decode()
        try:
            image = decode_image(record["img"], name=f"{record['__url__']}:{sample_id}")
        except ImageDecodeError as error:
            if not self.skip_bad_images:
                raise
            warnings.warn(f"skipping bad image: {error}", RuntimeWarning, stacklevel=2)
            return {"skipped": [f"{record['__url__']}:{sample_id}"]}
        item = {
            "image": self.transform(image) if self.transform else image,
            "target": int(record["cls"]),
            "sample_id": sample_id,
        }
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[sample_id]
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Each loader worker streams its share of this rank's shards (use at least
        ``world_size × num_workers`` shards, or some workers have none)."""
        worker = get_worker_info()
        workers = worker.num_workers if worker is not None else 1
        limit = self.samples_per_rank // workers
        return self._good_items(iter(self._pipeline()), limit) if limit else iter([])

    def _good_items(self, records: Iterator[dict[str, Any]], limit: int) -> Iterator[Any]:
        """``limit`` decoded items; each skipped record is handed on to the next good one."""
        skipped: list[str] = []
        produced = 0
        for item in records:
            if "image" not in item:
                skipped += item["skipped"]
                if len(skipped) > self.index["num_samples"]:  # a whole pass without one image
                    raise ImageDecodeError(
                        f"no image of the shards in {self.folder} decodes (e.g. {skipped[0]}); "
                        "write the shards again with `assembled-lightning make-shards`"
                    )
                continue
            if skipped:
                item["skipped"], skipped = skipped, []
            yield item
            produced += 1
            if produced == limit:
                return

    def __len__(self) -> int:
        return self.samples_per_rank
