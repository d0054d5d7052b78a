"""RetrievalTask: the paper's image-retrieval training (arXiv 2001.06268, Table 9,
"Assemble-ResNet-IR-50": GeM pooling, a cosine-softmax or ArcFace loss, weight decay 5e-4) on
BaseTask, evaluated by zero-shot Recall@K (ORIGINAL.md §5.2). The backbone, SGD, LR and
DropBlock schedules, EMA and exact resume come from ``tasks.base.BaseTask``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from ..models import Backbone
from ..tasks.base import BaseTask, build_task_model
from ..weights.checkpoint import MODEL_CLASSES_KEY
from .heads import MARGIN_KINDS, MarginHead, MarginKind
from .metrics import CUB_KS, RecallAtK
from .model import EmbeddingNetwork
from .pooling import POOLING_KINDS, PoolingKind, check_choice, make_pooling


class RetrievalTask(BaseTask):
    """Train an embedding network with a margin head; validate and test by Recall@K.

    ``self.model`` is an :class:`EmbeddingNetwork` (the registered backbone without its
    classifier, pooling, an optional embedding layer, unit-length output); the margin head over
    the ``num_classes`` training classes only trains it. Validation and test rank every item of
    their split against all others (the item itself excluded) and log ``val/recall@K`` /
    ``test/recall@K``; batches carry each item's ``index`` in its split, as the retrieval
    DataModules give them. ``predict`` returns the embeddings with their sample ids.

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
        pooling: Global pooling of the last feature map: ``gem`` (the paper's retrieval
            models) or ``gap`` (average, the original's code).
        gem_p: GeM's exponent p (3; 1 is average pooling).
        learn_gem_p: Train GeM's p with the network instead of keeping it fixed.
        embedding_dim: Width of a 1×1 conv + BatchNorm embedding layer after the pooling;
            None or 0: the pooled backbone feature is the embedding.
        head: Margin head of training: ``norm_softmax`` (cosine softmax), ``cosface``
            (additive cosine margin) or ``arcface`` (additive angular margin; paper: 0.3 on
            SOP).
        scale: Logit scale s of the margin head (inverse softmax temperature).
        margin: Margin m of ``cosface`` (a cosine) or ``arcface`` (radians); 0 for
            ``norm_softmax``.
        recall_ks: The K of Recall@K, strictly increasing (CUB-200 and Cars-196: 1, 2, 4, 8;
            SOP: 1, 10, 100, 1000).
        dropblock_keep_prob: DropBlock keep probability at the first and the last step, linear
            in between (paper: 1.0 → 0.9); (1, 1) turns DropBlock off.
        channels_last: Run the model in channels-last memory format (faster on GPUs with AMP).
        ema_decay: Keep an exponential moving average of the weights with this decay (e.g.
            0.9998) and evaluate / predict with it; None: no EMA.
        reset_bn_statistics: Restart BatchNorm running statistics after loading ``weights``,
            as the original's fine-tune warm start (which restores trainable variables only).
    """

    model: EmbeddingNetwork

    def __init__(
        self,
        model: str = "assemble_resnet50",
        num_classes: int = 100,
        model_overrides: dict[str, Any] | None = None,
        weights: str | None = None,
        base_lr: float = 0.4,
        batch_denominator: int = 1024,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 5e-4,
        decay_bias: bool = True,
        warmup_epochs: float = 5.0,
        pooling: PoolingKind = "gem",
        gem_p: float = 3.0,
        learn_gem_p: bool = False,
        embedding_dim: int | None = None,
        head: MarginKind = "norm_softmax",
        scale: float = 16.0,
        margin: float = 0.0,
        recall_ks: tuple[int, ...] = CUB_KS,
        dropblock_keep_prob: tuple[float, float] = (1.0, 1.0),
        channels_last: bool = False,
        ema_decay: float | None = None,
        reset_bn_statistics: bool = False,
    ) -> None:
        check_choice("pooling", pooling, POOLING_KINDS)
        check_choice("head", head, MARGIN_KINDS)
        RecallAtK(recall_ks)  # a bad K list fails now, not after the first validation epoch
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

    def configure_models(self) -> None:
        """The registered backbone without classifier inside an :class:`EmbeddingNetwork`."""
        hp = self.hparams
        backbone = build_task_model(hp, 0)
        if not isinstance(backbone, Backbone):
            raise TypeError(f"{hp['model']} is no Backbone: retrieval needs its feature maps")
        pooling = make_pooling(hp["pooling"], hp["gem_p"], hp["learn_gem_p"])
        self.model = EmbeddingNetwork(backbone, pooling, hp["embedding_dim"])

    def configure_losses(self) -> None:
        """The margin head over the training classes (trained, not used to evaluate)."""
        hp = self.hparams
        self.head = MarginHead(
            self.model.embedding_dim, hp["num_classes"], hp["head"], hp["scale"], hp["margin"]
        )

    def configure_metrics(self) -> None:
        """Training loss; Recall@K on validation and test."""
        self.train_loss = MeanMetric()
        self.val_recall = RecallAtK(tuple(self.hparams["recall_ks"]))
        self.test_recall = RecallAtK(tuple(self.hparams["recall_ks"]))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        target = batch["target"]
        logits = self.head(self(batch["image"]), target)
        loss = F.cross_entropy(logits, target)
        self.train_loss(loss.detach())
        size = len(target)  # the batch is a dict: tell Lightning its size
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

    def _update(self, batch: dict[str, Any], metric: RecallAtK) -> None:
        if "index" not in batch:
            raise KeyError(
                "retrieval evaluation needs each item's 'index' in its split in the batch: use "
                "a retrieval DataModule (assembled_lightning.retrieval.datamodules)"
            )
        if len(batch["target"]):  # every file of the batch may have been bad and dropped
            metric.update(self(batch["image"]), batch["target"], batch["index"])

    def _log_recall(self, metric: RecallAtK, prefix: str) -> None:
        """Rank the whole split (every rank's items, gathered by the metric) and log it; the
        values are the same on every rank, so ``sync_dist``'s mean leaves them unchanged."""
        values = metric.compute()
        metric.reset()
        logged = {f"{prefix}/{name}": value for name, value in values.items()}
        self.log_dict(logged, prog_bar=True, sync_dist=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._update(batch, self.val_recall)

    def on_validation_epoch_end(self) -> None:
        self._log_recall(self.val_recall, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._update(batch, self.test_recall)

    def on_test_epoch_end(self) -> None:
        self._log_recall(self.test_recall, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record that the backbone has no classifier, so that the checkpoint serves as
        ``weights`` of another task (a classifier gets a new head, another retrieval run the
        backbone); ``num_classes`` is the margin head's."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[MODEL_CLASSES_KEY] = 0

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """``embeddings`` (unit length), ``sample_id`` and ``target`` of the batch's items."""
        return {
            "embeddings": self(batch["image"]) if len(batch["target"]) else torch.empty(0),
            "sample_id": batch["sample_id"],
            "target": batch["target"],
        }
