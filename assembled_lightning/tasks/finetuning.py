"""Fine-tuning callbacks: a linear probe, staged unfreezing and layer-wise LR decay, for every
task built on ``BaseTask``.

Unlike Lightning's ``BackboneFinetuning`` nothing is added to the optimizer mid-run and no
``requires_grad`` changes: every parameter is in the optimizer and in DDP from step 0, in one
SGD group per stage × weight decay (``Backbone.parameter_stages``: ``stem``, ``layer1`` ..
``layer4`` or MobileNet's ``stage1`` .. ``stage4``, then ``head``, which also holds every
parameter outside the backbone). A callback only gives each stage an LR multiplier, a function
of the epoch alone, which the task multiplies into its warm-up + cosine schedule; several
callbacks multiply. A stage whose multiplier is 0 is *frozen*: SGD moves no weight at LR 0,
its BatchNorm layers are kept in eval mode so their running statistics stay put, and so are its
DropBlock layers, so that a frozen feature extractor is not perturbed (those of the training
stages in train mode: a schedule decides every mode). Its gradients, which DDP still computes,
are dropped before each optimizer step, so gradient clipping measures the training stages alone
and SGD gathers no momentum for it; any momentum buffer it holds is cleared at the first step of
the epoch it unfreezes at, so it starts as from scratch. With no state of their own, a resumed
run continues exactly.

From the CLI or a YAML recipe (``class_path`` form)::

    trainer:
      callbacks:
        - class_path: assembled_lightning.tasks.StagedUnfreeze
          init_args:
            unfreeze_at_epochs: [2, 4]  # layer4 from epoch 2, layer3 from 4; the rest stays
        - class_path: assembled_lightning.tasks.LayerwiseLRDecay
          init_args:
            decay: 0.65

or ``--trainer.callbacks+=assembled_lightning.tasks.FreezeBackbone``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch

from ..models.base import HEAD_STAGE
from .stages import StageLayout


class StageSchedule(L.Callback):
    """Base of the fine-tuning callbacks: an LR multiplier per stage and epoch, read by
    ``BaseTask`` at every optimizer step. Checks its stage names against the task's at setup."""

    def stage_scale(self, stage: str, depth: int, epoch: int) -> float:
        """The LR multiplier of ``stage`` (``depth`` stages below the head, 0 for the head) in
        ``epoch``; 0 freezes the stage."""
        raise NotImplementedError

    def check_stages(self, stages: Sequence[str]) -> None:
        """Raise ``ValueError`` if this schedule does not fit the task's stages (forward order,
        ``head`` last)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        stage_names = getattr(pl_module, "stage_names", None)
        if not callable(stage_names):
            raise TypeError(
                f"{type(self).__name__} works with the package's tasks (subclasses of "
                f"assembled_lightning.tasks.BaseTask), got {type(pl_module).__name__}"
            )
        self.check_stages(stage_names())


def _check_known(names: Sequence[str], stages: Sequence[str], what: str) -> None:
    unknown = [name for name in names if name not in stages]
    if unknown:
        raise ValueError(f"{what}: unknown stage(s) {unknown}; this model's stages are {stages}")


class FreezeBackbone(StageSchedule):
    """Linear probe: only ``train_stages`` train (by default the head), every other stage is
    frozen for the whole run (LR 0, BatchNorm statistics fixed).

    Args:
        train_stages: The stages that train, e.g. ``[head]`` or ``[layer4, head]``; names from
            the model's ``parameter_stages()``.
    """

    def __init__(self, train_stages: Sequence[str] = (HEAD_STAGE,)) -> None:
        if isinstance(train_stages, str) or not train_stages:
            raise ValueError(
                f"train_stages must be a non-empty list of stage names, got {train_stages!r}; "
                f"e.g. [{HEAD_STAGE!r}]"
            )
        self.train_stages = tuple(train_stages)

    def check_stages(self, stages: Sequence[str]) -> None:
        _check_known(self.train_stages, stages, "FreezeBackbone train_stages")

    def stage_scale(self, stage: str, depth: int, epoch: int) -> float:
        return 1.0 if stage in self.train_stages else 0.0


class StagedUnfreeze(StageSchedule):
    """Unfreeze the backbone from the head downward on an epoch schedule: the head trains from
    the start, the stage just below it from ``unfreeze_at_epochs[0]``, the next one down from
    ``unfreeze_at_epochs[1]``, ...; stages the schedule does not reach stay frozen.

    Args:
        unfreeze_at_epochs: Non-decreasing epochs (counted from 0), at most one per backbone
            stage; e.g. ``[2, 4]``: a ResNet's ``layer4`` trains from epoch 2, ``layer3`` from
            epoch 4, ``stem`` .. ``layer2`` never.
    """

    def __init__(self, unfreeze_at_epochs: Sequence[int]) -> None:
        epochs = list(unfreeze_at_epochs)
        if not epochs:
            raise ValueError(
                "unfreeze_at_epochs must name at least one epoch; for a head-only run use "
                "FreezeBackbone"
            )
        for epoch in epochs:
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(
                    f"unfreeze_at_epochs must hold epochs >= 0 (integers), got {epoch!r} in "
                    f"{epochs}"
                )
        if epochs != sorted(epochs):
            raise ValueError(
                f"unfreeze_at_epochs must not decrease (stages unfreeze from the head "
                f"downward), got {epochs}"
            )
        self.unfreeze_at_epochs = epochs

    def check_stages(self, stages: Sequence[str]) -> None:
        backbone_stages = len(stages) - 1
        if len(self.unfreeze_at_epochs) > backbone_stages:
            raise ValueError(
                f"unfreeze_at_epochs has {len(self.unfreeze_at_epochs)} epochs but the model has "
                f"{backbone_stages} stages below the head ({list(stages[:-1])}); give at most "
                f"{backbone_stages}"
            )

    def stage_scale(self, stage: str, depth: int, epoch: int) -> float:
        if depth == 0:
            return 1.0
        if depth > len(self.unfreeze_at_epochs):
            return 0.0
        return 1.0 if epoch >= self.unfreeze_at_epochs[depth - 1] else 0.0


class LayerwiseLRDecay(StageSchedule):
    """Layer-wise LR decay: each stage's LR is multiplied by ``decay ** depth``, depth counted
    from the head (0) down to the stem, so early, generic layers move least.

    Args:
        decay: Multiplier per stage, in (0, 1]; e.g. 0.65 (a common choice for fine-tuning); 1
            changes nothing.
    """

    def __init__(self, decay: float = 0.65) -> None:
        if not (isinstance(decay, (int, float)) and math.isfinite(decay) and 0 < decay <= 1):
            raise ValueError(f"decay must be in (0, 1], got {decay!r}; e.g. 0.65")
        self.decay = float(decay)

    def stage_scale(self, stage: str, depth: int, epoch: int) -> float:
        return self.decay**depth


def combined_scale(schedules: Sequence[StageSchedule], stage: str, depth: int, epoch: int) -> float:
    """The product of every schedule's multiplier for ``stage`` in ``epoch`` (1 with none)."""
    return math.prod(schedule.stage_scale(stage, depth, epoch) for schedule in schedules)


