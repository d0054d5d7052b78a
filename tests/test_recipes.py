"""Every shipped recipe (assembled_lightning/recipes/) runs through the real CLI (fast_dev_run)
on a fake copy of its data set's layout, with tiny images on one CPU, so no recipe can rot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scipy.io import savemat

from assembled_lightning import create_model
from assembled_lightning.cli import main
from assembled_lightning.data import ImageNetDataModule, extract_teacher_logits
from assembled_lightning.recipes import list_recipes
from assembled_lightning.weights import save_pretrained

sys.path.insert(0, str(Path(__file__).parent / "data"))
import fake_layouts

sys.path.insert(0, str(Path(__file__).parent / "retrieval"))
import fake_retrieval_layouts

RECIPES_DIR = Path(__file__).resolve().parents[1] / "assembled_lightning" / "recipes"
ALL_RECIPES = sorted(RECIPES_DIR.rglob("*.yaml"))
# the robustness recipes evaluate (`test`): tests/robustness/test_task.py runs each of them
# robustness/ (`test`) and predict/ (`predict`) recipes are run by their own tests:
# tests/robustness/test_task.py, tests/predict/test_prediction_writer.py
RECIPES = [r for r in ALL_RECIPES if r.parent.name not in ("robustness", "predict")]


def stanford_cars_with_a_pair(root: Path) -> Path:
    """The fake Cars with a second training image of class 1, so that a val_fraction split
    holds one out."""
    fake_layouts.stanford_cars(root)
    base = root / "stanford_cars"
    rows = [("00001.jpg", 1), ("00002.jpg", 196), ("00003.jpg", 5), ("00004.jpg", 1)]
    annotations = {"annotations": fake_layouts._annotations(rows)}
    savemat(base / "devkit" / "cars_train_annos.mat", annotations)
    fake_layouts.write_image(base / "cars_train" / "00004.jpg", 4)
    return root


FAKE_DATA = {
    "food101": fake_layouts.food101,
    "stanford_cars": stanford_cars_with_a_pair,
    "flowers102": fake_layouts.flowers102,
    "oxford_pets": fake_layouts.oxford_pets,
    "fgvc_aircraft": fake_layouts.fgvc_aircraft,
}
# retrieval: layouts with images in the held-out validation classes too (val_classes)
FAKE_RETRIEVAL_DATA = fake_retrieval_layouts.BY_RECIPE
ON_ONE_CPU = [
    "--trainer.fast_dev_run=true",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.strategy=auto",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
]
TINY_DATA = [
    "--data.init_args.batch_size=4",
    "--data.init_args.num_workers=0",
    "--data.init_args.train_size=64",
    "--data.init_args.pin_memory=false",
]


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (thin) pretrained folder standing in for the converted ImageNet weights of fine-tuning."""
    folder = tmp_path_factory.mktemp("converted")
    return save_pretrained(
        create_model("assemble_resnet50", base_width=8), folder, architecture="assemble_resnet50"
    )


def recipe_arguments(recipe: Path, tmp_path: Path, imagenet_weights: Path) -> list[str]:
    args = ["fit", "--config", str(recipe), f"--trainer.default_root_dir={tmp_path}", *ON_ONE_CPU]
    if recipe.parent.name == "imagenet":
        root = fake_layouts.imagenet(tmp_path / "imagenet")
        args += [
            f"--data.init_args.root={root}",
            "--data.init_args.num_classes=3",
            *TINY_DATA,
            "--data.init_args.eval_type=imagenet_64",
            "--model.init_args.model_overrides={base_width: 8}",  # thin: structure, not width
        ]
        if "kd_weight: 1.0" in recipe.read_text():
            data = ImageNetDataModule(root, num_classes=3, eval_type="imagenet_64")
            teacher = create_model("resnet18", num_classes=3, base_width=8)
            store = extract_teacher_logits(
                teacher,
                data.eval_dataset(),
                tmp_path / "logits",
                teacher_name="t",
                transform_name="imagenet_64",
            )
            args.append(f"--data.init_args.teacher_logits={store}")
    elif recipe.parent.name == "finetune":
        root = FAKE_DATA[recipe.stem](tmp_path / "data")
        # the fake fine-grained sets hold 3-4 training images: two passes of them per epoch
        # (mixup 'halves') fill a batch of 4, mixed into 2
        args += [
            f"--data.init_args.root={root}",
            *TINY_DATA,
            "--data.init_args.eval_type=imagenet_64",
            f"--model.init_args.weights={imagenet_weights}",
        ]
    elif recipe.parent.name == "retrieval":
        root = FAKE_RETRIEVAL_DATA[recipe.stem](tmp_path / "data")
        args += [
            f"--data.init_args.root={root}",
            *TINY_DATA,
            "--data.init_args.images_per_class=2",
            "--data.init_args.eval_type=imagenet_64",
            f"--model.init_args.weights={imagenet_weights}",
        ]
    return args


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{r.parent.name}/{r.stem}" for r in RECIPES])
def test_recipe_runs_with_fast_dev_run(
    recipe: Path, tmp_path: Path, imagenet_weights: Path
) -> None:
    assert main(recipe_arguments(recipe, tmp_path, imagenet_weights)) == 0


def test_recipes_cover_the_paper_rows() -> None:
    names = {f"{r.parent.name}/{r.stem}" for r in RECIPES}
    for row in (
        "e0_resnet50",
        "e1_resnet50d",
        "e3_resnet50d_ls_mixup",
        "e6_resnet50d_sk",
        "e11_assemble_resnet50",
        "e12_assemble_resnet152",
    ):
        assert f"imagenet/{row}" in names
    assert {f"finetune/{name}" for name in FAKE_DATA} <= names
    assert {f"retrieval/{name}" for name in ("sop", "cub200", "cars196")} <= names
    assert "recipes/quickstart" in names
    assert {recipe.path for recipe in list_recipes()} == set(ALL_RECIPES)
    robustness = {r.stem for r in ALL_RECIPES if r.parent.name == "robustness"}
    assert robustness == {"imagenet_c", "imagenet_p", "food101_c"}  # each run in test_task.py
