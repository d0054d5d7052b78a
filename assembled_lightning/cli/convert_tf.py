"""``assembled-lightning convert-tf``: an official TF1 checkpoint → a pretrained folder."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_override_option, writing_to


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert-tf",
        help="convert an official TF1 checkpoint of clovaai/assembled-cnn",
        description="Convert a TF1 checkpoint (folder, prefix or .index file) of the original "
        "code into model.safetensors + config.json + README.md, and print a parity report.",
    )
    parser.add_argument("checkpoint", help="checkpoint folder, prefix (model.ckpt-N) or .index")
    parser.add_argument("--model", required=True, help="registered model, e.g. assemble_resnet50")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--drop-background",
        action="store_true",
        help="drop the original's background logit 0 (1001 → 1000 classes, torchvision order)",
    )
    add_override_option(
        parser, "config override (repeatable); base width, classes and BL α are inferred"
    )
    parser.add_argument("--preprocessing-type", help="eval preprocessing recorded in the meta")
    parser.add_argument("--golden", help="golden.npz (input_nhwc, logits) to check logits against")


def run(args: argparse.Namespace) -> int:
    from ..weights.convert_tf import convert_tf_checkpoint

    with writing_to(args.out, f"{args.out} holds no usable conversion"):
        report = convert_tf_checkpoint(
            args.checkpoint,
            args.model,
            args.out,
            drop_background=args.drop_background,
            overrides=dict(args.overrides),
            preprocessing_type=args.preprocessing_type,
            golden=args.golden,
        )
    print(report)
    print(f"wrote {args.out}")
    return 0
