"""The quickstart trains with two CPU processes under DDP through the console script."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_quickstart_with_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    script = shutil.which("assembled-lightning")
    if script is None:
        pytest.fail("the assembled-lightning console script is not installed: pip install -e .")
    command = [
        sys.executable,
        script,
        "fit",
        "--config",
        "quickstart",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.train_size=256",
        "--data.init_args.val_size=64",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    assert any(row.get("val/top1") for row in rows)
    assert next(tmp_path.rglob("last.ckpt")).is_file()
