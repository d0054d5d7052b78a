"""A tiny classifier trained once through the real CLI (quickstart's model, three named classes
in an ImageFolder tree) and a folder of unlabelled images of every colour mode to predict on."""

from __future__ import annotations

import pytest
from prediction_fixtures import CLASSES, EVAL_TYPE, UNLABELLED, Trained, write_image

from assembled_lightning.cli import main


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    base = tmp_path_factory.mktemp("trained")
    data = base / "data"
    for seed, (split, name) in enumerate((s, c) for s in ("train", "val") for c in CLASSES):
        for index in range(2 if split == "train" else 1):
            write_image(data / split / name / f"{index}.png", 36, 40, "RGB", 10 * seed + index)
    images = base / "images"
    for seed, (relative, (height, width, mode)) in enumerate(UNLABELLED.items()):
        write_image(images / relative, height, width, mode, 100 + seed)
    (images / "notes.txt").write_text("not an image")
    run = base / "run"
    assert (
        main(
            [
                "fit",
                "--config",
                "quickstart",
                "--data=assembled_lightning.data.ImageFolderDataModule",
                f"--data.root={data}",
                "--data.batch_size=3",
                "--data.num_workers=0",
                "--data.pin_memory=false",
                "--data.train_size=32",
                f"--data.eval_type={EVAL_TYPE}",
                "--trainer.max_epochs=1",
                f"--trainer.default_root_dir={run}",
                f"--trainer.logger.init_args.save_dir={run}",
                "--trainer.enable_progress_bar=false",
                "--trainer.enable_model_summary=false",
            ]
        )
        == 0
    )
    return Trained(next(run.rglob("last.ckpt")), data / "train", images)
