"""The README's quickstart, exactly as a new user runs it, learns: validation top-1 far above
chance (0.25 for its four classes), with a checkpoint and a metrics file (about a minute)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from assembled_lightning.cli import main


@pytest.mark.slow
def test_quickstart_trains_well_above_chance(tmp_path: Path) -> None:
    args = [
        "fit",
        "--config",
        "quickstart",  # by name, as the README says
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]
    assert main(args) == 0
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    top1 = [float(row["val/top1"]) for row in rows if row.get("val/top1")]
    assert len(top1) == 12 and top1[-1] >= 0.9  # measured: 1.00
    assert next(tmp_path.rglob("last.ckpt")).is_file()
