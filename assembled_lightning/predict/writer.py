"""TopKPredictionWriter: the most probable classes of every predicted image, with their names and
probabilities, in one CSV or JSON file.

Each process writes the rows of its share of the images to its own part file next to the output
as batches come; at the end, process 0 merges the parts into the output in the data set's order,
one row per sample id (a sampler that pads its shares repeats images: the repeats are dropped),
and deletes them. Under several machines the output folder must therefore be one that every
process sees (as for checkpoints).
"""

from __future__ import annotations

import csv
import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from ..weights.categories import read_categories
from .names import output_names

FORMATS = ("csv", "json")
DEFAULT_TOP_K = 5


def output_format(output: Path, requested: str | None) -> str:
    """``requested`` (checked), else the format the suffix of ``output`` names."""
    name = requested if requested is not None else output.suffix.lower().removeprefix(".")
    if name in FORMATS:
        return name
    if requested is None:
        raise ValueError(
            f"cannot tell the format of {output} from its suffix: name the file .csv or .json, "
            f"or pass format: one of {', '.join(FORMATS)}"
        )
    close = difflib.get_close_matches(name.lower(), FORMATS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown prediction format {name!r}: {hint}use one of {', '.join(FORMATS)}")


class TopKPredictionWriter(BasePredictionWriter):
    """Write the ``top_k`` classes of every predicted image (``sample_id``, class index, name,
    probability, most probable first) to ``output``, merged over every process.

    It reads what ``ClassificationTask.predict_step`` returns (``sample_id`` and
    ``probabilities``). CSV: one row per image, columns ``sample_id``, then ``top{i}_class``,
    ``top{i}_name``, ``top{i}_probability`` for i = 1 … k. JSON: a list of
    ``{"sample_id": ..., "top_k": [{"class", "name", "probability"}, ...]}``.

    Args:
        output: File to write; its folder is created. An existing file is an error unless
            ``overwrite``.
        format: ``csv`` or ``json``; None: the suffix of ``output`` (``.csv`` / ``.json``).
        top_k: Classes per image; None: 5, or every class of a smaller head. More than the
            model's classes is an error.
        categories: Class names, one per model output in order: a list, or a text file with one
            name per line. None: the DataModule's ``classes``, else the names the task's
            checkpoint kept (the classes it was trained on), else those of its weights' meta
            (ImageNet's for converted weights), else the class indices.
        overwrite: Replace an existing ``output`` instead of stopping before predicting.
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        format: str | None = None,
        top_k: int | None = None,
        categories: Sequence[str] | str | None = None,
        overwrite: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.format = output_format(self.output, format)
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 (classes per image), got {top_k}")
        self.top_k = top_k
        self.categories = None if categories is None else read_categories(categories)
        self.overwrite = overwrite
        self._part: TextIO | None = None
        self._names: list[str] | None = None

    def part_path(self, rank: int) -> Path:
        """The file where process ``rank`` writes its rows (hidden, next to the output)."""
        return self.output.with_name(f".{self.output.name}.rank{rank}.jsonl")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse an existing output before any image is predicted; open this process's part."""
        if stage != "predict":
            return
        if self.output.exists() and not self.overwrite:
            raise FileExistsError(
                f"{self.output} exists: predictions are never written over a file unasked; pass "
                "overwrite: true (--trainer.callbacks.overwrite=true) or another output"
            )
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._names = None
        self._part = self.part_path(trainer.global_rank).open("w", encoding="utf-8")

    def _top_k(self, num_outputs: int) -> int:
        if self.top_k is None:
            return min(DEFAULT_TOP_K, num_outputs)
        if self.top_k > num_outputs:
            raise ValueError(
                f"top_k={self.top_k} but the model has only {num_outputs} classes: pass "
                f"top_k <= {num_outputs}"
            )
        return self.top_k

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Append this batch's rows (with their index in the data set) to the part file."""
        if dataloader_idx:
            raise ValueError(
                "TopKPredictionWriter writes the predictions of one predict loader; this run has "
                "several: predict each data set in its own run"
            )
        ids, probabilities = _unpack(prediction)
        if not ids:  # every image of the batch was bad and skipped
            return
        if self._part is None:
            raise RuntimeError("TopKPredictionWriter was not set up for predict by the Trainer")
        if self._names is None:
            self._names = output_names(
                probabilities.shape[1],
                self.categories,
                getattr(trainer, "datamodule", None),
                pl_module,
            )
        values, classes = probabilities.detach().float().topk(self._top_k(len(self._names)), 1)
        indices = _dataset_indices(trainer, ids, batch_indices)
        for sample_id, index, row_classes, row_values in zip(
            ids, indices, classes.tolist(), values.tolist(), strict=True
        ):
            row = {
                "index": index,
                "sample_id": sample_id,
                "top_k": [
                    {"class": c, "name": self._names[c], "probability": p}
                    for c, p in zip(row_classes, row_values, strict=True)
                ],
            }
            self._part.write(json.dumps(row) + "\n")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close every part; process 0 merges them into the output once all are written."""
        self._close_part()
        trainer.strategy.barrier("TopKPredictionWriter parts written")
        if trainer.is_global_zero:
            parts = [self.part_path(rank) for rank in range(trainer.world_size)]
            self._write(merge_parts(parts))
            for part in parts:
                part.unlink()
        trainer.strategy.barrier("TopKPredictionWriter output written")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Close this process's part also when predicting failed (the part stays behind)."""
        self._close_part()

    def _close_part(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` to a temporary file, then move it onto the output in one step."""
        if self.output.exists() and not self.overwrite:
            raise FileExistsError(f"{self.output} appeared while predicting; it is kept as is")
        partial = self.output.with_name(f"{self.output.name}.partial")
        with partial.open("w", encoding="utf-8", newline="") as handle:
            if self.format == "json":  # a list, one image per line
                records = [
                    json.dumps({"sample_id": r["sample_id"], "top_k": r["top_k"]}) for r in rows
                ]
                handle.write("[\n" + ",\n".join(records) + "\n]\n")
            else:
                _write_csv(handle, rows, len(rows[0]["top_k"]) if rows else self.top_k or 0)
        os.replace(partial, self.output)


def _unpack(prediction: Any) -> tuple[list[str], torch.Tensor]:
    if not isinstance(prediction, dict) or not {"sample_id", "probabilities"} <= set(prediction):
        raise TypeError(
            "TopKPredictionWriter needs predict_step to return a dict with 'sample_id' and "
            f"'probabilities' (as ClassificationTask's does), got {type(prediction).__name__}"
        )
    return list(prediction["sample_id"]), prediction["probabilities"]


def _dataset_indices(
    trainer: L.Trainer, ids: list[str], batch_indices: Sequence[int] | None
) -> list[int | None]:
    """Each sample's index in the predict data set, which orders the merged output. The batch's
    indices say it, unless bad images were dropped from the batch: then the data set's samples
    (the package's ``ImageDataset``) tell which indices remain; None where nothing tells."""
    batch_indices = list(batch_indices or [])
    if len(batch_indices) == len(ids):
        return list(batch_indices)
    samples = getattr(getattr(trainer.predict_dataloaders, "dataset", None), "samples", None)
    if samples is None:
        return [None] * len(ids)
    by_id = {samples[index].sample_id: index for index in batch_indices}
    return [by_id.get(sample_id) for sample_id in ids]


def merge_parts(parts: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of every part, one per sample id, in data set order (rows of unknown index
    after, in the order of the parts)."""
    rows: list[dict[str, Any]] = []
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(
                f"{part} (the predictions of one process) is missing: under several machines "
                "the output must be in a folder that every process sees"
            )
        with part.open(encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle]
    rows.sort(key=lambda row: (row["index"] is None, row["index"] or 0))  # stable
    seen: set[str] = set()
    merged = []
    for row in rows:
        if row["sample_id"] not in seen:
            seen.add(row["sample_id"])
            merged.append(row)
    return merged


def _write_csv(handle: TextIO, rows: list[dict[str, Any]], top_k: int) -> None:
    columns = ["sample_id"]
    for rank in range(1, top_k + 1):
        columns += [f"top{rank}_class", f"top{rank}_name", f"top{rank}_probability"]
    writer = csv.writer(handle)
    writer.writerow(columns)
    for row in rows:
        cells = [row["sample_id"]]
        for entry in row["top_k"]:
            cells += [entry["class"], entry["name"], entry["probability"]]
        writer.writerow(cells)
