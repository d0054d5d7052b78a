"""``assembled-lightning make-imagenet-c``: ImageNet-C's layout from a folder of images."""

from __future__ import annotations

import argparse
from typing import Any

from .common import writing_to


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-imagenet-c",
        help="write ImageNet-C's layout from a folder of images (e.g. ImageNet's val/)",
        description="As the reference generator: Resize(256) + CenterCrop(224), the "
        "corruption, uint8 truncation, JPEG quality 85, into OUT/<corruption>/<severity>/...; "
        "a rerun skips the files already written.",
    )
    parser.add_argument("source", help="folder of images (class folders <wnid>/*.JPEG kept)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--corruptions", nargs="+", help="names (default: all 19)")
    parser.add_argument(
        "--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="(default: 1 … 5)"
    )
    parser.add_argument("--resize", type=int, default=256, help="shorter side (default 256)")
    parser.add_argument("--crop", type=int, default=224, help="centre crop (default 224)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--num-workers", type=int, default=2, help="loader processes")
    parser.add_argument("--device", default="cpu", help="where to corrupt (cpu, cuda, ...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random corruptions")
    parser.add_argument(
        "--frost-textures",
        help="folder with the reference's frost1.png … frost5.jpg (default: the procedural frost)",
    )


def run(args: argparse.Namespace) -> int:
    from ..robustness.generate import make_imagenet_c

    kept = "Every image written so far is complete (partial files end in .partial)"
    with writing_to(args.out, kept):
        summary = make_imagenet_c(
            args.source,
            args.out,
            args.corruptions,
            args.severities,
            resize=args.resize,
            crop=args.crop,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
            seed=args.seed,
            frost_textures=args.frost_textures,
        )
    print(
        f"{summary.images} images: wrote {summary.written} corrupted files to {args.out}"
        + (f", kept {summary.already_there} already there" if summary.already_there else "")
        + (f", skipped {len(summary.bad_images)} bad images" if summary.bad_images else "")
    )
    return 0
