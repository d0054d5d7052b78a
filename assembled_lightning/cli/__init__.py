"""The ``assembled-lightning`` console script.

LightningCLI subcommands ``fit``, ``validate``, ``test``, ``predict`` (``--config`` takes a
shipped recipe's name or a YAML path; :mod:`.lightning_commands`), plus one module per command
of our own: ``recipes`` (list, show or copy the shipped recipes), ``convert-tf`` (official TF
checkpoint → pretrained folder), ``extract-logits`` (teacher logits for distillation),
``make-shards`` (WebDataset shards), ``make-imagenet-c`` (ImageNet-C's layout from a folder of
images) and ``export`` (ONNX / ExportedProgram, FP32 or int8, with a preprocessing sidecar).
Each command module has ``add_parser(subparsers)`` and ``run(args) -> exit status``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import convert_tf, export, extract_logits, make_imagenet_c, make_shards, recipes
from .common import PROG, CommandError
from .lightning_commands import LIGHTNING_COMMANDS, lightning_cli, resolve_config_arguments

COMMANDS = {
    "recipes": recipes,
    "convert-tf": convert_tf,
    "extract-logits": extract_logits,
    "make-shards": make_shards,
    "make-imagenet-c": make_imagenet_c,
    "export": export,
}
"""Our own subcommands, each a module with ``add_parser`` and ``run``."""


def top_level_parser() -> argparse.ArgumentParser:
    """Every subcommand with its one-line help; LightningCLI parses its own four itself."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Assemble-ResNet (arXiv 2001.06268) for PyTorch and Lightning: train the "
        "paper's recipes, convert the official TF checkpoints, prepare distillation and "
        "streaming data.",
        epilog=f"`{PROG} COMMAND --help` explains a command; `{PROG} fit --model.help "
        "ClassificationTask` and `--data.help Food101DataModule` explain every option.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in LIGHTNING_COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    for command in COMMANDS.values():
        command.add_parser(subparsers)
    return parser


def report_error(command: str, error: Exception) -> int:
    print(f"{PROG} {command}: error: {error}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments[0] if arguments else ""
    if command in LIGHTNING_COMMANDS or command.startswith("--config"):
        try:
            arguments = resolve_config_arguments(arguments)
        except CommandError as error:
            return report_error(command, error)
        lightning_cli(arguments)
        return 0
    args = top_level_parser().parse_args(arguments)  # --help, no or an unknown command: exits
    try:
        return COMMANDS[args.command].run(args)
    except (CommandError, OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        return report_error(args.command, e)


__all__ = ["main", "resolve_config_arguments"]
