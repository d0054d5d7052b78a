"""ClassificationTask: the paper's training recipe (paper §3.2, ORIGINAL.md §3) on BaseTask:
label smoothing, mixup, distillation from stored teacher logits, top-1 / top-5 / ECE. The
model, SGD, LR and DropBlock schedules, EMA and exact resume come from ``base.BaseTask``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from ..robustness.metrics import ExpectedCalibrationError
from ..weights.categories import category_list
from .base import BaseTask
from .losses import (
    MixupType,
    distillation_loss,
    images_per_trained_image,
    mixup,
    smooth,
    soft_cross_entropy,
)


class ClassificationTask(BaseTask):
    """Train a registered model with the paper's regularisers; every knob is an argument.

    Args:
        model: Registered model name (``assembled_lightning.list_models()``), e.g.
            ``assemble_resnet50``.
        num_classes: Classifier outputs; linked from the DataModule's ``num_classes`` by the CLI.
        model_overrides: Extra ``ResNetConfig`` / ``MobileNetConfig`` fields, e.g.
            ``{base_width: 8, dropblock: true}``.
        weights: Initial weights: a registered weights name, ``DEFAULT``, a pretrained folder
            (``convert-tf`` / ``save_pretrained``) or a ``.ckpt`` / ``.pt`` file; a head of
            another size is replaced (fine-tuning). None: random init. A ``fit`` checkpoint
            brings its architecture (its model and model_overrides; the overrides given here
            apply over them) and its EMA weights where it kept them.
        base_lr: Learning rate at a global batch of ``batch_denominator`` images (paper: 0.4
            at 1024); scaled linearly with the real global batch.
        batch_denominator: Global batch at which ``base_lr`` applies (the original's 256 or
            1024).
        momentum: SGD momentum (original: 0.9).
        nesterov: Nesterov momentum (the original does not use it).
        weight_decay: L2 weight decay of every trainable variable except BatchNorm's.
        decay_bias: Decay biases too, as the original does for the classifier bias.
        warmup_epochs: Linear LR warm-up length in epochs, then cosine decay per step to 0
            (the original's ``int(warmup_epochs · N / batch)`` steps, also under ``max_steps``).
        label_smoothing: Label-smoothing ε (paper: 0.1); 0 turns it off. ε is spread over the
            ``num_classes`` outputs; the original's ImageNet head has 1001 (a background class),
            a difference of ε/1000 − ε/1001 ≈ 1e-7 per class (see ``losses.smooth``).
        mixup_alpha: Beta(α, α) of mixup (paper: 0.2); 0 turns mixup off.
        mixup_type: ``halves`` mixes the two halves of a double batch into one (the original's
            type 1; an epoch then makes two passes over the data, as the original repeats it
            twice); ``keep_batch`` mixes the batch with its reverse (type 2).
        kd_temperature: Softmax temperature of knowledge distillation (paper: 1).
        kd_weight: Weight of the distillation loss against stored ``teacher_logits`` in the
            batch (paper: 1 with KD); 0 turns KD off.
        dropblock_keep_prob: DropBlock keep probability at the first and the last step, linear
            in between (paper: 1.0 → 0.9); (1, 1) turns DropBlock off.
        channels_last: Run the model in channels-last memory format (faster on GPUs with AMP).
        ema_decay: Keep an exponential moving average of the weights with this decay (e.g.
            0.9998) and evaluate / predict with it; None: no EMA.
        reset_bn_statistics: Restart BatchNorm running statistics after loading ``weights``,
            as the original's fine-tune warm start (which restores trainable variables only).
    """

    def __init__(
        self,
        model: str = "assemble_resnet50",
        num_classes: int = 1000,
        model_overrides: dict[str, Any] | None = None,
        weights: str | None = None,
        base_lr: float = 0.4,
        batch_denominator: int = 1024,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 1e-4,
        decay_bias: bool = True,
        warmup_epochs: float = 5.0,
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.0,
        mixup_type: MixupType = "halves",
        kd_temperature: float = 1.0,
        kd_weight: float = 0.0,
        dropblock_keep_prob: tuple[float, float] = (1.0, 1.0),
        channels_last: bool = False,
        ema_decay: float | None = None,
        reset_bn_statistics: bool = False,
    ) -> None:
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if mixup_alpha < 0 or kd_weight < 0 or kd_temperature <= 0:
            raise ValueError("mixup_alpha and kd_weight must be >= 0 and kd_temperature > 0")
        super().__init__(
            model=model,
            num_classes=num_classes,
            model_overrides=model_overrides,
            weights=weights,
            base_lr=base_lr,
            batch_denominator=batch_denominator,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            decay_bias=decay_bias,
            warmup_epochs=warmup_epochs,
            dropblock_keep_prob=dropblock_keep_prob,
            channels_last=channels_last,
            ema_decay=ema_decay,
            reset_bn_statistics=reset_bn_statistics,
        )
        self.categories: list[str] | None = None
        """Class names of the outputs, kept in checkpoints (see ``on_save_checkpoint``)."""

    def configure_metrics(self) -> None:
        """Training loss; top-1, top-5 (from 5 classes) and ECE on validation and test."""
        num_classes = self.hparams["num_classes"]
        self.train_loss = MeanMetric()
        metrics: dict[str, Metric | MetricCollection] = {
            "top1": MulticlassAccuracy(num_classes, top_k=1)
        }
        if num_classes >= 5:
            metrics["top5"] = MulticlassAccuracy(num_classes, top_k=5)
        metrics["ece"] = ExpectedCalibrationError(num_bins=10)  # the original's right-closed bins
        self.val_metrics = MetricCollection(metrics, prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")

    @property
    def data_passes_per_epoch(self) -> int:
        """Passes over the training data in one epoch: 2 with mixup 'halves', which mixes two
        loaded images into one, as the original repeats its data twice; else 1. The package's
        DataModules read it to build their training stream."""
        return images_per_trained_image(self.hparams["mixup_alpha"], self.hparams["mixup_type"])

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Label-smoothed CE on (mixed) targets + kd_weight · distillation, as the original."""
        hp = self.hparams
        images, labels = batch["image"], batch["target"]
        one_hot = F.one_hot(labels, hp["num_classes"]).float()
        teacher = batch.get("teacher_logits")
        use_kd = hp["kd_weight"] > 0
        teacher_probs = None
        if use_kd:
            if teacher is None:
                raise KeyError(
                    "kd_weight > 0 needs teacher_logits in the batch: set the DataModule's "
                    "teacher_logits= to a store made by `assembled-lightning extract-logits`"
                )
            teacher_probs = F.softmax(teacher.float() / hp["kd_temperature"], -1)
        if hp["mixup_alpha"] > 0:
            if images.shape[0] % 2:  # a custom loader's odd batch: the last has no partner
                images, one_hot = images[:-1], one_hot[:-1]
                teacher_probs = teacher_probs[:-1] if teacher_probs is not None else None
            mixed = mixup(images, one_hot, teacher_probs, hp["mixup_alpha"], hp["mixup_type"])
            images, one_hot, teacher_probs = mixed.images, mixed.targets, mixed.teacher_probs
        logits = self(images)
        loss = soft_cross_entropy(logits, smooth(one_hot, hp["label_smoothing"]))
        if teacher_probs is not None:
            kd = distillation_loss(logits, teacher_probs, hp["kd_temperature"])
            self.log("train/kd_loss", kd)
            loss = loss + hp["kd_weight"] * kd
        return loss

    def _log_skipped(self, batch: dict[str, Any], prefix: str) -> None:
        """Bad files the DataModule skipped (``skip_bad_images``), summed over the epoch and
        over ranks: each batch counts those its loader worker met."""
        if "num_skipped" in batch:
            skipped = float(batch["num_skipped"])
            self.log(
                f"{prefix}/skipped_images",
                skipped,
                reduce_fx="sum",
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                batch_size=1,
            )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._log_skipped(batch, "train")
        loss = self.training_loss(batch)
        self.train_loss(loss.detach())
        size = len(batch["target"])  # the batch is a dict: tell Lightning its size
        self.log(
            "train/loss",
            self.train_loss,
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=size,
        )
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        return loss

    def _evaluate(self, batch: dict[str, Any], metrics: MetricCollection, prefix: str) -> None:
        self._log_skipped(batch, prefix)
        if not len(batch["target"]):  # every file of the batch was bad and dropped
            return
        logits = self(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["target"])
        metrics.update(logits.float(), batch["target"])
        size = len(batch["target"])  # the batch is a dict: tell Lightning its size
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict(metrics, prog_bar=True, batch_size=size)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """``sample_id`` (list) and ``probabilities`` (softmax, ``[N, num_classes]``) of a batch,
        labelled or not; ``predict.TopKPredictionWriter`` writes them to a file."""
        if "sample_id" not in batch:
            raise KeyError(
                "predict batches need a 'sample_id' list to name their images: use the "
                "package's DataModules (e.g. UnlabelledImageFolderDataModule) or collate_samples"
            )
        ids = list(batch["sample_id"])
        if not ids:  # every file of the batch was bad and dropped
            empty = torch.empty(0, self.hparams["num_classes"], device=self.device)
            return {"sample_id": ids, "probabilities": empty}
        return {"sample_id": ids, "probabilities": self(batch["image"]).float().softmax(-1)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the class names (``categories``) with the weights, so that predictions from
        this checkpoint are named as the training data's classes: those of the DataModule
        trained on (its ``classes``), else the names this task was loaded with."""
        super().on_save_checkpoint(checkpoint)
        datamodule = getattr(self.trainer, "datamodule", None)
        classes = list(getattr(datamodule, "classes", None) or [])
        if len(classes) == self.hparams["num_classes"]:
            self.categories = classes
        if self.categories is not None:
            checkpoint["categories"] = list(self.categories)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the class names a checkpoint kept (``on_save_checkpoint``)."""
        super().on_load_checkpoint(checkpoint)
        names = checkpoint.get("categories")
        self.categories = None if names is None else category_list(names, "checkpoint")
