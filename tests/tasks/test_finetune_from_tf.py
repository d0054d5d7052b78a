"""Fine-tuning from a converted TF folder (``convert-tf`` of the original's checkpoint) through
the real CLI: the Flowers-102 recipe starts from exactly the converted tensors (read back with
safetensors, the classifier excepted) and runs end to end on a fake copy of the data set."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from assembled_lightning.cli import main
from assembled_lightning.tasks import ClassificationTask

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
import fake_layouts

ON_ONE_CPU = [
    "--trainer.fast_dev_run=true",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.strategy=auto",
    "--trainer.enable_progress_bar=false",
    "--data.init_args.batch_size=4",
    "--data.init_args.num_workers=0",
    "--data.init_args.train_size=64",
    "--data.init_args.eval_type=imagenet_64",
    "--data.init_args.pin_memory=false",
]


def test_flowers_recipe_fine_tunes_from_a_converted_tf_checkpoint(
    reference_dir: Path, tmp_path: Path
) -> None:
    converted = tmp_path / "converted"
    checkpoint = reference_dir / "tf" / "assemble_r50_thin"
    assert (
        main(
            ["convert-tf", str(checkpoint), "--model", "assemble_resnet50", "--out", str(converted)]
        )
        == 0
    )
    tensors = load_file(str(next(converted.glob("*.safetensors"))))
    task = ClassificationTask(weights=str(converted), num_classes=102)
    state = task.model.state_dict()
    backbone = [name for name in tensors if not name.startswith("fc.")]
    assert backbone and all(torch.equal(state[name], tensors[name]) for name in backbone)
    assert state["fc.weight"].shape == (102, tensors["fc.weight"].shape[1])  # a new head
    root = fake_layouts.flowers102(tmp_path / "data")
    args = ["fit", "--config", "finetune/flowers102", f"--data.init_args.root={root}"]
    args += [f"--model.init_args.weights={converted}", f"--trainer.default_root_dir={tmp_path}"]
    assert main([*args, *ON_ONE_CPU]) == 0
