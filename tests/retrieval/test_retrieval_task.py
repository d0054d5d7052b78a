"""RetrievalTask trains a few P×K steps on fake CUB data; the val / test Recall@K it logs equal
a brute-force NumPy evaluation of the embeddings extracted here from the trained network; its
embeddings are unit length, DropBlock's schedule reaches its backbone, and it documents the
arguments it shares with BaseTask as BaseTask does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_retrieval_layouts as fake
import lightning as L
import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser
from retrieval_reference import KS, TINY_MODEL, brute_force_recall, extract

from assembled_lightning.models import Backbone
from assembled_lightning.models.layers import DropBlock2d
from assembled_lightning.retrieval import CUB200RetrievalDataModule, RetrievalTask
from assembled_lightning.tasks import BaseTask


def test_logged_recall_equals_brute_force_on_the_extracted_embeddings(tmp_path: Path) -> None:
    L.seed_everything(0)
    data = CUB200RetrievalDataModule(
        fake.cub200(tmp_path / "data", images_per_class=4),
        batch_size=4,
        images_per_class=2,
        val_classes=0.1,
        num_workers=0,
        pin_memory=False,
        train_size=32,
        eval_type="imagenet_32",
    )
    task = RetrievalTask(
        model="resnet18",
        num_classes=data.num_classes,
        model_overrides=TINY_MODEL,
        base_lr=0.1,
        batch_denominator=4,
        warmup_epochs=0,
        head="arcface",
        scale=8.0,
        margin=0.3,
        recall_ks=KS,
    )
    head_before = task.head.weight.detach().clone()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == 4  # 4 trained classes × 4 images, batches of 2 × 2
    assert not torch.equal(task.head.weight, head_before)  # it trained
    fit_logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    embeddings, labels = extract(task, data.datasets["val"])
    expected = brute_force_recall(embeddings, labels)
    assert 0 < expected["recall@1"] < 1  # a check that can tell rankings apart
    assert fit_logged == pytest.approx({f"val/{k}": v for k, v in expected.items()}, abs=1e-6)
    (validated,) = trainer.validate(task, datamodule=data, verbose=False)
    assert validated == pytest.approx({f"val/{k}": v for k, v in expected.items()}, abs=1e-6)

    (tested,) = trainer.test(task, datamodule=data, verbose=False)
    embeddings, labels = extract(task, data.datasets["test"])
    expected = brute_force_recall(embeddings, labels)
    assert tested == pytest.approx({f"test/{k}": v for k, v in expected.items()}, abs=1e-6)

    predicted = trainer.predict(task, datamodule=data)
    assert predicted is not None
    got = torch.cat([p["embeddings"] for p in predicted])  # type: ignore[index]
    np.testing.assert_allclose(got.numpy(), embeddings, atol=1e-6)
    ids = [i for p in predicted for i in p["sample_id"]]  # type: ignore[index]
    assert ids == [s.sample_id for s in data.datasets["test"].samples]


def test_embeddings_are_unit_length_with_or_without_an_embedding_layer() -> None:
    images = torch.rand(3, 3, 32, 32)
    for embedding_dim, width in ((None, 64), (12, 12)):
        task = RetrievalTask(
            model="resnet18", num_classes=5, model_overrides=TINY_MODEL, embedding_dim=embedding_dim
        ).eval()
        with torch.no_grad():
            out = task(images)
        assert out.shape == (3, width)
        torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
        assert task.head.weight.shape == (5, width)
        assert isinstance(task.model.backbone, Backbone)
        assert isinstance(task.model.backbone.fc, torch.nn.Identity)


def test_the_dropblock_schedule_reaches_the_backbone() -> None:
    task = RetrievalTask(
        model="assemble_resnet50",
        num_classes=5,
        model_overrides={"base_width": 8, "block_counts": [2, 2, 2, 1], "dropblock": True},
        dropblock_keep_prob=(0.8, 0.8),
    )
    task._schedule = (0, 10)  # warm-up and total steps, as configure_optimizers sets them
    task.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no trainer here
    task.on_train_batch_start({}, 0)
    blocks = [m for m in task.model.modules() if isinstance(m, DropBlock2d)]
    assert blocks and all(float(block.keep_prob) == pytest.approx(0.8) for block in blocks)


def test_bad_choices_name_themselves() -> None:
    with pytest.raises(ValueError, match="did you mean 'gem'"):
        RetrievalTask(pooling="gen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="did you mean 'cosface'"):
        RetrievalTask(head="cosfase")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly increasing"):
        RetrievalTask(recall_ks=(4, 1))


def test_retrieval_documents_the_shared_arguments_as_the_base() -> None:
    def helps(component: type) -> dict[str, Any]:
        parser = ArgumentParser()
        parser.add_class_arguments(component, "x")
        return {a.dest.removeprefix("x."): a.help for a in parser._actions if a.dest != "help"}

    base, retrieval = helps(BaseTask), helps(RetrievalTask)
    shared = set(base) - {"x"}
    assert len(shared) >= 15 and shared <= set(retrieval)
    assert {name: retrieval[name] for name in shared} == {n: base[n] for n in shared}
    own = set(retrieval) - shared - {"x"}
    own_arguments = ["pooling", "gem_p", "learn_gem_p", "embedding_dim", "head", "scale"]
    assert own == {*own_arguments, "margin", "recall_ks"}
    assert all((retrieval[name] or "").strip() for name in own)
