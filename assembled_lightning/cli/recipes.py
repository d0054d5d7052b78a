"""``assembled-lightning recipes``: list, show or copy the shipped recipes."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from ..recipes import get_recipe, list_recipes
from .common import PROG, CommandError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recipes",
        help="list, show or copy the shipped recipes (the paper's runs, the quickstart)",
        description="The recipes ship with the package: run one by name "
        f"(`{PROG} fit --config quickstart`) or copy it to edit it.",
    )
    actions = parser.add_subparsers(dest="action")
    actions.add_parser("list", help="every recipe with its summary (the default)")
    show = actions.add_parser("show", help="print a recipe's YAML")
    show.add_argument("name", help="recipe name, e.g. quickstart or finetune/food101")
    copy = actions.add_parser("copy", help="copy a recipe to a file you can edit")
    copy.add_argument("name", help="recipe name, e.g. quickstart or finetune/food101")
    copy.add_argument(
        "destination", nargs="?", help="file or existing folder (default: ./<name>.yaml)"
    )
    copy.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    if args.action in (None, "list"):
        recipes = list_recipes()
        width = max(len(recipe.name) for recipe in recipes)
        for recipe in recipes:
            print(f"{recipe.name:<{width}}  {recipe.summary}")
        print(f"\nrun one with `{PROG} fit --config NAME`; copy it with `{PROG} recipes copy NAME`")
        return 0
    recipe = get_recipe(args.name)
    if args.action == "show":
        print(recipe.path.read_text(encoding="utf-8"), end="")
        return 0
    destination = Path(args.destination or f"{recipe.path.stem}.yaml")
    if destination.is_dir():
        destination = destination / recipe.path.name
    if destination.exists() and not args.force:
        raise CommandError(f"{destination} exists; pass --force to overwrite it")
    shutil.copyfile(recipe.path, destination)
    print(f"copied {recipe.name} to {destination}")
    return 0