def stage_schedules(callbacks: Any) -> list[StageSchedule]:
    """The fine-tuning callbacks among a trainer's ``callbacks`` (None or absent: none)."""
    return [callback for callback in callbacks or () if isinstance(callback, StageSchedule)]


def refresh_lrs(scheduler: Any) -> None:
    """Set every group's LR to the LambdaLR's factor evaluated now (at an epoch start, when the
    factor of the same step changed with the epoch)."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        raise TypeError(
            f"the fine-tuning callbacks scale BaseTask's LambdaLR, got {type(scheduler).__name__}"
            "; a task that configures its own scheduler cannot use them"
        )
    lrs = [
        base * factor(scheduler.last_epoch)
        for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)
    ]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs


def hold_frozen_stages(
    layout: StageLayout,
    optimizer: torch.optim.Optimizer,
    scale: Callable[[str, int], float],
    epoch: int,
    first_batch: bool,
) -> None:
    """Before a training step: the BatchNorm and DropBlock layers of frozen stages
    (``scale(stage, epoch)`` 0) in eval mode, those of the others in train mode, set at every
    step from the schedule alone (Lightning restores the modes it found after validation, and a
    resumed run starts in train mode). A stage that unfreezes with this epoch starts with clear
    momentum buffers (a checkpoint may hold some gathered while LR 0 kept the weights still); on
    the epoch's first batch only, so that a run resumed mid-epoch does not clear them again."""
    unfrozen = set()
    for stage in layout.names:
        frozen = scale(stage, epoch) == 0
        for module in (*layout.norms[stage], *layout.dropblocks[stage]):
            module.train(not frozen)
        if not frozen and first_batch and epoch > 0 and scale(stage, epoch - 1) == 0:
            unfrozen.add(stage)
    for group in optimizer.param_groups:
        if group.get("stage") in unfrozen:
            for parameter in group["params"]:
                optimizer.state[parameter].pop("momentum_buffer", None)


def drop_frozen_gradients(
    layout: StageLayout, scale: Callable[[str, int], float], epoch: int
) -> None:
    """Before an optimizer step (after DDP's reduction): no gradient on the parameters of
    frozen stages, so that gradient clipping, which follows, measures the training stages alone
    and SGD skips the frozen ones (at LR 0 it would not move them either)."""
    for stage in layout.names:
        if scale(stage, epoch) == 0:
            for _, parameter in layout.parameters[stage]:
                parameter.grad = None
