"""One process of a 2-process DDP run on CPU (gloo), started by test_ddp_random_streams.py with
LOCAL_RANK set: three tiny fits that record every mixup λ and DropBlock mask they draw.

A: 2 epochs, a checkpoint after each; B: a fresh run of 1 epoch; C: A resumed after epoch 1.
Writes ``rank<r>.json`` = {"A": [...], "B": [...], "C": [...]} into the folder given.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.models import DropBlock2d
from assembled_lightning.tasks import ClassificationTask


class RecordingTask(ClassificationTask):
    """Records, per training step, the λ it draws and a checksum of every DropBlock mask."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draws: list[dict[str, Any]] = []

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        record: dict[str, Any] = {"epoch": self.current_epoch, "lambdas": [], "masks": []}
        sample, drop_mask = torch.distributions.Beta.sample, DropBlock2d.drop_mask

        def lambdas(dist: Any, shape: Any = ()) -> torch.Tensor:
            value = sample(dist, shape)
            record["lambdas"] += value.tolist()
            return value

        def masks(layer: DropBlock2d, x: torch.Tensor) -> torch.Tensor:
            mask = drop_mask(layer, x)
            flat = mask.flatten().double()
            record["masks"].append(float((flat * torch.arange(1.0, flat.numel() + 1)).sum()))
            return mask

        with (
            mock.patch.object(torch.distributions.Beta, "sample", lambdas),
            mock.patch.object(DropBlock2d, "drop_mask", masks),
        ):
            loss = super().training_loss(batch)
        self.draws.append(record)
        return loss


def fit(folder: Path, epochs: int, save: bool = False, ckpt: Path | None = None) -> list[Any]:
    L.seed_everything(0)
    task = RecordingTask(
        model="resnet18",
        num_classes=4,
        model_overrides={"base_width": 8, "dropblock": True},
        base_lr=0.1,
        batch_denominator=4,
        warmup_epochs=0,
        mixup_alpha=0.2,
        dropblock_keep_prob=(0.7, 0.7),
    )
    data = SyntheticShapesDataModule(train_size=16, val_size=8, batch_size=4)
    callbacks = [
        ModelCheckpoint(
            dirpath=folder,
            filename="{epoch}",
            save_top_k=-1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
        )
    ]
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=save,
        callbacks=callbacks if save else [],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(task, datamodule=data, ckpt_path=ckpt)
    return task.draws


if __name__ == "__main__":
    out = Path(sys.argv[1])
    runs = {
        "A": fit(out / "A", 2, save=True),
        "B": fit(out / "B", 1),
        "C": fit(out / "C", 2, ckpt=out / "A" / "epoch=0.ckpt"),
    }
    rank = int(os.environ["LOCAL_RANK"])
    (out / f"rank{rank}.json").write_text(json.dumps(runs))
    # tear the gloo group down ourselves, then leave without interpreter teardown: its threads'
    # destructors at exit sometimes abort ("terminate called without an active exception", rc -6)
    # after every result is written, which failed CI once with nothing wrong in the test
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)
