"""Predict with Lightning's DDP on two CPU processes (the console script, in a subprocess): one
merged file, one row per image in the folder's order, the same predictions as one process."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from prediction_fixtures import EVAL_TYPE, UNLABELLED, Trained

from assembled_lightning.data import UnlabelledImageFolderDataModule
from assembled_lightning.predict import TopKPredictionWriter
from assembled_lightning.tasks import ClassificationTask


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_process_predict_writes_one_merged_file(trained: Trained, tmp_path: Path) -> None:
    script = shutil.which("assembled-lightning")
    if script is None:
        pytest.fail("the assembled-lightning console script is not installed: pip install -e .")
    output = tmp_path / "out" / "ddp.csv"
    command = [
        sys.executable,
        script,
        "predict",
        "--config",
        "predict/folder",
        f"--ckpt_path={trained.checkpoint}",
        f"--data.root={trained.images}",
        f"--data.eval_type={EVAL_TYPE}",
        "--data.batch_size=2",  # 7 images: shares of 4 and 3, in 2 batches each
        "--data.num_workers=0",
        f"--trainer.callbacks.output={output}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    rows = read_rows(output)
    assert [row["sample_id"] for row in rows] == sorted(UNLABELLED)  # each once, in order
    assert sorted(p.name for p in output.parent.iterdir()) == ["ddp.csv"]  # parts removed

    single = tmp_path / "single.csv"
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[TopKPredictionWriter(single)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.predict(
        ClassificationTask.load_from_checkpoint(trained.checkpoint),
        datamodule=UnlabelledImageFolderDataModule(trained.images, eval_type=EVAL_TYPE),
        return_predictions=False,
    )
    expected = read_rows(single)
    for row, reference in zip(rows, expected, strict=True):
        assert row.keys() == reference.keys()
        for key, value in row.items():
            if key.endswith("_probability"):
                assert float(value) == pytest.approx(float(reference[key]), abs=1e-6)
            else:
                assert value == reference[key]
