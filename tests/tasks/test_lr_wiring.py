"""ClassificationTask's learning rate at every step, for several settings, against the original's
closed form (master:functions/model_fns.py, master:functions/input_fns.py; ORIGINAL.md §3.1):

    lr(s) = peak · s / W                                   for s < W,
    lr(s) = peak · ½ (1 + cos(π · (s − W) / (T − W)))      from W to T,

    peak = base_lr · G / batch_denominator   (the original: 0.4 · 1024 / 1024),
    G    = images trained per optimizer step = per-device batch (halved by mixup 'halves', which
           loads 2 × the batch and mixes it into one) × devices × accumulated batches,
    W    = int(warmup_epochs · N / G),   T = int(max_epochs · N / G), or max_steps if smaller.

The task runs on a stand-in for Lightning's trainer (world size, gradient accumulation, epochs,
the package's DataModule), so 2 devices are counted without starting 2 processes. N = 1001 and
the epochs are chosen so that no ``epochs · N / G`` is an integer: a floor taken in the wrong
place shows.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.tasks import ClassificationTask

NUM_IMAGES, BATCH, EPOCHS, WARMUP_EPOCHS = 1001, 16, 3, 1.5
BASE_LR, DENOMINATOR = 0.4, 64


def closed_form_lrs(
    trained_batch: int, warmup_epochs: float, epochs: int, max_steps: int | None = None
) -> list[float]:
    """The original's LR for every step of the run (its warm-up, then tf cosine_decay to 0)."""
    peak = BASE_LR * trained_batch / DENOMINATOR
    warmup = int(warmup_epochs * NUM_IMAGES / trained_batch)
    total = int(epochs * NUM_IMAGES / trained_batch)
    if max_steps is not None:
        total = min(total, max_steps)
    lrs = []
    for step in range(total):
        if step < warmup:
            lrs.append(peak * step / warmup)
        else:
            lrs.append(peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))))
    return lrs


def task_lrs(
    devices: int, accumulate: int, max_steps: int = -1, **task_options: Any
) -> list[float]:
    """The LR of every optimizer step as the task schedules it on such a trainer: Lightning
    steps the per-step LambdaLR once after each optimizer step."""
    task = ClassificationTask(
        "resnet18",
        num_classes=4,
        model_overrides={"base_width": 8},
        base_lr=BASE_LR,
        batch_denominator=DENOMINATOR,
        **task_options,
    )
    data = SyntheticShapesDataModule(num_classes=4, train_size=NUM_IMAGES, batch_size=BATCH)
    data.train_set = range(NUM_IMAGES)  # type: ignore[assignment]  # only its length counts
    trainer = SimpleNamespace(
        world_size=devices,
        global_rank=0,
        accumulate_grad_batches=accumulate,
        current_epoch=0,
        max_epochs=EPOCHS,
        max_steps=max_steps,
        datamodule=data,
        lightning_module=task,
        reload_dataloaders_every_n_epochs=0,
    )
    data.trainer = trainer  # type: ignore[assignment]
    task._trainer = trainer  # type: ignore[assignment]
    configured = task.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    _, total = task.schedule_steps()  # the run length the task schedules for
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: nothing moves, but the scheduler sees a step
        scheduler.step()
    return lrs


SETTINGS = [
    # (mixup_alpha, mixup_type, devices, accumulate, loaded images behind one trained image)
    pytest.param(0.0, "halves", 1, 1, 1, id="no-mixup"),
    pytest.param(0.2, "halves", 1, 1, 2, id="halves"),
    pytest.param(0.2, "keep_batch", 1, 1, 1, id="keep-batch"),
    pytest.param(0.0, "halves", 2, 1, 1, id="2-devices"),
    pytest.param(0.2, "halves", 2, 1, 2, id="halves-2-devices"),
    pytest.param(0.0, "halves", 1, 3, 1, id="accumulate-3"),
    pytest.param(0.2, "halves", 2, 3, 2, id="halves-2-devices-accumulate-3"),
]


@pytest.mark.parametrize(("alpha", "kind", "devices", "accumulate", "passes"), SETTINGS)
def test_lr_at_every_step_is_the_originals(
    alpha: float, kind: str, devices: int, accumulate: int, passes: int
) -> None:
    trained_batch = BATCH // passes * devices * accumulate
    expected = closed_form_lrs(trained_batch, WARMUP_EPOCHS, EPOCHS)
    lrs = task_lrs(
        devices, accumulate, mixup_alpha=alpha, mixup_type=kind, warmup_epochs=WARMUP_EPOCHS
    )
    assert len(lrs) == len(expected)  # the cosine spans exactly the original's steps
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # The landmarks, spelled out: 0 at the start, the peak right after the warm-up.
    warmup = int(WARMUP_EPOCHS * NUM_IMAGES / trained_batch)
    peak = BASE_LR * trained_batch / DENOMINATOR
    assert lrs[0] == 0.0
    assert lrs[warmup - 1] < peak == pytest.approx(lrs[warmup])


def test_the_peak_lr_follows_the_global_batch() -> None:
    """The linear scaling rule on its own: 0.4 at 64 trained images per step, however they are
    made up (4 settings of 64) and proportional otherwise."""
    for devices, accumulate, alpha, expected in [
        (1, 1, 0.0, 0.4 * 16 / 64),
        (2, 2, 0.0, 0.4),  # 16 × 2 devices × 2 accumulated
        (4, 2, 0.2, 0.4),  # 8 mixed × 4 × 2
        (2, 1, 0.2, 0.4 * 16 / 64),  # 8 mixed × 2
    ]:
        peak = max(task_lrs(devices, accumulate, mixup_alpha=alpha, warmup_epochs=WARMUP_EPOCHS))
        assert peak == pytest.approx(expected, rel=1e-9)


def test_without_warm_up_the_run_starts_at_the_peak() -> None:
    lrs = task_lrs(2, 1, warmup_epochs=0.0)
    expected = closed_form_lrs(BATCH * 2, 0.0, EPOCHS)
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert lrs[0] == pytest.approx(BASE_LR * 32 / DENOMINATOR)


def test_max_steps_ends_the_cosine_but_the_warm_up_counts_epochs() -> None:
    """max_steps=60 before the 3 epochs' int(3 · 1001 / 32) = 93 steps (2 devices × 16): the
    cosine reaches 0 at step 60, and the warm-up is still int(0.5 · 1001 / 32) = 15 steps."""
    trained_batch = BATCH * 2
    lrs = task_lrs(2, 1, max_steps=60, warmup_epochs=0.5)
    expected = closed_form_lrs(trained_batch, 0.5, EPOCHS, max_steps=60)
    assert int(0.5 * NUM_IMAGES / trained_batch) == 15 and len(expected) == 60
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)
