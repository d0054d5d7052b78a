"""StagedUnfreeze under Lightning ``strategy="ddp"`` on two CPU processes (gloo): every parameter
is in DDP from step 0 (no unused-parameter error, real gradients everywhere), frozen stages stay
bitwise still on both ranks, layer4 trains from its unfreeze epoch, and the ranks end with the
same weights. The ranks run ddp_finetuning.py."""

from __future__ import annotations

from pathlib import Path

from two_ranks import run_two_ranks

SCRIPT = Path(__file__).with_name("ddp_finetuning.py")
STILL = {"weights": False, "stats": False}
TRAINING = {"weights": True, "stats": True}


def test_staged_unfreeze_under_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    ranks = run_two_ranks(SCRIPT, tmp_path, timeout=180, lightning=True)
    for rank in ranks:
        assert rank["steps"] == 4  # 2 epochs × 16 images / (2 ranks × 4)
        assert all(total > 0 for total in rank["smallest_gradient_sums"].values())
        assert len(rank["smallest_gradient_sums"]) == 6  # every stage has gradients
        first, second = rank["changes"]
        assert first == {**dict.fromkeys(first, STILL), "head": {"weights": True, "stats": False}}
        assert second["layer4"] == TRAINING and second["head"]["weights"]
        for stage in ("stem", "layer1", "layer2", "layer3"):
            assert second[stage] == STILL, stage
    assert ranks[0]["parameters"] == ranks[1]["parameters"]  # DDP kept the ranks in step
