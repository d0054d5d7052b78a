"""Teacher logits computed once, stored memory-mapped, and served with every training batch
(knowledge distillation as the original: offline logits of un-augmented images, ORIGINAL.md §6).

A store is a folder: ``logits.npy`` (float32 ``[count, num_classes]``, memory-mapped),
``ids.json`` (the stable sample id of each row) and ``manifest.json`` (teacher name, a sha256 of
the teacher's structure and weights, transform, num_classes, count, the row ranges written, and
the sha256 of the logits once complete). Extraction writes in chunks, syncs each to disk and
only then records its rows, so an interrupted run (or a full disk) loses at most the chunk in
progress, and the same command resumes where it stopped.

A resume continues only the same extraction: the same sample ids, teacher name, teacher weights
and transform name, or it refuses and says which differs. Progress is kept as row ranges, so a
resume may use another ``chunk_size`` (or batch size, device, workers) and still fill exactly the
missing rows. A store counts as finished only when its ranges cover every row, which the reader
checks (and, with ``verify=True``, the sha256 of the logits as well).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib import format as npy_format
from torch import nn
from torch.utils.data import DataLoader, Subset

from .samples import ImageDataset, collate_samples, naming_os_errors

LOGITS_FILE, IDS_FILE, MANIFEST_FILE = "logits.npy", "ids.json", "manifest.json"
STORE_FORMAT = 2
"""Version of the manifest: 2 records written row ranges (1 recorded chunk numbers, which a
resume with another chunk size misread)."""
_DTYPE = np.dtype("<f4")
Ranges = list[list[int]]


def _write_json(path: Path, content: dict[str, Any] | list[str]) -> None:
    """Write atomically, so an interruption or a full disk never leaves a half-written
    manifest: the previous one stays in place."""
    temporary = path.with_suffix(".tmp")
    with naming_os_errors(path):
        try:
            temporary.write_text(json.dumps(content, indent=1))
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}): the teacher-logit store is damaged; extract "
            "the logits again into a new --out folder"
        ) from error


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, checked field by field, so a damaged or foreign one is a clear error."""
    manifest = _read_json(folder / MANIFEST_FILE)
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise ValueError(
            f"{folder} is not a teacher-logit store of this version (format {STORE_FORMAT}): an "
            "earlier version recorded chunk numbers, which cannot prove that every row was "
            "written; extract the logits again into a new --out folder"
        )
    count, num_classes = manifest.get("count"), manifest.get("num_classes")
    rows = manifest.get("rows_done")
    valid = (
        isinstance(count, int)
        and count > 0
        and isinstance(num_classes, int)
        and num_classes > 0
        and isinstance(rows, list)
        and all(
            isinstance(r, list)
            and len(r) == 2
            and all(isinstance(v, int) for v in r)
            and 0 <= r[0] < r[1] <= count
            for r in rows
        )
        and all(isinstance(manifest.get(key), str) for key in ("teacher", "transform"))
        and isinstance(manifest.get("sha256"), (str, type(None)))
    )
    if not valid:
        raise ValueError(
            f"{folder / MANIFEST_FILE} is damaged (count, num_classes, rows_done, teacher, "
            "transform or sha256 is missing or wrong); extract the logits again into a new "
            "--out folder"
        )
    return manifest


