"""A RetrievalTask ``fit`` checkpoint serves as ``weights`` of another task: a classifier starts
from its backbone (read back from the checkpoint file's ``model.backbone.`` tensors) with a new
head, and another retrieval run starts from the same backbone, EMA weights preferred."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from retrieval_reference import TINY_MODEL

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.retrieval import RetrievalTask
from assembled_lightning.tasks import ClassificationTask


@pytest.fixture(scope="module")
def retrieval_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two steps of retrieval training on the shapes (with EMA), saved by Lightning."""
    L.seed_everything(0)
    task = RetrievalTask(
        model="resnet18",
        num_classes=3,
        model_overrides=TINY_MODEL,
        base_lr=0.1,
        batch_denominator=16,
        warmup_epochs=0,
        ema_decay=0.5,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    data = SyntheticShapesDataModule(num_classes=3, train_size=32, val_size=16, batch_size=16)
    trainer.fit(task, datamodule=data)
    path = tmp_path_factory.mktemp("retrieval") / "retrieval.ckpt"
    trainer.save_checkpoint(path)
    return path


def saved_backbone(path: Path) -> dict[str, torch.Tensor]:
    """The EMA backbone tensors as the file holds them (``ema.module.backbone.*``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    prefix = "ema.module.backbone."
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def test_a_classifier_fine_tunes_from_a_retrieval_checkpoint(retrieval_checkpoint: Path) -> None:
    expected = saved_backbone(retrieval_checkpoint)
    task = ClassificationTask(weights=str(retrieval_checkpoint), num_classes=5)
    assert task.hparams["model"] == "resnet18"  # the checkpoint's architecture
    state = task.model.state_dict()
    assert expected and all(torch.equal(state[name], value) for name, value in expected.items())
    assert set(state) - set(expected) == {"fc.weight", "fc.bias"}  # a new 5-way head
    assert state["fc.weight"].shape == (5, task.model.num_features)


def test_a_retrieval_run_continues_from_a_retrieval_checkpoint(
    retrieval_checkpoint: Path,
) -> None:
    expected = saved_backbone(retrieval_checkpoint)
    task = RetrievalTask(weights=str(retrieval_checkpoint), num_classes=7)
    state = task.model.backbone.state_dict()
    assert set(state) == set(expected)
    assert all(torch.equal(state[name], value) for name, value in expected.items())
