"""ClassificationTask: weight-decay groups, LR, a training step with every regulariser."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.tasks import ClassificationTask, parameter_groups


def fit_on_cpu(
    task: L.LightningModule, data: L.LightningDataModule, folder, epochs: int
) -> L.Trainer:  # type: ignore[no-untyped-def]
    """A quiet CPU fit with no logger or checkpoints."""
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=folder,
    )
    trainer.fit(task, datamodule=data)
    return trainer


THIN = {"base_width": 8, "block_counts": [2, 2, 2, 1], "dropblock": True}


def test_weight_decay_groups_parameter_by_parameter() -> None:
    task = ClassificationTask("assemble_resnet50", num_classes=5, model_overrides=THIN)
    for decay_bias in (True, False):
        groups = {g["name"]: g for g in parameter_groups(task.model, 1e-4, decay_bias)}
        decayed = {id(p) for p in groups["decay"]["params"]}
        assert groups["decay"]["weight_decay"] == 1e-4 and groups["no_decay"]["weight_decay"] == 0
        for name, parameter in task.model.named_parameters():
            owner = task.model.get_submodule(name.rsplit(".", 1)[0])
            is_bn = isinstance(owner, torch.nn.BatchNorm2d)
            expected = not is_bn and (decay_bias or not name.endswith(".bias"))
            assert (id(parameter) in decayed) == expected, name
        assert (
            "fc.bias" in {n for n, p in task.model.named_parameters() if id(p) in decayed}
        ) == decay_bias


def test_training_step_with_mixup_distillation_and_dropblock() -> None:
    L.seed_everything(0)
    task = ClassificationTask(
        "assemble_resnet50",
        num_classes=4,
        model_overrides=THIN,
        mixup_alpha=0.2,
        kd_weight=1.0,
        kd_temperature=2.0,
        dropblock_keep_prob=(0.9, 0.7),
    )
    batch = {
        "image": torch.randn(4, 3, 32, 32),
        "target": torch.tensor([0, 1, 2, 3]),
        "teacher_logits": torch.randn(4, 4),
    }
    loss = task.training_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    with pytest.raises(KeyError, match="teacher_logits"):
        task.training_loss({"image": batch["image"], "target": batch["target"]})


def test_fit_sets_lr_schedule_and_keep_prob(tmp_path) -> None:  # type: ignore[no-untyped-def]
    L.seed_everything(0)
    data = SyntheticShapesDataModule(num_classes=4, train_size=64, val_size=16, batch_size=16)
    task = ClassificationTask(
        "assemble_resnet50",
        num_classes=4,
        model_overrides=THIN,
        base_lr=0.4,
        batch_denominator=64,
        warmup_epochs=1,
        dropblock_keep_prob=(1.0, 0.8),
    )
    trainer = fit_on_cpu(task, data, tmp_path, epochs=2)
    assert task.learning_rate == pytest.approx(0.4 * 16 / 64)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)  # cosine end
    layers = [m for m in task.model.modules() if hasattr(m, "keep_prob")]
    last_step, total = 7, 8  # set before the last of 2 epochs × 4 steps
    expected = 1.0 + (0.8 - 1.0) * last_step / total
    assert layers and all(m.keep_prob.item() == pytest.approx(expected) for m in layers)


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        ClassificationTask("resnet5")
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassificationTask("resnet18", num_classes=3, label_smoothing=1.5)
    with pytest.raises(ValueError, match="dropblock_keep_prob"):
        ClassificationTask("resnet18", num_classes=3, dropblock_keep_prob=(1.0, 0.0))


def test_ema_tracks_the_weights_and_answers_in_eval(tmp_path) -> None:  # type: ignore[no-untyped-def]
    L.seed_everything(0)
    data = SyntheticShapesDataModule(num_classes=4, train_size=64, val_size=16, batch_size=16)
    task = ClassificationTask(
        "resnet18",
        num_classes=4,
        model_overrides={"base_width": 8},
        base_lr=0.1,
        batch_denominator=16,
        warmup_epochs=0,
        ema_decay=0.9,
    )
    fit_on_cpu(task, data, tmp_path, epochs=1)
    assert task.ema is not None and int(task.ema.n_averaged) == 4  # one update per step
    live = dict(task.model.named_parameters())
    averaged = dict(task.ema.module.named_parameters())
    assert any(not torch.equal(live[k], averaged[k]) for k in live)
    images = torch.randn(2, 3, 32, 32)
    task.eval()
    with torch.no_grad():
        assert torch.equal(task(images), task.ema.module(images))
    with pytest.raises(ValueError, match="ema_decay"):
        ClassificationTask("resnet18", num_classes=3, ema_decay=1.5)


def test_ema_is_the_exponential_average_of_the_weights_after_each_step() -> None:
    """e₁ = w₁, eₜ = d·eₜ₋₁ + (1 − d)·wₜ (torch.optim.swa_utils' EMA): after three steps
    e₃ = d²·w₁ + d(1 − d)·w₂ + (1 − d)·w₃, for parameters and BN statistics alike. d = 0.9,
    so a swap of d and 1 − d shows (it would not at d = 0.5)."""
    decay = 0.9
    task = ClassificationTask(
        "resnet18", num_classes=4, model_overrides={"base_width": 8}, ema_decay=decay
    )
    assert task.ema is not None
    keys = ["conv1.weight", "fc.bias", "bn1.running_mean"]
    generator = torch.Generator().manual_seed(0)
    snapshots = []
    for _ in range(3):  # three optimizer steps, each ending in the task's batch-end hook
        live = task.model.state_dict()  # shares storage with the model
        for key in keys:
            live[key].copy_(torch.randn(live[key].shape, generator=generator))
        snapshots.append({key: task.model.state_dict()[key].clone() for key in keys})
        task.on_train_batch_end(None, None, 0)
    averaged = task.ema.module.state_dict()
    for key in keys:
        w1, w2, w3 = (snapshot[key] for snapshot in snapshots)
        expected = decay**2 * w1 + decay * (1 - decay) * w2 + (1 - decay) * w3
        assert torch.allclose(averaged[key], expected, atol=1e-6), key
        assert not torch.allclose(averaged[key], w3, atol=1e-3)  # not simply the live weights


@pytest.mark.parametrize("kd_weight", [1.0, 0.3])
def test_training_loss_with_mixup_and_kd_equals_the_hand_computation(kd_weight: float) -> None:
    task = ClassificationTask(
        "resnet18",
        num_classes=3,
        model_overrides={"base_width": 8},
        label_smoothing=0.1,
        mixup_alpha=0.2,
        kd_weight=kd_weight,
        kd_temperature=2.0,
    )
    task.eval()  # BN in eval: the same network function for both computations
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    teacher = torch.randn(4, 3)
    torch.manual_seed(3)
    loss = task.training_loss({"image": images, "target": targets, "teacher_logits": teacher})
    torch.manual_seed(3)
    lam = torch.distributions.Beta(torch.tensor(0.2), torch.tensor(0.2)).sample((2,))
    mixed = lam.view(2, 1, 1, 1) * images[:2] + (1 - lam.view(2, 1, 1, 1)) * images[2:]
    one_hot = torch.eye(3)[targets]
    mixed_targets = lam[:, None] * one_hot[:2] + (1 - lam[:, None]) * one_hot[2:]
    probs = torch.softmax(teacher / 2.0, -1)
    mixed_teacher = lam[:, None] * probs[:2] + (1 - lam[:, None]) * probs[2:]
    with torch.no_grad():
        logits = task.model(mixed)
    smoothed = mixed_targets * 0.9 + 0.1 / 3
    hard = -(smoothed * torch.log_softmax(logits, -1)).sum(-1).mean()
    soft = 4.0 * -(mixed_teacher * torch.log_softmax(logits / 2.0, -1)).sum(-1).mean()
    assert loss.item() == pytest.approx((hard + kd_weight * soft).item(), rel=1e-5)
    assert abs(soft.item()) > 0.1  # the KD term is large enough for its weight to show


def test_fine_tune_warm_start_can_drop_bn_statistics_as_the_original(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from assembled_lightning import create_model
    from assembled_lightning.weights import save_pretrained

    source = create_model("resnet18", num_classes=5, base_width=8)
    for bn in (m for m in source.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.fill_(0.5)
        bn.weight.data.fill_(0.7)
    folder = save_pretrained(source, tmp_path / "weights", architecture="resnet18")
    for reset in (False, True):
        task = ClassificationTask(
            "resnet18", num_classes=3, weights=str(folder), reset_bn_statistics=reset
        )
        bn = task.model.bn1
        assert torch.all(bn.weight == 0.7)  # trainable values always come from the weights
        assert torch.all(bn.running_mean == (0.0 if reset else 0.5))
        assert task.model.fc.out_features == 3
