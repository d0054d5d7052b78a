"""What every subcommand of the console script shares: its error type, ``--set`` overrides,
the DataModule loader of the image commands and the guard that turns a failed write into a
one-line error."""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROG = "assembled-lightning"


class CommandError(Exception):
    """A bad command line: printed as ``assembled-lightning CMD: error: ...``, exit status 2."""


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a Python literal value (``base_width=8``, ``anti_alias=['sconv']``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_override_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``, values as Python literals."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_override,
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def image_datamodule(path: str, command: str) -> Any:
    """A DataModule that reads image files (``parse``, ``eval_dataset``) for ``command``."""
    from ..data.datamodule_yaml import load_datamodule
    from ..data.datamodules import ImageDataModule

    data = load_datamodule(path)  # only our DataModules (data/datamodule_yaml.py)
    if not isinstance(data, ImageDataModule):
        raise CommandError(
            f"{path}: {type(data).__name__} draws its images in memory; {command} needs a "
            "DataModule that reads image files (ImageNetDataModule, Food101DataModule, ...)"
        )
    return data


@contextlib.contextmanager
def writing_to(out: str, kept: str, then: str = "") -> Iterator[None]:
    """Turn a failed write under ``out`` (full disk, read-only or missing folder) into a
    one-line error that names the file, says what was ``kept`` and how to go on; any other
    ``OSError`` (a missing input file) passes unchanged."""
    try:
        yield
    except OSError as error:
        failed = error.filename
        if failed is None:
            raise
        failed_path = Path(os.path.abspath(os.fsdecode(failed)))
        target = Path(os.path.abspath(out))
        if not (failed_path.is_relative_to(target) or target.is_relative_to(failed_path)):
            raise
        raise CommandError(
            f"cannot write {os.fsdecode(failed)}: {error.strerror or error}. {kept}: free space "
            "or fix the folder's permissions (or pick another --out), then run the same command "
            f"again{then}"
        ) from error
