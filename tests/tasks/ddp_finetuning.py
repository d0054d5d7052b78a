"""One process of a 2-process DDP run on CPU (gloo), started by test_finetuning_ddp.py with
LOCAL_RANK set: a thin ResNet-18 fine-tuned for 2 epochs under ``StagedUnfreeze([1])`` (head
from the start, layer4 from epoch 1, the rest frozen), with momentum and weight decay.

Writes ``rank<r>.json``: per epoch, which stages changed (weights, BatchNorm statistics); the
smallest gradient sum of each stage over the steps; a hash of every final parameter.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from stage_probes import EpochSnapshots, changed_stages, stage_of

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.tasks import ClassificationTask, StagedUnfreeze


class GradientSums(L.Callback):
    """Per stage, the smallest sum of |gradient| over the optimizer steps."""

    def __init__(self) -> None:
        self.smallest: dict[str, float] = {}

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        sums: dict[str, float] = {}
        for name, parameter in pl_module.named_parameters():
            if parameter.grad is not None:
                stage = stage_of(name)
                sums[stage] = sums.get(stage, 0.0) + float(parameter.grad.abs().sum())
        for stage, total in sums.items():
            self.smallest[stage] = min(total, self.smallest.get(stage, total))


def main(folder: Path) -> None:
    L.seed_everything(0)
    task = ClassificationTask(
        "resnet18",
        num_classes=3,
        model_overrides={"base_width": 8, "block_counts": [1, 1, 1, 1], "zero_gamma": False},
        base_lr=0.2,
        batch_denominator=8,
        warmup_epochs=0.0,
        weight_decay=0.05,
        label_smoothing=0.0,
    )
    snapshots, gradients = EpochSnapshots(), GradientSums()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StagedUnfreeze([1]), snapshots, gradients],
    )
    data = SyntheticShapesDataModule(num_classes=3, train_size=16, val_size=8, batch_size=4)
    trainer.fit(task, datamodule=data)
    states = snapshots.states
    result = {
        "steps": trainer.global_step,
        "changes": [changed_stages(a, b) for a, b in itertools.pairwise(states)],
        "smallest_gradient_sums": gradients.smallest,
        "parameters": {
            name: hashlib.sha256(p.detach().numpy().tobytes()).hexdigest()
            for name, p in task.named_parameters()
        },
    }
    (folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    # tear the gloo group down ourselves and skip interpreter teardown, whose thread destructors
    # sometimes abort after every result is written (as ddp_random_streams.py does)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)
