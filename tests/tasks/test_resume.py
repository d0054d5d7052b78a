"""The quickstart interrupted after two of its four epochs and resumed from its checkpoint ends
exactly where an uninterrupted run ends (same seed, deterministic CPU), DropBlock masks,
flips and shuffling included."""

from __future__ import annotations

import csv
from pathlib import Path

from assembled_lightning.cli import main
from assembled_lightning.recipes import get_recipe

QUICKSTART = get_recipe("quickstart").path
SMALL = [
    "--data.init_args.train_size=256",
    "--data.init_args.val_size=64",
    "--trainer.enable_progress_bar=false",
    "--trainer.deterministic=true",
]


def final_metrics(folder: Path) -> dict[str, str]:
    rows = list(csv.DictReader((next(folder.rglob("metrics.csv"))).open()))
    return next(row for row in reversed(rows) if row.get("val/top1"))


def run(folder: Path, epochs: int, *extra: str) -> None:
    args = [
        "fit",
        "--config",
        str(QUICKSTART),
        f"--trainer.max_epochs={epochs}",
        *SMALL,
        f"--trainer.default_root_dir={folder}",
        f"--trainer.logger.init_args.save_dir={folder}",
    ]
    assert main([*args, *extra]) == 0


def test_resumed_run_matches_uninterrupted_run(tmp_path: Path) -> None:
    run(tmp_path / "straight", 4)
    run(
        tmp_path / "stopped",
        4,
        "--trainer.callbacks+=interruption.StopAfterEpochs",
        "--trainer.callbacks.epochs=2",
    )
    assert final_metrics(tmp_path / "stopped")["epoch"] == "1"  # interrupted after 2 epochs
    checkpoint = next((tmp_path / "stopped").rglob("last.ckpt"))
    run(tmp_path / "resumed", 4, f"--ckpt_path={checkpoint}")
    straight, resumed = final_metrics(tmp_path / "straight"), final_metrics(tmp_path / "resumed")
    resumed_rows = list(csv.DictReader(next((tmp_path / "resumed").rglob("metrics.csv")).open()))
    # it went on from step 8 of 16 (first logged at the end of epoch 2, step index 11) and
    # repeated nothing of the first two epochs
    assert min(int(row["step"]) for row in resumed_rows) == 11
    assert min(int(row["epoch"]) for row in resumed_rows) == 2
    assert straight["epoch"] == resumed["epoch"] == "3"
    for key in ("val/top1", "val/loss", "val/ece"):
        assert float(straight[key]) == float(resumed[key]), key
