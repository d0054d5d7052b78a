"""How long training runs, against the original's own formulas (master:functions/model_fns.py,
master:functions/input_fns.py, master:utils/data_util.py; ORIGINAL.md §3):

- optimizer steps of ``train_epochs`` epochs = ``int(train_epochs · N / batch)`` (cosine length),
- warm-up = ``int(warmup_epochs · N / batch)``, DropBlock keep-prob decay = the same as the cosine,
- with mixup type 1 the pipeline loads 2 × batch and repeats the data twice, the remainder kept,

with N the training images of the original's ``functions/data_config.py`` and ``batch`` the
global batch of its scripts (``--batch_size``: 1024 on ImageNet, 256 when fine-tuning).

Run ``python tests/tasks/test_training_length.py`` to print the README table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
import yaml

from assembled_lightning.data.samples import ImageDataset, Sample, collate_samples
from assembled_lightning.data.stream import TrainingStream
from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.tasks import ClassificationTask

RECIPES_DIR = Path(__file__).resolve().parents[2] / "assembled_lightning" / "recipes"

# The original's facts: training images (master:functions/data_config.py), global batch and
# epochs of its scripts (master:scripts/*.sh; Table 7 for the rows without a script), warm-up 5.
ORIGINAL_N = {
    "ImageNetDataModule": 1_281_167,
    "Food101DataModule": 75_750,
    "StanfordCarsDataModule": 8_144,
    "Flowers102DataModule": 2_040,
    "OxfordIIITPetDataModule": 3_680,
    "FGVCAircraftDataModule": 6_667,
}
# Images per class of the training split (the real sets': Flowers 20 per class in train+val,
# Food-101 750, FGVC Aircraft 67 for 67 variants and 66 for 33), where a recipe holds out
# val_fraction of each class: it trains on n − max(1, round(f · n)) per class.
CLASS_SIZES = {
    "Flowers102DataModule": [20] * 102,
    "Food101DataModule": [750] * 101,
    "FGVCAircraftDataModule": [67] * 67 + [66] * 33,
}
ORIGINAL_RUN = {  # recipe: (global batch, train_epochs, lr_warmup_epochs, initial LR)
    "imagenet/e0_resnet50": (1024, 120, 5, 0.4),  # train_vanila_from_scratch.sh
    "imagenet/e1_resnet50d": (1024, 120, 5, 0.4),
    "imagenet/e3_resnet50d_ls_mixup": (1024, 200, 5, 0.4),
    "imagenet/e6_resnet50d_sk": (1024, 270, 5, 0.4),
    "imagenet/e11_assemble_resnet50": (1024, 600, 5, 0.4),  # train_assemble_from_scratch.sh
    "imagenet/e12_assemble_resnet152": (1024, 600, 5, 0.4),
    **{  # finetuning_assemble_on_food101.sh, the fine-tune recipe for every set
        f"finetune/{name}": (256, 100, 5, 0.01)
        for name in ("food101", "stanford_cars", "flowers102", "oxford_pets", "fgvc_aircraft")
    },
}


def original_steps(epochs: float, num_images: int, batch: int) -> int:
    """The original's ``int(batches_per_epoch · epochs)``, ``batches_per_epoch = N / batch``."""
    return int(num_images / batch * epochs)


@dataclass
class Row:
    recipe: str
    num_images: int
    batch: int
    epochs: int
    steps: tuple[int, int]  # (ours, the original's)
    images: tuple[int, int]  # (trained in our steps, the original's stream: epochs · N)
    warmup: tuple[int, int]
    dropblock: tuple[int, int]
    lr: tuple[float, float]


def fake_dataset(size: int) -> ImageDataset:
    return ImageDataset([Sample(Path("x.jpg"), 0, "x")] * size)


