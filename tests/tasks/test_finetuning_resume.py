"""A StagedUnfreeze run interrupted before its unfreeze epoch and resumed from ``last.ckpt`` ends
with exactly the weights (and BatchNorm statistics, EMA) of the same run uninterrupted: the
schedule, the BatchNorm modes and the momentum reset depend on the epoch alone."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from interruption import StopAfterEpochs
from lightning.pytorch.callbacks import ModelCheckpoint

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.tasks import ClassificationTask, LayerwiseLRDecay, StagedUnfreeze

EPOCHS = 3


def fit(folder: Path, *extra: L.Callback, ckpt_path: Path | None = None) -> dict[str, torch.Tensor]:
    L.seed_everything(0)
    task = ClassificationTask(
        "resnet18",
        num_classes=3,
        model_overrides={"base_width": 8, "block_counts": [1, 1, 1, 1], "dropblock": True},
        base_lr=0.2,
        batch_denominator=8,
        warmup_epochs=0.5,
        weight_decay=0.05,
        dropblock_keep_prob=(1.0, 0.8),
        ema_decay=0.9,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=EPOCHS,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        default_root_dir=folder,
        callbacks=[
            StagedUnfreeze([1, 2]),  # layer4 from epoch 1, layer3 from epoch 2
            LayerwiseLRDecay(0.8),
            ModelCheckpoint(dirpath=folder, save_last=True, save_on_train_epoch_end=True),
            *extra,
        ],
    )
    data = SyntheticShapesDataModule(num_classes=3, train_size=24, val_size=8, batch_size=8)
    trainer.fit(task, datamodule=data, ckpt_path=ckpt_path)
    assert trainer.current_epoch == (EPOCHS if not extra else 2)
    return {key: value.clone() for key, value in task.state_dict().items()}


def test_resumed_staged_unfreeze_ends_with_the_uninterrupted_weights(tmp_path: Path) -> None:
    straight = fit(tmp_path / "straight")
    stopped = fit(tmp_path / "stopped", StopAfterEpochs(2))  # epochs 0 and 1 done
    resumed = fit(tmp_path / "resumed", ckpt_path=tmp_path / "stopped" / "last.ckpt")
    assert straight.keys() == resumed.keys()
    different = [key for key in straight if not torch.equal(straight[key], resumed[key])]
    assert not different
    # the check has teeth: epoch 2 (layer3 unfreezes) moved both the weights and the EMA
    assert not torch.equal(
        stopped["model.layer3.0.conv1.weight"], resumed["model.layer3.0.conv1.weight"]
    )
    assert not torch.equal(stopped["ema.module.fc.weight"], resumed["ema.module.fc.weight"])
