"""The recipes shipped with the package: LightningCLI YAML configs of the paper's runs.

They live inside the package so that a wheel install has them too. A recipe is named by its
path under this folder without ``.yaml`` (``quickstart``, ``imagenet/e11_assemble_resnet50``,
``finetune/food101``) or, when unambiguous, by its file stem alone (``food101``). Names are
looked up in the list of shipped files, never joined onto a path, so no name can reach a file
outside this folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path

    @property
    def summary(self) -> str:
        """The first comment line of the file (each recipe opens with one)."""
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").rstrip(" :,;")
        return ""


def list_recipes() -> list[Recipe]:
    """Every shipped recipe, sorted by name."""
    return [
        Recipe(path.relative_to(RECIPES_DIR).with_suffix("").as_posix(), path)
        for path in sorted(RECIPES_DIR.rglob("*.yaml"))
    ]


def find_recipe(name: str) -> Recipe | None:
    """The recipe called ``name`` (full name or unique stem, ``.yaml`` optional), else None."""
    name = name.removesuffix(".yaml")
    recipes = list_recipes()
    exact = [recipe for recipe in recipes if recipe.name == name]
    if exact:
        return exact[0]
    by_stem = [recipe for recipe in recipes if recipe.path.stem == name]
    return by_stem[0] if len(by_stem) == 1 else None


def get_recipe(name: str) -> Recipe:
    """Like :func:`find_recipe`, but an unknown name raises an error listing the known ones."""
    recipe = find_recipe(name)
    if recipe is None:
        known = ", ".join(recipe.name for recipe in list_recipes())
        raise ValueError(
            f"no recipe named {name!r}; shipped recipes: {known} "
            "(`assembled-lightning recipes` lists them with a summary)"
        )
    return recipe