def recipe_row(path: Path) -> Row:
    """Our numbers for one recipe: the loader lengths of its training stream over every epoch,
    and the task's schedules on a trainer with the recipe's devices and batch."""
    config = yaml.safe_load(path.read_text())
    name = f"{path.parent.name}/{path.stem}"
    trainer_cfg, task_cfg = config["trainer"], config["model"]["init_args"]
    data_cfg = config["data"]["init_args"]
    data_class = config["data"]["class_path"].rsplit(".", 1)[1]
    if data_class == "SyntheticShapesDataModule":  # the quickstart: the same rules, our data
        num_images, original = data_cfg["train_size"], None
    else:
        num_images, original = ORIGINAL_N[data_class], ORIGINAL_RUN[name]
    devices, epochs = trainer_cfg.get("devices", 1), trainer_cfg["max_epochs"]
    task = ClassificationTask(
        "resnet18",
        num_classes=10,
        model_overrides={"base_width": 8},
        **{k: task_cfg[k] for k in task_cfg if k not in ("model", "weights", "model_overrides")},
    )
    datamodule = SimpleNamespace(batch_size=data_cfg["batch_size"])
    trainer = SimpleNamespace(
        world_size=devices,
        global_rank=0,
        accumulate_grad_batches=1,
        current_epoch=0,
        lightning_module=task,
        max_epochs=epochs,
        max_steps=-1,
        datamodule=datamodule,
        reload_dataloaders_every_n_epochs=0,
    )
    dataset = fake_dataset(num_images)
    datamodule.optimizer_steps = lambda e: TrainingStream.from_trainer(  # type: ignore[attr-defined]
        dataset, data_cfg["batch_size"], trainer
    ).steps(e)
    task._trainer = trainer  # type: ignore[assignment]
    stream = TrainingStream.from_trainer(dataset, data_cfg["batch_size"], trainer)
    loader_steps = 0
    for epoch in range(epochs):  # what the loaders really hold, epoch by epoch
        stream.set_epoch(epoch)
        loader_steps += len(stream) // stream.batch_size
    warmup, total = task.schedule_steps()
    trained_batch = devices * data_cfg["batch_size"] // task.data_passes_per_epoch
    if original is None:
        batch, orig_epochs, orig_lr = trained_batch, epochs, 0.0
        orig_warmup = task_cfg["warmup_epochs"]
    else:
        batch, orig_epochs, orig_warmup, orig_lr = original
    orig_steps = original_steps(orig_epochs, num_images, batch)
    return Row(
        recipe=name,
        num_images=num_images,
        batch=batch,
        epochs=orig_epochs,
        steps=(loader_steps, orig_steps),
        images=(loader_steps * trained_batch, orig_epochs * num_images),
        warmup=(warmup, original_steps(orig_warmup, num_images, batch)),
        dropblock=(total, orig_steps),
        lr=(task.learning_rate, orig_lr or task.learning_rate),
    )


# the classification recipes: robustness/ and predict/ hold recipes that take no steps;
# retrieval/ trains on P×K batches, whose epochs the original did not define
# (tests/retrieval/test_retrieval_splits.py checks their length)
RECIPES = sorted(
    r
    for r in RECIPES_DIR.rglob("*.yaml")
    if r.parent.name not in ("robustness", "retrieval", "predict")
)


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_recipe_trains_as_many_steps_as_the_original(path: Path) -> None:
    row = recipe_row(path)
    assert row.steps[0] == row.steps[1]  # optimizer steps, the loaders' real lengths
    # trained (mixed) images: the original's epochs · N less under one batch, the partial
    # batch left after the int(epochs · N / batch) full ones of its schedule
    assert row.steps[0] * row.batch == row.images[0] <= row.images[1] < row.images[0] + row.batch
    assert row.warmup[0] == row.warmup[1]
    assert row.dropblock[0] == row.dropblock[1]  # cosine and keep-prob span the whole run
    assert row.lr[0] == pytest.approx(row.lr[1])  # the same global batch, so the same LR
    comment = re.search(r"max_epochs: \d+ +# ([\d,]+) optimizer steps", path.read_text())
    config = yaml.safe_load(path.read_text())
    fraction = config["data"]["init_args"].get("val_fraction", 0)
    if comment and fraction:  # the number quoted: the original's rule on the part trained on
        sizes = CLASS_SIZES[config["data"]["class_path"].rsplit(".", 1)[1]]
        trained = sum(n - max(1, round(fraction * n)) for n in sizes)
        steps = original_steps(row.epochs, trained, row.batch)
        assert int(comment.group(1).replace(",", "")) == steps
    elif comment:  # the number the recipe quotes
        assert int(comment.group(1).replace(",", "")) == row.steps[1]


