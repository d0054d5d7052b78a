"""Under DDP every rank draws its own mixup λ and DropBlock masks (seed + rank), the same again
in a fresh run with the same seed, and a resumed run continues each rank's stream exactly.
Two CPU processes (gloo) started here, each running ddp_random_streams.py."""

from __future__ import annotations

from pathlib import Path

from two_ranks import run_two_ranks

SCRIPT = Path(__file__).with_name("ddp_random_streams.py")


def test_each_rank_draws_its_own_lambda_and_masks_reproducibly(tmp_path: Path) -> None:
    ranks = run_two_ranks(SCRIPT, tmp_path, timeout=300, lightning=True)

    straight = [rank["A"] for rank in ranks]
    assert len(straight[0]) == 8  # 2 epochs × 16 images · 2 passes / (2 ranks × 4)
    for step in straight[0]:
        assert len(step["lambdas"]) == 2 and step["masks"]  # 2 mixed pairs, DropBlock active
    for mine, other in zip(straight[0], straight[1], strict=True):
        assert mine["lambdas"] != other["lambdas"]  # each rank its own λ ...
        assert mine["masks"] != other["masks"]  # ... and its own masks, at every step
    for rank, run in enumerate(ranks):
        first_epoch = [step for step in run["A"] if step["epoch"] == 0]
        second_epoch = [step for step in run["A"] if step["epoch"] == 1]
        assert run["B"] == first_epoch, rank  # a fresh run with the same seed: the same draws
        assert run["C"] == second_epoch, rank  # resumed after epoch 1: continues exactly
