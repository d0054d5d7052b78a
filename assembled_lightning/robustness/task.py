"""RobustnessTask: score a trained classifier on ImageNet-C (mCE), ImageNet-P (mFR) or any data
set corrupted on the fly (the paper's un-normalised "Food-101 mCE"), through LightningCLI's
``test``: ``assembled-lightning test --config imagenet_c --model.init_args.weights ...``.

Why a task under ``test`` rather than a separate command: devices, DDP, precision, loggers and
the progress bar come from Lightning's Trainer, the data are ordinary DataModules (also usable
from Python), and the recipes are YAML files like every other run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import nn

from ..tasks.base import build_task_model
from .corruptions import CORRUPTIONS
from .metrics import (
    CLEAN,
    CorruptionError,
    CorruptionErrors,
    ExpectedCalibrationError,
    FlipProbability,
    FlipRates,
)
from .report import CorruptionRow, RobustnessReport, format_table, write_report

Baseline = Literal["alexnet", "none"]


def output_count(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "num_classes"):
        raise TypeError(f"{type(model).__name__} is not one of the package's classifiers")
    return int(config.num_classes)


class RobustnessTask(L.LightningModule):
    """Evaluate a classifier per corruption × severity (and per ImageNet-P perturbation).

    Reads batches of :class:`~.datamodules.ImageNetCDataModule`,
    :class:`~.datamodules.CorruptedDataModule` or :class:`~.imagenet_p.ImageNetPDataModule`.
    At the end of ``test`` it logs the summary (``test/mce_15``, ``test/mce_19``,
    ``test/relative_mce_15``, ``test/unnormalized_mce``, ``test/clean_error``, ``test/mfr``,
    fractions), prints the table and writes ``robustness.csv``, ``robustness.json`` and
    ``robustness.png`` into ``output_dir``.

    An evaluation task, so not a ``BaseTask`` (it has no optimizer, LR or DropBlock schedule, EMA
    or training state): it builds its model with the same ``tasks.build_task_model``.

    Args:
        model: Registered model name (``assembled_lightning.list_models()``); ignored when
            ``weights`` is a ``fit`` checkpoint, which names its own architecture.
        weights: The weights to score: a registered weights name, ``DEFAULT``, a pretrained
            folder, or a ``fit`` checkpoint (``.ckpt``; its EMA weights where it kept them).
            None: random init (for smoke tests).
        num_classes: Classes of the data (linked from the DataModule by the CLI). A model with
            one output more (the original's 1001-way head with a background class) has its
            first logit dropped.
        model_overrides: Extra model config fields (e.g. ``{base_width: 8}``); with a ``fit``
            checkpoint they apply over its own.
        baseline: ``alexnet`` normalises CE by AlexNet's ImageNet-C errors (mCE, ImageNet only);
            ``none`` reports only errors and their un-normalised mean (other data sets, e.g.
            the paper's Food-101 mCE).
        output_dir: Folder of the CSV, JSON and PNG; None: ``<log dir>/robustness``.
        channels_last: Run the model in channels-last memory format.
    """

    def __init__(
        self,
        model: str = "assemble_resnet50",
        weights: str | None = None,
        num_classes: int = 1000,
        model_overrides: dict[str, Any] | None = None,
        baseline: Baseline = "alexnet",
        output_dir: str | os.PathLike[str] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if baseline not in ("alexnet", "none"):
            raise ValueError(f"baseline must be 'alexnet' or 'none', got {baseline!r}")
        # weights keep their own head (checked against the data below); else the data's classes
        self.model = build_task_model(self.hparams, num_classes if weights is None else None)
        outputs = output_count(self.model)
        if outputs not in (num_classes, num_classes + 1):
            raise ValueError(
                f"the model has {outputs} outputs but the data {num_classes} classes: score a "
                "model trained on these classes (a 1001-way head with a background class is "
                "fine for 1000 classes)"
            )
        self.label_offset = outputs - num_classes
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.corruption_error = CorruptionError()
        self.flip_probability = FlipProbability()
        self.clean_calibration = ExpectedCalibrationError()
        self.output_dir = Path(output_dir) if output_dir is not None else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits over the data's classes (a background logit dropped)."""
        if self.hparams["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)[:, self.label_offset :]

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if "frames" in batch:  # ImageNet-P: one video, its frames as one batch
            frames = batch["frames"]
            scores = self(frames.flatten(0, 1)).float().unflatten(0, frames.shape[:2])
            self.flip_probability.update(
                scores, batch["perturbation"][0], int(batch["difficulty"][0])
            )
            return
        if not len(batch["target"]):  # every file of the batch was bad and dropped
            return
        logits = self(batch["image"]).float()
        self.corruption_error.update(
            logits, batch["target"], batch["corruption"], batch["severity"]
        )
        clean = torch.tensor([c == CLEAN for c in batch["corruption"]], device=logits.device)
        if bool(clean.any()):
            self.clean_calibration.update(logits[clean], batch["target"][clean])

    def on_test_epoch_end(self) -> None:
        summary: dict[str, float | None] = {}
        rows: list[CorruptionRow] = []
        notes: list[str] = []
        # what any rank scored (a collective: a rank may have seen nothing of one kind)
        local = torch.stack(
            [
                self.corruption_error.total.sum() + self.corruption_error.clean_total,
                self.clean_calibration.count.sum(),
                self.flip_probability.comparisons.sum(),
            ]
        )
        images, clean, frame_pairs = self.trainer.strategy.reduce(local, reduce_op="sum").tolist()
        if images:
            rows, summary, notes = self._corruption_summary(self.corruption_error.compute())
            if clean:
                summary["ece_clean"] = float(self.clean_calibration.compute())
        if frame_pairs:
            summary.update(self._flip_summary(self.flip_probability.compute(), notes))
        self.log_dict(
            {f"test/{k}": v for k, v in summary.items() if v is not None}, rank_zero_only=True
        )
        if self.trainer.is_global_zero:
            report = RobustnessReport(rows, summary, notes)
            print(format_table(report))
            folder = (
                self.output_dir
                or Path(self.trainer.log_dir or self.trainer.default_root_dir) / "robustness"
            )
            if rows:
                paths = write_report(report, folder, f"{self.hparams['model']}: CE per corruption")
                print(f"wrote {', '.join(str(p) for p in paths)}")
        for metric in (self.corruption_error, self.flip_probability, self.clean_calibration):
            metric.reset()

    def _corruption_summary(
        self, errors: CorruptionErrors
    ) -> tuple[list[CorruptionRow], dict[str, float | None], list[str]]:
        normalized = self.hparams["baseline"] == "alexnet"
        evaluated = [c for c in CORRUPTIONS if c not in errors.missing]
        notes = []
        if errors.incomplete:
            notes.append(f"not all 5 severities (no CE): {', '.join(errors.incomplete)}")
        rows = []
        for c in evaluated:
            levels = {s: e for (name, s), e in errors.errors.items() if name == c}
            complete = c not in errors.incomplete
            rows.append(
                CorruptionRow(
                    c,
                    levels,
                    sum(levels.values()) / len(levels),
                    errors.corruption_error(c) if normalized and complete else None,
                    errors.relative_corruption_error(c)
                    if normalized and complete and errors.clean_error is not None
                    else None,
                )
            )
        flat = errors.as_dict()
        summary: dict[str, float | None] = {"clean_error": errors.clean_error}
        keys = ("mce_15", "mce_19", "relative_mce_15", "relative_mce_19") if normalized else ()
        for key in (*keys, "unnormalized_mce"):
            summary[key] = flat.get(key)
        if normalized and summary["mce_15"] is None and evaluated:
            notes.append("mCE needs all 15 benchmark corruptions at all 5 severities")
        return rows, summary, notes

    @staticmethod
    def _flip_summary(rates: FlipRates, notes: list[str]) -> dict[str, float | None]:
        flat = rates.as_dict()
        summary: dict[str, float | None] = {
            k: v for k, v in flat.items() if k.startswith(("fp/", "fr/"))
        }
        summary["mfr"] = flat.get("mfr")
        if rates.missing:
            notes.append(
                f"mFR needs all 10 test perturbations; missing: {', '.join(rates.missing)}"
            )
        return summary