def test_issue_numbers_are_the_originals() -> None:
    """The counts quoted in issue #9 follow from the original's formula."""
    assert original_steps(600, 1_281_167, 1024) == 750_683
    assert original_steps(100, 75_750, 256) == 29_589
    assert original_steps(100, 2_040, 256) == 796


def test_flowers_keeps_the_remainder_of_every_epoch() -> None:
    """Flowers-102 on 4 devices × 128 loaded (64 mixed) images: the original's 2,040 images per
    epoch at batch 256 are 7.97 steps; nothing is dropped, every batch is full and even."""
    num_images, devices, batch, epochs = 2_040, 4, 128, 100
    seen = torch.zeros(num_images, dtype=torch.long)
    lengths = []
    for epoch in range(epochs):
        for rank in range(devices):
            stream = TrainingStream(
                fake_dataset(num_images),
                batch,
                num_replicas=devices,
                rank=rank,
                passes=2,
                epoch=epoch,
            )
            indices = torch.tensor(list(stream))
            assert len(indices) == len(stream) and len(indices) % batch == 0
            seen += torch.bincount(indices, minlength=num_images)
        lengths.append(len(stream) // batch)
    assert sum(lengths) == original_steps(epochs, num_images, 256) == 796
    assert set(lengths) == {math.floor(num_images / 256), math.ceil(num_images / 256)}
    total = sum(lengths) * 256 * 2  # loaded images: every image equally often, ±1
    assert seen.sum() == total and seen.max() - seen.min() <= 1
    old_drop_last = epochs * (num_images // devices // batch)  # what the issue measured
    assert old_drop_last == 300 < sum(lengths)


def test_stream_is_the_same_on_every_rank_and_disjoint_per_step() -> None:
    """Two passes per epoch, each a permutation: over two epochs of exactly one pass pair the
    ranks together see every image exactly twice (no overlap, nothing missing)."""
    streams = [
        TrainingStream(fake_dataset(48), 6, num_replicas=2, rank=r, passes=2) for r in (0, 1)
    ]
    indices = torch.tensor([list(s) for s in streams])  # 2·48 / 12 = 8 steps of 6 per rank
    assert indices.shape == (2, 48)
    assert torch.equal(torch.bincount(indices.flatten()), torch.full((48,), 2))
    for step in range(8):  # within a step the ranks' images differ
        batch = indices[:, step * 6 : (step + 1) * 6].flatten()
        assert len(set(batch.tolist())) == 12


# --------------------------------------------------------------------------------------------
# Through Lightning: the steps actually taken and the schedules on them


class ScheduleRecorder(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.keep_probs: list[float] = []
        self.validations = 0

    def on_train_batch_start(self, trainer: L.Trainer, module: Any, batch: Any, idx: int) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        layers = [m for m in module.model.modules() if hasattr(m, "keep_prob")]
        self.keep_probs.append(float(layers[0].keep_prob))

    def on_validation_end(self, trainer: L.Trainer, module: Any) -> None:
        if not trainer.sanity_checking:
            self.validations += 1


def fit(
    data: L.LightningDataModule, folder: Path, epochs: int = -1, steps: int = -1, **task: Any
) -> tuple[L.Trainer, ScheduleRecorder]:
    L.seed_everything(0)
    recorder = ScheduleRecorder()
    model = ClassificationTask(
        "resnet18",
        num_classes=4,
        model_overrides={"base_width": 8, "dropblock": True},
        base_lr=0.4,
        batch_denominator=4,
        dropblock_keep_prob=(1.0, 0.8),
        **task,
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[recorder],
        default_root_dir=folder,
    )
    trainer.fit(model, datamodule=data)
    return trainer, recorder


def expected_lr(step: int, warmup: int, total: int, peak: float) -> float:
    """The original: peak · step / warmup, then tf.train.cosine_decay over total − warmup."""
    if step < warmup:
        return peak * step / warmup
    progress = min(step - warmup, total - warmup) / (total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def test_mixup_halves_runs_the_originals_steps_and_schedules(tmp_path: Path) -> None:
    """42 images, 8 loaded = 4 mixed per step, 3 epochs: the original's int(3 · 42 / 4) = 31
    steps in epochs of 10, 11 and 10 (10.5 on average), warm-up int(1 · 42 / 4) = 10 steps,
    the cosine and the keep-prob reaching their ends at the last step; every epoch validated."""
    data = SyntheticShapesDataModule(train_size=42, val_size=8, batch_size=8)
    trainer, seen = fit(data, tmp_path, epochs=3, mixup_alpha=0.2, warmup_epochs=1)
    total, warmup, peak = original_steps(3, 42, 4), original_steps(1, 42, 4), 0.4 * 4 / 4
    assert trainer.global_step == len(seen.lrs) == total == 31
    assert seen.validations == 3
    for step, lr in enumerate(seen.lrs):
        assert lr == pytest.approx(expected_lr(step, warmup, total, peak), abs=1e-9), step
    for step, keep_prob in enumerate(seen.keep_probs):
        assert keep_prob == pytest.approx(1.0 - 0.2 * step / total, abs=1e-6), step


class WithoutStepCount(L.LightningDataModule):
    """A DataModule of the user's own, without ``optimizer_steps``: Lightning counts."""

    def __init__(self, inner: SyntheticShapesDataModule) -> None:
        super().__init__()
        self.inner = inner
        self.batch_size = inner.batch_size

    def setup(self, stage: str) -> None:
        self.inner.setup(stage)

    def train_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(
            self.inner.train_set, self.batch_size, shuffle=True, collate_fn=collate_samples
        )

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()


@pytest.mark.parametrize("own_datamodule", [False, True], ids=["stream", "users-datamodule"])
def test_warmup_counts_epochs_of_data_under_max_steps(tmp_path: Path, own_datamodule: bool) -> None:
    """max_epochs=-1, max_steps=12 on 40 images at batch 8: warm-up is the original's
    int(1 · 40 / 8) = 5 steps (it was 12: the LR rose to the end), the cosine ends at step 12."""
    data: L.LightningDataModule = SyntheticShapesDataModule(train_size=40, val_size=8, batch_size=8)
    if own_datamodule:
        data = WithoutStepCount(data)  # type: ignore[arg-type]
    trainer, seen = fit(data, tmp_path, steps=12, warmup_epochs=1)
    warmup, peak = original_steps(1, 40, 8), 0.4 * 8 / 4
    assert trainer.global_step == 12 and warmup == 5
    for step, lr in enumerate(seen.lrs):
        assert lr == pytest.approx(expected_lr(step, warmup, 12, peak), abs=1e-9), step
    assert max(seen.lrs) == pytest.approx(peak)


def test_an_odd_batch_mixes_its_pairs_and_leaves_the_last_image_out() -> None:
    """A skipped bad image can leave an odd batch: 'halves' mixes 2 pairs of the 5 images."""
    task = ClassificationTask(
        "resnet18", num_classes=3, model_overrides={"base_width": 8}, mixup_alpha=0.2
    )
    shapes: list[tuple[int, ...]] = []
    task.model.register_forward_hook(lambda _m, inputs, _o: shapes.append(inputs[0].shape))
    loss = task.training_loss(
        {"image": torch.randn(5, 3, 32, 32), "target": torch.tensor([0, 1, 2, 0, 1])}
    )
    assert torch.isfinite(loss) and shapes == [(2, 3, 32, 32)]


def readme_table() -> str:
    """The README's table: ours = the loaders and the task, original = its formulas."""
    lines = [
        "| recipe | N | global batch | epochs | optimizer steps | images trained "
        "(original: epochs × N) | warm-up steps | DropBlock schedule | ours = original |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for path in RECIPES:
        row = recipe_row(path)
        equal = all(a == b for a, b in (row.steps, row.warmup, row.dropblock))
        lines.append(
            f"| `{row.recipe}` | {row.num_images:,} | {row.batch} | {row.epochs} "
            f"| {row.steps[0]:,} | {row.images[0]:,} ({row.images[1]:,}) | {row.warmup[0]:,} "
            f"| {row.dropblock[0]:,} "
            f"| {'yes' if equal else 'NO'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(readme_table())