def _merge(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return merged


def _missing(ranges: Ranges, count: int) -> Ranges:
    """The row ranges of ``[0, count)`` that ``ranges`` do not cover."""
    gaps, position = [], 0
    for start, stop in _merge(ranges):
        if start > position:
            gaps.append([position, start])
        position = max(position, stop)
    if position < count:
        gaps.append([position, count])
    return gaps


def _teacher_sha256(teacher: nn.Module) -> str:
    """sha256 of the teacher's structure (its repr) and of every parameter and buffer: a resume
    with other weights under the same name is refused instead of mixing two teachers."""
    digest = hashlib.sha256(repr(teacher).encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        values = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{values.dtype}:{tuple(values.shape)}".encode())
        digest.update(values.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _create_logits_file(path: Path, count: int, num_classes: int) -> None:
    """A float32 ``.npy`` of zeros with its space reserved up front, so that a disk too small
    for the store fails now, not hours into the extraction."""
    header = {"descr": npy_format.dtype_to_descr(_DTYPE), "fortran_order": False}
    with naming_os_errors(path), path.open("wb") as handle:
        npy_format.write_array_header_1_0(handle, {**header, "shape": (count, num_classes)})
        size = handle.tell() + count * num_classes * _DTYPE.itemsize
        handle.truncate(size)
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(handle.fileno(), 0, size)
            except OSError as error:  # some file systems cannot reserve space: write anyway
                unsupported = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENODEV, errno.ESPIPE)
                if error.errno not in unsupported:
                    raise


def _data_offset(path: Path, count: int, num_classes: int) -> int:
    """Where the rows of ``logits.npy`` start, once its header matches the manifest."""
    with path.open("rb") as handle:
        try:
            version = npy_format.read_magic(handle)
            shape, fortran_order, dtype = (
                npy_format.read_array_header_1_0(handle)
                if version == (1, 0)
                else npy_format.read_array_header_2_0(handle)
            )
        except ValueError as error:
            shape, fortran_order, dtype = None, False, None
            reason = str(error)
        else:
            reason = f"shape {shape}, dtype {dtype}"
        if shape != (count, num_classes) or fortran_order or dtype != _DTYPE:
            raise ValueError(
                f"{path} ({reason}) does not hold the float32 [{count}, {num_classes}] logits "
                "its manifest records; extract the logits again into a new --out folder"
            )
        offset = handle.tell()
    if path.stat().st_size < offset + count * num_classes * _DTYPE.itemsize:
        raise ValueError(
            f"{path} is shorter than its header says (truncated copy?); extract the logits "
            "again into a new --out folder"
        )
    return offset


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@torch.no_grad()
def extract_teacher_logits(
    teacher: nn.Module,
    dataset: ImageDataset,
    out: str | os.PathLike[str],
    *,
    teacher_name: str,
    transform_name: str,
    batch_size: int = 64,
    num_workers: int = 0,
    chunk_size: int = 1024,
    device: str | torch.device = "cpu",
    on_chunk_done: Callable[[int], None] | None = None,
) -> Path:
    """Run ``teacher`` (eval mode) over ``dataset`` once and store its logits; resumable.

    Running it again on an unfinished store fills in the rows still missing (whatever
    ``chunk_size``), after checking that ids, teacher and transform are those of the store;
    on a finished one it checks the logits' sha256 and returns. ``on_chunk_done`` is called
    with the number of each chunk finished by this call (0, 1, ...).
    """
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk_size and batch_size must be >= 1, got {chunk_size}, {batch_size}")
    out = Path(out)
    ids = [sample.sample_id for sample in dataset.samples]
    if not ids:
        raise ValueError("the data set has no samples: there is nothing to extract")
    if len(set(ids)) != len(ids):
        raise ValueError("sample ids are not unique; the store needs one row per sample")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path, logits_path = out / MANIFEST_FILE, out / LOGITS_FILE
    fingerprint = _teacher_sha256(teacher)
    teacher = teacher.eval().to(device)
    if manifest_path.is_file():
        manifest = _read_manifest(out)
        _check_same_extraction(out, manifest, ids, teacher_name, fingerprint, transform_name)
        if manifest["sha256"] is not None:
            _check_finished(out, manifest)
            return out
    else:
        num_classes = int(teacher(dataset[0]["image"][None].to(device)).shape[1])
        _create_logits_file(logits_path, len(ids), num_classes)
        _write_json(out / IDS_FILE, ids)
        manifest = {
            "format": STORE_FORMAT,
            "teacher": teacher_name,
            "teacher_sha256": fingerprint,
            "transform": transform_name,
            "num_classes": num_classes,
            "count": len(ids),
            "chunk_size": chunk_size,
            "rows_done": [],
            "sha256": None,
        }
        _write_json(manifest_path, manifest)
    offset = _data_offset(logits_path, len(ids), manifest["num_classes"])
    row_bytes = manifest["num_classes"] * _DTYPE.itemsize
    chunk_index = 0
    for gap_start, gap_stop in _missing(manifest["rows_done"], len(ids)):
        for start in range(gap_start, gap_stop, chunk_size):
            stop = min(start + chunk_size, gap_stop)
            loader = DataLoader(
                Subset(dataset, range(start, stop)),
                batch_size=batch_size,
                num_workers=num_workers,
                collate_fn=collate_samples,
            )
            written = 0
            with naming_os_errors(logits_path), logits_path.open("r+b") as handle:
                handle.seek(offset + start * row_bytes)
                for batch in loader:
                    if batch["num_skipped"]:
                        raise ValueError(
                            "teacher extraction needs every image; a bad file was skipped"
                        )
                    output = teacher(batch["image"].to(device)).float().cpu().numpy()
                    if output.shape != (len(batch["sample_id"]), manifest["num_classes"]):
                        raise ValueError(
                            f"the teacher gave logits of shape {output.shape} for a batch of "
                            f"{len(batch['sample_id'])}; the store holds "
                            f"{manifest['num_classes']} per sample"
                        )
                    handle.write(np.ascontiguousarray(output, dtype=_DTYPE).tobytes())
                    written += len(output)
                if written != stop - start:
                    raise RuntimeError(f"rows {start}-{stop - 1}: {written} logits were written")
                handle.flush()
                os.fsync(handle.fileno())  # on disk before the manifest says so
            manifest["rows_done"] = _merge([*manifest["rows_done"], [start, stop]])
            manifest["chunk_size"] = chunk_size
            _write_json(manifest_path, manifest)
            if on_chunk_done is not None:
                on_chunk_done(chunk_index)
            chunk_index += 1
    if _missing(manifest["rows_done"], len(ids)):  # cannot happen: every gap was filled above
        raise RuntimeError(f"rows of {logits_path} are still missing after the extraction")
    manifest["sha256"] = _sha256(logits_path)
    _write_json(manifest_path, manifest)
    return out


def _check_same_extraction(
    out: Path,
    manifest: dict[str, Any],
    ids: list[str],
    teacher_name: str,
    fingerprint: str,
    transform_name: str,
) -> None:
    """Refuse to resume (or re-run) a store of another extraction, naming what differs."""
    resume = "resume with the same ones, or extract into a new --out folder"
    if manifest["teacher"] != teacher_name:
        raise ValueError(
            f"{out} holds logits of the teacher {manifest['teacher']!r}, not {teacher_name!r}; "
            + resume
        )
    if manifest.get("teacher_sha256") != fingerprint:
        raise ValueError(
            f"{out} was started with other teacher weights (or architecture) under the same "
            f"name {teacher_name!r}; " + resume
        )
    if manifest["transform"] != transform_name:
        raise ValueError(
            f"{out} holds logits of images under the transform {manifest['transform']!r}, not "
            f"{transform_name!r}; " + resume
        )
    if manifest["count"] != len(ids) or _read_json(out / IDS_FILE) != ids:
        raise ValueError(
            f"{out} holds logits of another sample list (other data, split or root); " + resume
        )


def _check_finished(folder: Path, manifest: dict[str, Any], verify: bool = True) -> None:
    """A finished store proves that every row was written: its ranges cover all rows, and
    (``verify``) the logits still match their sha256."""
    gaps = _missing(manifest["rows_done"], manifest["count"])
    if gaps:
        shown = ", ".join(f"rows {start}-{stop - 1}" for start, stop in gaps[:3])
        raise ValueError(
            f"the teacher-logit store {folder} is marked finished but {shown} were never "
            "written; extract the logits again into a new --out folder"
        )
    logits_path = folder / LOGITS_FILE
    _data_offset(logits_path, manifest["count"], manifest["num_classes"])
    if verify and _sha256(logits_path) != manifest["sha256"]:
        raise ValueError(
            f"{logits_path} does not match its recorded sha256 (changed or damaged since it "
            "was written); extract the logits again into a new --out folder"
        )


class TeacherLogitStore:
    """Read side: ``store[ids]`` → float32 ``[len(ids), num_classes]``; opened lazily per
    process, so it pickles cheaply into DataLoader workers."""

    def __init__(self, path: str | os.PathLike[str], verify: bool = False) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST_FILE
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"no teacher-logit store at {self.path}: create one with "
                "`assembled-lightning extract-logits --teacher ... --data ... --out DIR`"
            )
        self.manifest = _read_manifest(self.path)
        if self.manifest["sha256"] is None:
            raise ValueError(
                f"the teacher-logit store {self.path} is incomplete (extraction was interrupted); "
                "run the same extract-logits command again to finish it"
            )
        _check_finished(self.path, self.manifest, verify)
        ids = _read_json(self.path / IDS_FILE)
        if (
            not isinstance(ids, list)
            or len(ids) != self.manifest["count"]
            or not all(isinstance(i, str) for i in ids)
            or len(set(ids)) != len(ids)
        ):
            raise ValueError(
                f"{self.path / IDS_FILE} must list {self.manifest['count']} distinct sample ids; "
                "the store is damaged: extract the logits again into a new --out folder"
            )
        self.row_of = {sample_id: row for row, sample_id in enumerate(ids)}
        self._logits: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    def __len__(self) -> int:
        return len(self.row_of)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self.row_of

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_logits": None}

    def missing(self, sample_ids: Sequence[str]) -> list[str]:
        return [sample_id for sample_id in sample_ids if sample_id not in self.row_of]

    def __getitem__(self, sample_id: str) -> torch.Tensor:
        if self._logits is None:
            self._logits = np.load(self.path / LOGITS_FILE, mmap_mode="r")
        try:
            row = self.row_of[sample_id]
        except KeyError:
            raise KeyError(f"sample {sample_id!r} has no teacher logits in {self.path}") from None
        return torch.from_numpy(np.array(self._logits[row]))
