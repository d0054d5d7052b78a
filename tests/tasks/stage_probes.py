"""What the fine-tuning tests (one process and DDP) read from a thin ResNet-18 run: the stage of
each state-dict key by hand from torchvision's names, and which stages changed between two
snapshots (weights and BatchNorm statistics apart)."""

from __future__ import annotations

import lightning as L
import torch

STAGES = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def stage_of(name: str) -> str:
    """The stage of a task state-dict key, by hand from torchvision's names."""
    first = name.removeprefix("model.").split(".")[0]
    return {"fc": "head"}.get(first, first if first.startswith("layer") else "stem")


def snapshot(task: L.LightningModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.state_dict().items() if k.startswith("model.")}


def changed_stages(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]
) -> dict[str, dict[str, bool]]:
    """Per stage: did any parameter / any BatchNorm running statistic change (bitwise)?"""
    result: dict[str, dict[str, bool]] = {s: {"weights": False, "stats": False} for s in STAGES}
    for key, value in before.items():
        kind = "stats" if "running_" in key or "num_batches" in key else "weights"
        if not torch.equal(value, after[key]):
            result[stage_of(key)][kind] = True
    return result


class EpochSnapshots(L.Callback):
    """The model's state before training and after each training epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(snapshot(pl_module))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(snapshot(pl_module))
