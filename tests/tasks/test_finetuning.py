"""The fine-tuning callbacks on real Lightning runs of a thin ResNet-18 on the synthetic shapes:
frozen stages bitwise still (weights and BatchNorm statistics) under nonzero gradients and weight
decay, staged unfreezing epoch by epoch with fresh momentum, layer-wise LR decay's effective LR
against a hand computation, the SGD groups against the parameter names, and bad values."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from stage_probes import STAGES, EpochSnapshots, changed_stages, snapshot, stage_of
from torch import nn

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.models import create_model
from assembled_lightning.models.layers import DropBlock2d
from assembled_lightning.tasks import (
    ClassificationTask,
    FreezeBackbone,
    LayerwiseLRDecay,
    StagedUnfreeze,
)

THIN = {"base_width": 8, "block_counts": [1, 1, 1, 1], "zero_gamma": False}  # all grads nonzero
IMAGES, BATCH = 24, 8  # 3 optimizer steps per epoch
BASE_LR, WEIGHT_DECAY, MOMENTUM = 0.2, 0.05, 0.9


def make_task(**options: Any) -> ClassificationTask:
    L.seed_everything(0)
    defaults: dict[str, Any] = {
        "base_lr": BASE_LR,
        "batch_denominator": BATCH,  # peak LR = base_lr
        "warmup_epochs": 0.0,
        "weight_decay": WEIGHT_DECAY,
        "momentum": MOMENTUM,
        "label_smoothing": 0.0,
        "model_overrides": THIN,
    }
    return ClassificationTask("resnet18", num_classes=3, **{**defaults, **options})


def fit(
    task: ClassificationTask, epochs: int, *callbacks: L.Callback, **trainer_options: Any
) -> L.Trainer:
    trainer = L.Trainer(
        **trainer_options,
        accelerator="cpu",
        max_epochs=epochs,
        limit_val_batches=1,  # validation in between: the modes it restores must not matter
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    data = SyntheticShapesDataModule(num_classes=3, train_size=IMAGES, val_size=8, batch_size=BATCH)
    trainer.fit(task, datamodule=data)
    return trainer


class StepRecorder(L.Callback):
    """Per optimizer step: epoch, every group's LR, and per stage one conv weight (value and
    gradient) before the step and its value after."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    @staticmethod
    def probes(pl_module: L.LightningModule) -> dict[str, nn.Parameter]:
        model = pl_module.model  # type: ignore[attr-defined]
        return {
            "stem": model.conv1.weight,
            **{f"layer{i}": getattr(model, f"layer{i}")[0].conv1.weight for i in range(1, 5)},
            "head": model.fc.weight,
        }

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        probes = self.probes(pl_module)
        self.steps.append(
            {
                "epoch": trainer.current_epoch,
                "lrs": {g["name"]: g["lr"] for g in optimizer.param_groups},
                "before": {s: p.detach().clone() for s, p in probes.items()},
                "grad": {s: p.grad.detach().clone() for s, p in probes.items()},
            }
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self.steps[-1]["after"] = {s: p.detach().clone() for s, p in self.probes(pl_module).items()}


def cosine(step: int, total: int, peak: float = BASE_LR) -> float:
    """The original's cosine decay without warm-up (ORIGINAL.md §3.1)."""
    return peak * 0.5 * (1 + math.cos(math.pi * step / total))


def test_freeze_backbone_keeps_the_backbone_bitwise_still() -> None:
    task = make_task()
    before = snapshot(task)
    steps = StepRecorder()
    fit(task, 2, FreezeBackbone(), steps)
    assert len(steps.steps) == 6
    for step in steps.steps:  # the frozen stages had real gradients at every step
        for stage in STAGES:
            assert step["grad"][stage].abs().sum() > 0, stage
    changes = changed_stages(before, snapshot(task))
    assert changes.pop("head") == {"weights": True, "stats": False}  # a Linear: no statistics
    for stage, change in changes.items():
        assert change == {"weights": False, "stats": False}, stage


class ClippedGradients(L.Callback):
    """Per optimizer step, the gradients it used, after Lightning's clipping (read by a step
    post-hook: they stay until the next step's zero_grad): the L2 norm of all gradients
    present, and which parameters (by name) have one."""

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.with_gradient: list[set[str]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names = {id(p): f"model.{n}" for n, p in pl_module.model.named_parameters()}  # type: ignore[union-attr]

        def record(optimizer: torch.optim.Optimizer, *args: Any) -> None:
            grads = {
                names[id(p)]: p.grad
                for group in optimizer.param_groups
                for p in group["params"]
                if p.grad is not None
            }
            self.norms.append(float(torch.cat([g.flatten() for g in grads.values()]).norm()))
            self.with_gradient.append(set(grads))

        trainer.optimizers[0].register_step_post_hook(record)


def test_gradient_clipping_measures_the_training_stages_only() -> None:
    """Clipped to norm 1e-3, the head's gradient has exactly that norm (far above it before):
    the frozen stages, whose gradients DDP still computes, neither shrink it nor keep theirs."""
    clip = 1e-3
    task = make_task()
    clipped = ClippedGradients()
    fit(task, 1, FreezeBackbone(), clipped, gradient_clip_val=clip)
    assert len(clipped.norms) == 3
    for norm, names in zip(clipped.norms, clipped.with_gradient, strict=True):
        assert names == {"model.fc.weight", "model.fc.bias"}
        assert norm == pytest.approx(clip, rel=1e-5)


def test_dropblock_is_idle_in_frozen_stages() -> None:
    """Training layer4 and the head only: layer3's DropBlock layers (active at keep 0.8) stay
    in eval mode, an identity, while layer4's drop."""
    task = make_task(model_overrides={**THIN, "dropblock": True}, dropblock_keep_prob=(0.8, 0.8))
    modes: list[dict[str, bool]] = []

    class DropBlockModes(L.Callback):
        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            modes.append(
                {
                    name: module.training
                    for name, module in pl_module.model.named_modules()
                    if isinstance(module, DropBlock2d) and module.active
                }
            )

    fit(task, 1, FreezeBackbone(train_stages=["layer4", "head"]), DropBlockModes())
    assert len(modes) == 3
    for step in modes:
        stages = {stage_of(name) for name in step}
        assert stages == {"layer3", "layer4"}  # the layers with a nonzero gamma scale
        for name, training in step.items():
            assert training == (stage_of(name) == "layer4"), name


def test_staged_unfreeze_trains_each_stage_from_its_epoch_with_fresh_momentum() -> None:
    task = make_task()
    epochs, steps = EpochSnapshots(), StepRecorder()
    fit(task, 3, StagedUnfreeze([1, 2]), epochs, steps)
    # from the head down: layer4 from epoch 1, layer3 from epoch 2, the rest never
    training = {0: {"head"}, 1: {"head", "layer4"}, 2: {"head", "layer4", "layer3"}}
    for epoch, stages in training.items():
        changes = changed_stages(epochs.states[epoch], epochs.states[epoch + 1])
        for stage in STAGES:
            moved = stage in stages
            expected = {"weights": moved, "stats": moved and stage != "head"}
            assert changes[stage] == expected, (epoch, stage)
    # The LR of every group at every step, by hand: cosine × 1 (training) or × 0 (frozen).
    for index, step in enumerate(steps.steps):
        for name, lr in step["lrs"].items():
            live = name.split(".")[0] in training[step["epoch"]]
            assert lr == pytest.approx(cosine(index, 9) if live else 0.0, rel=1e-12), (index, name)
    # The first step of an unfreeze epoch is SGD's first step from an empty momentum buffer,
    # p − lr · (g + wd · p), not one that adds the gradients gathered while frozen.
    for stage, epoch in (("layer4", 1), ("layer3", 2)):
        step = steps.steps[3 * epoch]
        p, g, lr = step["before"][stage], step["grad"][stage], cosine(3 * epoch, 9)
        torch.testing.assert_close(step["after"][stage], p - lr * (g + WEIGHT_DECAY * p))
        later = steps.steps[3 * epoch + 1]  # and momentum works again from there
        p, g = later["before"][stage], later["grad"][stage]
        buffer = MOMENTUM * (step["grad"][stage] + WEIGHT_DECAY * step["before"][stage])
        expected = p - cosine(3 * epoch + 1, 9) * (buffer + g + WEIGHT_DECAY * p)
        torch.testing.assert_close(later["after"][stage], expected)


def test_layerwise_lr_decay_gives_each_stage_its_effective_lr() -> None:
    """Plain SGD (no momentum, no weight decay) moves a weight by lr · g, so (p − p') / g is the
    LR the step really used: base LR × warm-up/cosine × decay^(stages from the head)."""
    task = make_task(momentum=0.0, weight_decay=0.0, warmup_epochs=1.0)  # 3 warm-up steps
    steps = StepRecorder()
    fit(task, 2, LayerwiseLRDecay(0.5), steps)
    schedule = [0.0, BASE_LR / 3, 2 * BASE_LR / 3, *(cosine(s, 3) for s in range(3))]
    assert len(steps.steps) == len(schedule) == 6
    for step, lr in zip(steps.steps, schedule, strict=True):
        for depth, stage in enumerate(reversed(STAGES)):
            expected = lr * 0.5**depth
            assert step["lrs"][f"{stage}.decay"] == pytest.approx(expected, rel=1e-12)
            assert step["lrs"][f"{stage}.no_decay"] == pytest.approx(expected, rel=1e-12)
            g = step["grad"][stage].double()
            moved = (step["before"][stage] - step["after"][stage]).double()
            effective = float((moved * g).sum() / (g * g).sum())  # least squares of moved = lr g
            assert effective == pytest.approx(expected, rel=1e-3, abs=1e-9), stage


def optimizer_of(task: ClassificationTask, callbacks: list[L.Callback]) -> torch.optim.Optimizer:
    """configure_optimizers on a stand-in trainer (1 epoch of 24 images)."""
    data = SyntheticShapesDataModule(num_classes=3, train_size=IMAGES, batch_size=BATCH)
    trainer = SimpleNamespace(
        world_size=1,
        global_rank=0,
        accumulate_grad_batches=1,
        current_epoch=0,
        max_epochs=1,
        max_steps=-1,
        datamodule=data,
        callbacks=callbacks,
        lightning_module=task,
        reload_dataloaders_every_n_epochs=0,
    )
    data.trainer = trainer  # type: ignore[assignment]
    task._trainer = trainer  # type: ignore[assignment]
    return task.configure_optimizers()["optimizer"]


@pytest.mark.parametrize("decay_bias", [True, False])
def test_groups_split_every_parameter_by_stage_and_weight_decay(decay_bias: bool) -> None:
    task = make_task(decay_bias=decay_bias, ema_decay=0.99)
    optimizer = optimizer_of(task, [])
    names = {id(p): n for n, p in task.named_parameters()}
    seen: list[str] = []
    for group in optimizer.param_groups:
        stage, kind = group["name"].split(".")
        assert group["stage"] == stage
        assert group["weight_decay"] == (WEIGHT_DECAY if kind == "decay" else 0.0)
        for parameter in group["params"]:
            name = names[id(parameter)]
            seen.append(name)
            assert stage_of(name) == stage, name
            norm = ".bn" in name or "downsample.1" in name or name.startswith("model.bn1")
            undecayed = norm or (not decay_bias and name.endswith(".bias"))
            assert kind == ("no_decay" if undecayed else "decay"), name
    trainable = sorted(n for n, p in task.named_parameters() if not n.startswith("ema."))
    assert sorted(seen) == trainable  # each exactly once, the EMA copy in none
    assert optimizer.param_groups[0]["name"] == "head.decay"  # what train/lr logs
    assert {p.requires_grad for p in task.model.parameters()} == {True}


class EmbeddingTask(ClassificationTask):
    """A retrieval-like task: the backbone inside a wrapper, an embedding after it and a
    loss with weights of its own."""

    def configure_models(self) -> None:
        backbone = create_model("resnet18", num_classes=0, **THIN)
        self.model = nn.Sequential(backbone, nn.Linear(backbone.num_features, 3))

    def configure_losses(self) -> None:
        self.margin = nn.BatchNorm1d(3)


def test_parameters_outside_the_backbone_belong_to_the_head() -> None:
    task = EmbeddingTask(model="resnet18", num_classes=3, warmup_epochs=0.0)
    assert task.stage_names() == STAGES
    optimizer = optimizer_of(task, [StagedUnfreeze([1])])
    names = {id(p): n for n, p in task.named_parameters()}
    stages = {names[id(p)]: g["stage"] for g in optimizer.param_groups for p in g["params"]}
    assert len(stages) == len(names)
    for name, stage in stages.items():
        backbone_key = name.removeprefix("model.0.")
        expected = stage_of(backbone_key) if name.startswith("model.0.") else "head"
        assert stage == expected, name
    assert stages["model.1.weight"] == stages["margin.weight"] == "head"
    lrs = {g["stage"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["layer4"] == lrs["stem"] == 0.0 and lrs["head"] > 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LayerwiseLRDecay(0.0), r"decay must be in \(0, 1\], got 0.0"),
        (lambda: LayerwiseLRDecay(1.5), r"decay must be in \(0, 1\], got 1.5"),
        (lambda: LayerwiseLRDecay(float("nan")), r"decay must be in \(0, 1\]"),
        (lambda: StagedUnfreeze([2, -1]), r"epochs >= 0 .* got -1"),
        (lambda: StagedUnfreeze([3, 1]), r"must not decrease .* \[3, 1\]"),
        (lambda: StagedUnfreeze([]), "at least one epoch"),
        (lambda: FreezeBackbone([]), "non-empty list"),
        (lambda: FreezeBackbone("head"), "non-empty list"),
    ],
)
def test_bad_values_are_rejected_when_built(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (FreezeBackbone(["layer5", "head"]), r"unknown stage\(s\) \['layer5'\]; .*'layer4'"),
        (StagedUnfreeze([1, 2, 3, 4, 5, 6]), r"has 6 epochs but the model has 5 stages"),
    ],
)
def test_schedules_that_do_not_fit_the_model_are_rejected_at_setup(
    callback: L.Callback, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        callback.setup(None, make_task(), "fit")  # type: ignore[arg-type]


def test_a_module_that_is_not_a_task_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"subclasses of assembled_lightning\.tasks\.BaseTask"):
        FreezeBackbone().setup(None, L.LightningModule(), "fit")  # type: ignore[arg-type]
