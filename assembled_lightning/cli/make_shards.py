"""``assembled-lightning make-shards``: a DataModule's split as WebDataset tar shards."""

from __future__ import annotations

import argparse
from typing import Any

from .common import image_datamodule, writing_to


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-shards",
        help="pack a DataModule's split into WebDataset tar shards for streaming",
        description="Write shard-NNNNNN.tar files and index.json from a folder-layout data set; "
        "train from them with the DataModule's train_shards=DIR.",
    )
    parser.add_argument("--data", required=True, help="YAML with class_path and init_args")
    parser.add_argument("--split", help="split to pack (default: the training split)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--samples-per-shard", type=int, default=1000, help="samples per tar")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample permutation")
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip (and count) files that do not decode as images instead of stopping",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.shards import read_index, write_shards

    data = image_datamodule(args.data, "make-shards")
    samples, classes = data.parse(args.split or data.train_split)
    kept = (
        f"The shards written so far are in {args.out}, without an index.json (so nothing "
        "reads them)"
    )
    with writing_to(args.out, kept):
        out = write_shards(
            samples,
            classes,
            args.out,
            args.samples_per_shard,
            args.seed,
            root=data.root,
            skip_bad_images=args.skip_bad_images,
        )
    index = read_index(out)
    print(
        f"wrote {index['num_samples']} samples in {len(index['shards'])} shards to {out}"
        + (f" (skipped {index['num_skipped']} bad images)" if index["num_skipped"] else "")
    )
    return 0
