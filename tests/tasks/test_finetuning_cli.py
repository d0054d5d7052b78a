"""The fine-tuning callbacks from the command line, in both forms a user writes: the short
``--trainer.callbacks+=<class>`` with its arguments, and the ``class_path`` / ``init_args`` form
of a YAML recipe. The quickstart trains one short epoch of two; its ``last.ckpt`` holds the LRs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from assembled_lightning.cli import main


def test_callbacks_from_the_command_line_reach_the_optimizer(tmp_path: Path) -> None:
    decay = {
        "class_path": "assembled_lightning.tasks.LayerwiseLRDecay",
        "init_args": {"decay": 0.5},
    }
    args = [
        "fit",
        "--config",
        "quickstart",
        "--trainer.max_epochs=2",
        "--trainer.callbacks+=interruption.StopAfterEpochs",  # after 1: the LR is not yet 0
        "--trainer.callbacks.epochs=1",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.train_size=128",
        "--data.init_args.val_size=64",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.callbacks+=assembled_lightning.tasks.FreezeBackbone",
        "--trainer.callbacks.train_stages=[layer4, head]",
        f"--trainer.callbacks+={json.dumps(decay)}",
    ]
    assert main(args) == 0
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    lrs = {g["name"]: g["lr"] for g in checkpoint["optimizer_states"][0]["param_groups"]}
    head = lrs["head.decay"]
    assert head > 0
    for stage in ("stem", "layer1", "layer2", "layer3"):
        assert lrs[f"{stage}.decay"] == lrs[f"{stage}.no_decay"] == 0.0, stage
    assert lrs["layer4.decay"] == lrs["layer4.no_decay"] == pytest.approx(head / 2, rel=1e-12)
