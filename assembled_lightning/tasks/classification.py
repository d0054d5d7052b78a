"""ClassificationTask: the paper's training recipe as a LightningModule (paper §3.2, ORIGINAL.md
§3): label smoothing, mixup, distillation from stored teacher logits, DropBlock keep-prob and
LR schedules per step, SGD with the original's weight-decay rule."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from ..models import get_model_entry
from ..robustness.metrics import ExpectedCalibrationError
from ..weights.pretrained import build_model
from .losses import (
    MixupType,
    distillation_loss,
    images_per_trained_image,
    mixup,
    smooth,
    soft_cross_entropy,
)
from .schedules import linear_keep_prob, warmup_cosine


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_bias: bool = True
) -> list[dict[str, Any]]:
    """Two SGD groups. As the original: every trainable variable except BatchNorm's is decayed,
    the classifier bias included (``decay_bias=False`` keeps all biases undecayed)."""
    norm_params = {
        id(p)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for p in m.parameters(recurse=False)
    }
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        skip = id(parameter) in norm_params or (not decay_bias and name.endswith(".bias"))
        (no_decay if skip else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


class ClassificationTask(L.LightningModule):
    """Train a registered model with the paper's regularisers; every knob is an argument.

    Args:
        model: Registered model name (``assembled_lightning.list_models()``), e.g.
            ``assemble_resnet50``.
        num_classes: Classifier outputs; linked from the DataModule's ``num_classes`` by the CLI.
        model_overrides: Extra ``ResNetConfig`` / ``MobileNetConfig`` fields, e.g.
            ``{base_width: 8, dropblock: true}``.
        weights: Initial weights: a registered weights name, ``DEFAULT``, a pretrained folder
            (``convert-tf`` / ``save_pretrained``) or a ``.ckpt`` / ``.pt`` file; a head of
            another size is replaced (fine-tuning). None: random init.
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
        super().__init__()
        self.save_hyperparameters()
        get_model_entry(model)  # an unknown name fails here, listing the known ones
        for name, value in (
            ("base_lr", base_lr),
            ("weight_decay", weight_decay),
            ("warmup_epochs", warmup_epochs),
        ):
            if not value >= 0:  # also NaN; SGD would take a negative decay per group silently
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if mixup_alpha < 0 or kd_weight < 0 or kd_temperature <= 0:
            raise ValueError("mixup_alpha and kd_weight must be >= 0 and kd_temperature > 0")
        for keep_prob in dropblock_keep_prob:
            if not 0 < keep_prob <= 1:
                raise ValueError(f"dropblock_keep_prob values must be in (0, 1], got {keep_prob}")
        self.model = build_model(
            model, weights=weights, num_classes=num_classes, **(model_overrides or {})
        )
        if reset_bn_statistics:  # the original's fine-tune warm start restores only trainables
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.reset_running_stats()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
        self.ema = (
            AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
            )
            if ema_decay is not None
            else None
        )
        if self.ema is not None:  # averaged, never trained: keep it out of autograd and DDP
            self.ema.requires_grad_(False)
        self._schedule: tuple[int, int] | None = None
        self.train_loss = MeanMetric()
        metrics: dict[str, Metric | MetricCollection] = {
            "top1": MulticlassAccuracy(num_classes, top_k=1)
        }
        if num_classes >= 5:
            metrics["top5"] = MulticlassAccuracy(num_classes, top_k=5)
        metrics["ece"] = ExpectedCalibrationError(num_bins=10)  # the original's right-closed bins
        self.val_metrics = MetricCollection(metrics, prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits; outside training the EMA weights answer when ``ema_decay`` is set."""
        if self.hparams["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.ema is not None and not self.training:
            return self.ema(images)
        return self.model(images)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    @property
    def data_passes_per_epoch(self) -> int:
        """Passes over the training data in one epoch: 2 with mixup 'halves', which mixes two
        loaded images into one, as the original repeats its data twice; else 1. The package's
        DataModules read it to build their training stream."""
        return images_per_trained_image(self.hparams["mixup_alpha"], self.hparams["mixup_type"])

    def setup(self, stage: str) -> None:
        """Give every rank its own random stream (mixup λ, DropBlock masks, augmentation in the
        main process): ``seed_everything`` seeds all processes alike, so each rank reseeds with
        seed + rank (Lightning's global seed, else torch's initial seed): distinct per rank,
        reproducible per run. A resumed run then restores the saved streams instead."""
        if stage == "fit":
            seed = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
            torch.manual_seed(seed + self.global_rank)

    def _gather_ranks(self, state: torch.Tensor) -> list[torch.Tensor]:
        """``state`` of every rank, in rank order (a collective: every rank calls it)."""
        if self.trainer.world_size == 1:
            return [state]
        strategy = self.trainer.strategy
        gathered = strategy.all_gather(state.to(strategy.root_device)).cpu()
        return [row.clone() for row in gathered]  # each its own storage, as set_rng_state needs

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep every rank's random streams (DropBlock masks, mixup λ, flips) so that a resumed
        run continues exactly as an uninterrupted one would. Lightning dumps a checkpoint on
        every rank and rank 0 writes it, so the states are gathered here."""
        device = self.trainer.strategy.root_device
        states: dict[str, Any] = {"torch": self._gather_ranks(torch.get_rng_state())}
        if device.type == "cuda":
            states["cuda"] = self._gather_ranks(torch.cuda.get_rng_state(device))
        checkpoint["rng_states"] = states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore this rank's random streams now, before any loader draws from them, and skip
        the sanity check (already passed before the interruption), whose loaders would draw
        too. Loading weights without a trainer leaves the random state alone."""
        if self._trainer is None:
            return
        self._trainer.num_sanity_val_steps = 0
        states = checkpoint.get("rng_states")
        if not states:
            return
        saved = states["torch"]
        saved = [saved] if isinstance(saved, torch.Tensor) else saved  # one-process format
        world_size, rank = self._trainer.world_size, self._trainer.global_rank
        if len(saved) != world_size:
            warnings.warn(
                f"the checkpoint holds the random streams of {len(saved)} process(es), this run "
                f"has {world_size}: each rank keeps its fresh seed + rank stream, so the run does "
                "not continue exactly",
                stacklevel=2,
            )
            return
        torch.set_rng_state(saved[rank].clone())
        device = self._trainer.strategy.root_device
        if states.get("cuda") and device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"][rank].clone(), device)

    def schedule_steps(self) -> tuple[int, int]:
        """(warm-up, total) optimizer steps of the LR and DropBlock schedules, as the original
        (master:functions/model_fns.py): ``int(warmup_epochs · N / batch)`` and
        ``int(max_epochs · N / batch)``, N training images, batch the global batch of trained
        images. Counted by the DataModule's ``optimizer_steps`` where it has one (the package's
        DataModules: the original's stream), else from Lightning's batches per epoch; a
        ``max_steps`` reached first ends the schedule there, and under ``max_epochs=-1`` the
        warm-up still counts epochs of data."""
        trainer = self.trainer
        counter = getattr(getattr(trainer, "datamodule", None), "optimizer_steps", None)

        def steps(epochs: float) -> int:
            count = counter(epochs) if callable(counter) else None
            if count is not None:
                return int(count)
            trainer.fit_loop.setup_data()
            batches = trainer.num_training_batches
            if math.isinf(batches):
                raise ValueError(
                    "the training loader has no length: epochs cannot be counted in steps; "
                    "set max_steps and warmup_epochs=0, or give the loader a length"
                )
            return int(epochs * math.ceil(batches / trainer.accumulate_grad_batches))

        total = steps(trainer.max_epochs) if trainer.max_epochs not in (None, -1) else None
        if trainer.max_steps != -1:
            total = trainer.max_steps if total is None else min(total, trainer.max_steps)
        if total is None:
            raise ValueError("the LR and DropBlock schedules need trainer max_epochs or max_steps")
        warmup = steps(self.hparams["warmup_epochs"]) if self.hparams["warmup_epochs"] else 0
        return warmup, total

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        start, end = self.hparams["dropblock_keep_prob"]
        if self._schedule is None:
            self._schedule = self.schedule_steps()
        keep_prob = linear_keep_prob(self.global_step, self._schedule[1], start, end)
        self.model.set_dropblock_keep_prob(keep_prob)  # type: ignore[operator]
        self.log("train/keep_prob", keep_prob)

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

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if not len(batch["target"]):  # every file of the batch was bad and dropped
            return torch.empty(0, self.hparams["num_classes"], device=self.device)
        return self(batch["image"]).softmax(-1)

    @property
    def learning_rate(self) -> float:
        """base_lr × global batch / batch_denominator (the original: 0.4 at batch 1024); the
        global batch counts mixed images, so 'halves' mixup halves the loaded batch."""
        datamodule = getattr(self.trainer, "datamodule", None)
        batch = getattr(datamodule, "batch_size", self.hparams["batch_denominator"])
        batch //= self.data_passes_per_epoch  # 'halves': 2× the batch loaded, mixed into one
        global_batch = batch * self.trainer.world_size * self.trainer.accumulate_grad_batches
        return self.hparams["base_lr"] * global_batch / self.hparams["batch_denominator"]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.SGD(
            parameter_groups(self.model, hp["weight_decay"], hp["decay_bias"]),
            lr=self.learning_rate,
            momentum=hp["momentum"],
            nesterov=hp["nesterov"],
        )
        warmup, total = self._schedule = self.schedule_steps()
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
