"""RetrievalTask trains under DDP with two CPU processes through the console script (the P×K
sampler kept by Lightning, one class set per rank); the val/recall@K it logs for the whole
validation split (gathered from both ranks, the padded repeat merged) equals a brute-force
evaluation of the saved model's embeddings in this one process."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fake_retrieval_layouts as fake
import pytest
import torch
import yaml
from retrieval_reference import KS, TINY_MODEL, brute_force_recall, extract

from assembled_lightning.retrieval import CUB200RetrievalDataModule, RetrievalTask

DATA = {"batch_size": 4, "images_per_class": 2, "val_classes": 0.1, "num_workers": 0}
DATA |= {"pin_memory": False, "train_size": 32, "eval_type": "imagenet_32"}


def test_ddp_recall_covers_the_whole_split(tmp_path: Path) -> None:
    script = shutil.which("assembled-lightning")
    if script is None:
        pytest.fail("the assembled-lightning console script is not installed: pip install -e .")
    root = fake.cub200(tmp_path / "data")  # 4 trained classes: 2 per batch on each of 2 ranks
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 2,
            "strategy": "ddp",
            "max_epochs": 1,
            "num_sanity_val_steps": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path),
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(tmp_path), "name": ""},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"monitor": "val/recall@1", "mode": "max", "save_last": True},
                }
            ],
        },
        "model": {
            "class_path": "assembled_lightning.retrieval.RetrievalTask",
            "init_args": {
                "model": "resnet18",
                "model_overrides": TINY_MODEL,
                "base_lr": 0.1,
                "batch_denominator": 8,
                "warmup_epochs": 0,
                "recall_ks": list(KS),
            },
        },
        "data": {
            "class_path": "assembled_lightning.retrieval.CUB200RetrievalDataModule",
            "init_args": {"root": str(root), **DATA},
        },
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, script, "fit", "--config", str(path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    logged = {k: float(v) for row in rows for k, v in row.items() if k.startswith("val/") and v}
    assert len([row for row in rows if row.get("val/recall@1")]) == 1  # one epoch, one value

    task = RetrievalTask.load_from_checkpoint(next(tmp_path.rglob("last.ckpt")), map_location="cpu")
    data = CUB200RetrievalDataModule(root, **DATA)
    data.setup("validate")
    embeddings, labels = extract(task, data.datasets["val"])
    assert len(labels) == 9  # odd: DDP's sampler repeats one item to even the two shards
    expected = brute_force_recall(embeddings, labels)
    assert 0 < expected["recall@1"] < 1  # a check that can tell rankings apart
    assert logged == pytest.approx({f"val/{k}": v for k, v in expected.items()}, abs=1e-6)
    assert torch.isfinite(torch.from_numpy(embeddings)).all()
