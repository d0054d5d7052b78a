"""The three retrieval recipes keep the paper's settings (GeM, weight decay 5e-4, ArcFace
m = 0.3 on SOP) and select on val/recall@1 of held-out classes; tests/test_recipes.py runs each
through the real CLI (fast_dev_run) on fake copies of their layouts."""

from __future__ import annotations

from pathlib import Path

import fake_retrieval_layouts as fake
import pytest
import yaml

from assembled_lightning.recipes import RECIPES_DIR

RECIPES = sorted((RECIPES_DIR / "retrieval").glob("*.yaml"))
FAKE_DATA = fake.BY_RECIPE


def test_every_retrieval_recipe_has_fake_data() -> None:
    """tests/test_recipes.py runs each recipe through the real CLI on these layouts."""
    assert {recipe.stem for recipe in RECIPES} == set(FAKE_DATA)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_keeps_the_papers_settings(recipe: Path) -> None:
    config = yaml.safe_load(recipe.read_text())
    task = config["model"]["init_args"]
    assert task["pooling"] == "gem" and task["weight_decay"] == 5e-4
    if recipe.stem == "sop":
        assert (task["head"], task["margin"], task["recall_ks"]) == (
            "arcface",
            0.3,
            [1, 10, 100, 1000],
        )
    else:
        assert (task["head"], task["recall_ks"]) == ("norm_softmax", [1, 2, 4, 8])
    best, last = config["trainer"]["callbacks"]  # the best (first: --ckpt_path best), last.ckpt
    assert best["init_args"] == {"monitor": "val/recall@1", "mode": "max"}
    assert last["init_args"]["filename"] == "last" and "monitor" not in last["init_args"]
    assert config["data"]["init_args"]["val_classes"] > 0  # selected on held-out classes
