"""BaseTask: what every training task shares, in torchgeo's shape (``__init__`` saves the
hyper-parameters and calls ``configure_models`` / ``configure_losses`` / ``configure_metrics``):
the model from a registry name, weights or a ``fit`` checkpoint; the original's SGD with its
weight-decay rule, LR scaled by the global batch, warm-up + cosine per step (ORIGINAL.md §3);
the DropBlock keep-prob schedule (paper §3.2); EMA; channels-last; exact resume; SGD groups per
model stage, scaled by the fine-tuning callbacks (``finetuning``)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, MutableMapping
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..models import Backbone, get_model_entry
from ..weights.checkpoint import model_architecture
from ..weights.pretrained import build_model
from .finetuning import (
    StageSchedule,
    combined_scale,
    drop_frozen_gradients,
    hold_frozen_stages,
    refresh_lrs,
    stage_schedules,
)
from .schedules import linear_keep_prob, warmup_cosine
from .stages import StageLayout, stage_layout, stage_parameter_groups


def build_task_model(hparams: MutableMapping[str, Any], num_classes: int | None) -> nn.Module:
    """The model of a task's ``model``, ``weights`` and ``model_overrides`` hyper-parameters,
    for every task (training or evaluation). A ``fit`` checkpoint as ``weights`` brings its own
    architecture, the overrides applied over it (``weights.checkpoint.model_architecture``);
    it is written back into ``hparams`` so that this run's checkpoints name the architecture
    they hold. ``num_classes`` None keeps the weights' own head."""
    name, overrides = model_architecture(
        hparams["model"], hparams["weights"], hparams["model_overrides"]
    )
    if name != hparams["model"] or overrides != (hparams["model_overrides"] or {}):
        hparams.update(model=name, model_overrides=overrides)
    get_model_entry(name)  # an unknown name fails here, listing the known ones
    options: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    return build_model(name, weights=hparams["weights"], **options, **overrides)


