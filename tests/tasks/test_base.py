"""BaseTask: fine-tuning from a real quickstart ``fit`` checkpoint builds the checkpoint's
architecture (its ``model_overrides`` read from its hyper-parameters), explicit overrides apply
over it, bad files fail clearly, and a subclass that adds only its hooks and step trains
through the real CLI."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from assembled_lightning.cli import main
from assembled_lightning.recipes import get_recipe
from assembled_lightning.robustness.task import RobustnessTask
from assembled_lightning.tasks import BaseTask, ClassificationTask
from assembled_lightning.weights import WeightsError, build_model

QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
QUICKSTART_MODEL = yaml.safe_load(get_recipe("quickstart").path.read_text())["model"]["init_args"]


@pytest.fixture(scope="module")
def quickstart_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of one epoch of the quickstart recipe (its thin 4-class model), on fewer
    images."""
    root = tmp_path_factory.mktemp("quickstart")
    args = ["fit", "--config", "quickstart", *QUIET, "--trainer.max_epochs=1"]
    args += [f"--trainer.default_root_dir={root}", f"--trainer.logger.init_args.save_dir={root}"]
    args += ["--data.init_args.train_size=128", "--data.init_args.val_size=64"]
    assert main(args) == 0
    return next(root.rglob("last.ckpt"))


def saved_model_state(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's model tensors as torch reads them, independently of the package."""
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def test_fine_tuning_from_a_quickstart_checkpoint_builds_its_architecture(
    quickstart_checkpoint: Path,
) -> None:
    task = ClassificationTask(num_classes=3, weights=str(quickstart_checkpoint))
    overrides = QUICKSTART_MODEL["model_overrides"]
    assert overrides["base_width"] == 8  # the recipe's thin model, not the default width
    config = task.model.config  # type: ignore[union-attr]
    assert config.base_width == 8 and list(config.block_counts) == overrides["block_counts"]
    # recorded, so that this run's own checkpoints describe the model they hold
    assert task.hparams["model"] == QUICKSTART_MODEL["model"]
    assert task.hparams["model_overrides"] == overrides

    saved, own = saved_model_state(quickstart_checkpoint), task.model.state_dict()
    head = {"fc.weight", "fc.bias"}
    assert set(own) == set(saved) and len(own) > 200
    for key in set(own) - head:
        assert torch.equal(own[key], saved[key]), key
    assert saved["fc.weight"].shape[0] == 4 and task.model.fc.out_features == 3  # type: ignore[union-attr]


def test_overrides_apply_over_the_checkpoints_architecture(quickstart_checkpoint: Path) -> None:
    """Precedence: the checkpoint names the model and its overrides; explicit overrides apply
    over them; one that changes the tensors fails naming itself and the recorded ones."""
    task = ClassificationTask(
        model="resnet18",  # a fit checkpoint names its own model
        num_classes=4,
        weights=str(quickstart_checkpoint),
        model_overrides={"dropblock": False},  # a switch without tensors may change
    )
    assert task.hparams["model"] == "assemble_resnet50"
    assert task.model.config.dropblock is False  # type: ignore[union-attr]
    assert task.hparams["model_overrides"] == {
        **QUICKSTART_MODEL["model_overrides"],
        "dropblock": False,
    }
    saved, own = saved_model_state(quickstart_checkpoint), task.model.state_dict()
    assert all(torch.equal(own[key], saved[key]) for key in own)  # the head too: same classes

    with pytest.raises(WeightsError, match=r"\{'base_width': 16\}, given over those recorded"):
        ClassificationTask(
            num_classes=4, weights=str(quickstart_checkpoint), model_overrides={"base_width": 16}
        )
    with pytest.raises(WeightsError, match="is a checkpoint of assemble_resnet50, not resnet18"):
        build_model("resnet18", weights=str(quickstart_checkpoint))


def test_bad_checkpoint_files_are_explained(quickstart_checkpoint: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    content = quickstart_checkpoint.read_bytes()
    truncated.write_bytes(content[: len(content) // 2])
    with pytest.raises(WeightsError, match=r"cannot read checkpoint .*truncated\.ckpt"):
        ClassificationTask(num_classes=4, weights=str(truncated))
    with pytest.raises(WeightsError, match=r"checkpoint .*missing\.ckpt does not exist"):
        ClassificationTask(num_classes=4, weights=str(tmp_path / "missing.ckpt"))


def test_robustness_task_reads_a_checkpoint_the_same_way(quickstart_checkpoint: Path) -> None:
    task = RobustnessTask(weights=str(quickstart_checkpoint), num_classes=4)
    assert task.hparams["model_overrides"] == QUICKSTART_MODEL["model_overrides"]
    saved, own = saved_model_state(quickstart_checkpoint), task.model.state_dict()
    assert set(own) == set(saved) and all(torch.equal(own[k], saved[k]) for k in own)


def test_a_checkpoint_with_ema_gives_its_averaged_weights(tmp_path: Path) -> None:
    task = ClassificationTask(
        "resnet18", num_classes=3, model_overrides={"base_width": 8}, ema_decay=0.5
    )
    assert task.ema is not None
    with torch.no_grad():
        for parameter in task.ema.module.parameters():
            parameter.add_(1.0)  # the averaged weights now differ from the trained ones
    path = tmp_path / "ema.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}, path)
    model = build_model("resnet18", weights=str(path))
    averaged = task.ema.module.state_dict()
    assert all(torch.equal(v, averaged[k]) for k, v in model.state_dict().items())


def test_classification_documents_the_shared_arguments_as_the_base() -> None:
    def helps(component: type) -> dict[str, Any]:
        parser = ArgumentParser()
        parser.add_class_arguments(component, "x")
        return {a.dest.removeprefix("x."): a.help for a in parser._actions if a.dest != "help"}

    base, classification = helps(BaseTask), helps(ClassificationTask)
    shared = set(base) - {"x"}
    assert len(shared) == 15 and shared <= set(classification)
    assert {name: classification[name] for name in shared} == {n: base[n] for n in shared}


TRAINING_LOSSES: list[float] = []


class TinyTask(BaseTask):
    """The least a training task adds to BaseTask: a loss, a metric and a training step."""

    def configure_losses(self) -> None:
        self.criterion = nn.CrossEntropyLoss()

    def configure_metrics(self) -> None:
        self.train_top1 = MulticlassAccuracy(self.hparams["num_classes"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["target"])
        self.train_top1(logits, batch["target"])
        self.log("train/top1", self.train_top1, batch_size=len(batch["target"]))
        TRAINING_LOSSES.append(loss.item())
        return loss


def test_a_subclass_with_only_its_hooks_trains_through_the_cli(tmp_path: Path) -> None:
    config = {
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "fast_dev_run": True,
        },
        "model": {
            "class_path": f"{TinyTask.__module__}.TinyTask",
            "init_args": {"model": "resnet18", "model_overrides": {"base_width": 8}},
        },
        "data": {
            "class_path": "SyntheticShapesDataModule",
            "init_args": {"num_classes": 3, "train_size": 16, "val_size": 16, "batch_size": 8},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    TRAINING_LOSSES.clear()
    assert (
        main(["fit", "--config", str(path), *QUIET, f"--trainer.default_root_dir={tmp_path}"]) == 0
    )
    assert len(TRAINING_LOSSES) == 1 and math.isfinite(TRAINING_LOSSES[0])