class BaseTask(L.LightningModule):
    """A training task: a subclass adds its losses, metrics and steps.

    ``__init__`` saves every constructor argument as a hyper-parameter (a subclass's too) and
    calls three hooks: ``configure_models`` (default: the registered model, see ``weights``),
    ``configure_losses`` and ``configure_metrics`` (default: nothing). ``self.model`` is then
    optimised by SGD with the original's weight-decay groups, its LR scaled by the global batch
    and scheduled per step; a subclass whose steps mix loaded images together overrides
    ``data_passes_per_epoch``. The groups are split per model stage (``stage_names``) so that
    the fine-tuning callbacks (``FreezeBackbone``, ``StagedUnfreeze``, ``LayerwiseLRDecay``)
    can scale them; without one every stage has the same LR (full fine-tuning). A subclass
    that overrides ``on_train_epoch_start`` or ``on_train_batch_start`` calls ``super()``.

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
        dropblock_keep_prob: DropBlock keep probability at the first and the last step, linear
            in between (paper: 1.0 → 0.9); (1, 1) turns DropBlock off.
        channels_last: Run the model in channels-last memory format (faster on GPUs with AMP).
        ema_decay: Keep an exponential moving average of the weights with this decay (e.g.
            0.9998) and evaluate / predict with it; None: no EMA.
        reset_bn_statistics: Restart BatchNorm running statistics after loading ``weights``,
            as the original's fine-tune warm start (which restores trainable variables only).
    """

    model: nn.Module

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
        dropblock_keep_prob: tuple[float, float] = (1.0, 1.0),
        channels_last: bool = False,
        ema_decay: float | None = None,
        reset_bn_statistics: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value in (
            ("base_lr", base_lr),
            ("weight_decay", weight_decay),
            ("warmup_epochs", warmup_epochs),
        ):
            if not value >= 0:  # also NaN; SGD would take a negative decay per group silently
                raise ValueError(f"{name} must be >= 0, got {value}")
        for keep_prob in dropblock_keep_prob:
            if not 0 < keep_prob <= 1:
                raise ValueError(f"dropblock_keep_prob values must be in (0, 1], got {keep_prob}")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
        self.configure_models()
        if reset_bn_statistics:  # the original's fine-tune warm start restores only trainables
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.reset_running_stats()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
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
        self._stage_layout: StageLayout | None = None
        self.configure_losses()
        self.configure_metrics()

    def configure_models(self) -> None:
        """Set ``self.model``; by default the registered model of the hyper-parameters."""
        self.model = build_task_model(self.hparams, self.hparams["num_classes"])

    def configure_losses(self) -> None:
        """Set up the losses (modules with state or weights); nothing by default."""

    def configure_metrics(self) -> None:
        """Set up the metrics; nothing by default."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's output; outside training the EMA weights answer when ``ema_decay`` is
        set."""
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
        """Passes over the training data in one epoch: 1 unless a task mixes several loaded
        images into one trained image. The package's DataModules read it to build their
        training stream; the LR's global batch counts trained images."""
        return 1

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
        """This step's DropBlock keep probability, on every backbone inside the model; the
        frozen stages held still (``_hold_frozen_stages``)."""
        start, end = self.hparams["dropblock_keep_prob"]
        if self._schedule is None:
            self._schedule = self.schedule_steps()
        keep_prob = linear_keep_prob(self.global_step, self._schedule[1], start, end)
        for module in self.model.modules():
            if isinstance(module, Backbone):
                module.set_dropblock_keep_prob(keep_prob)
        self.log("train/keep_prob", keep_prob)
        self._hold_frozen_stages(batch_idx)

    def on_train_epoch_start(self) -> None:
        """Re-evaluate the LR of every group for this epoch: Lightning stepped the scheduler
        after the last step of the previous epoch, still counting that epoch, so a stage
        unfrozen (or frozen) from this epoch on would start one step late."""
        if self._stage_schedules():
            configs = self.trainer.lr_scheduler_configs
            refresh_lrs(configs[0].scheduler if configs else None)

    def _hold_frozen_stages(self, batch_idx: int) -> None:
        if self._stage_schedules():
            hold_frozen_stages(
                self._layout(),
                self.trainer.optimizers[0],
                self.stage_scale,
                self.trainer.current_epoch,
                first_batch=batch_idx == 0,
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Frozen stages leave the step without gradients (``drop_frozen_gradients``): Lightning
        clips gradients after this hook, over the training stages only."""
        if self._stage_schedules():
            drop_frozen_gradients(self._layout(), self.stage_scale, self.trainer.current_epoch)

    def stage_names(self) -> list[str]:
        """The model's stages in forward order, ``head`` last (``Backbone.parameter_stages``;
        parameters outside the backbone belong to ``head``): the names the fine-tuning
        callbacks take."""
        return self._layout().names

    def stage_scale(self, stage: str, epoch: int | None = None) -> float:
        """The LR multiplier of ``stage`` in ``epoch`` (default: the current one) from the
        trainer's fine-tuning callbacks; 1 without any."""
        schedules = self._stage_schedules()
        if not schedules:
            return 1.0
        epoch = self.trainer.current_epoch if epoch is None else epoch
        return combined_scale(schedules, stage, self._layout().depth(stage), epoch)

    def _stage_schedules(self) -> list[StageSchedule]:
        return stage_schedules(getattr(self._trainer, "callbacks", None))

    def _layout(self) -> StageLayout:
        if self._stage_layout is None:
            skip = [self.ema] if self.ema is not None else []
            self._stage_layout = stage_layout(self, self.model, skip)
        return self._stage_layout

    def _lr_factor(self, stage: str, warmup: int, total: int) -> Callable[[int], float]:
        """One group's LambdaLR factor: warm-up + cosine × the stage's multiplier (a plain
        function, so that LambdaLR's state dict leaves it out)."""

        def factor(step: int) -> float:
            return warmup_cosine(step, warmup, total) * self.stage_scale(stage)

        return factor

    @property
    def learning_rate(self) -> float:
        """base_lr × global batch / batch_denominator (the original: 0.4 at batch 1024); the
        global batch counts trained images, so 'halves' mixup halves the loaded batch."""
        datamodule = getattr(self.trainer, "datamodule", None)
        batch = getattr(datamodule, "batch_size", self.hparams["batch_denominator"])
        batch //= self.data_passes_per_epoch  # 'halves': 2× the batch loaded, mixed into one
        global_batch = batch * self.trainer.world_size * self.trainer.accumulate_grad_batches
        return self.hparams["base_lr"] * global_batch / self.hparams["batch_denominator"]

    def configure_optimizers(self) -> Any:
        """SGD over two groups per stage (``stages.stage_parameter_groups``), every parameter
        in from step 0 so that DDP and resume see one fixed optimizer; one LambdaLR factor per
        group: warm-up + cosine per step × the stage's fine-tuning multiplier."""
        hp = self.hparams
        self._stage_layout = None  # the model as it is now
        optimizer = torch.optim.SGD(
            stage_parameter_groups(self._layout(), hp["weight_decay"], hp["decay_bias"]),
            lr=self.learning_rate,
            momentum=hp["momentum"],
            nesterov=hp["nesterov"],
        )
        warmup, total = self._schedule = self.schedule_steps()
        factors = [self._lr_factor(g["stage"], warmup, total) for g in optimizer.param_groups]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
