"""The hub path (hf_hub_download → sha256 → safetensors → strict load) against a local,
offline Hugging Face cache built by the test, plus save_pretrained / from_pretrained."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from assembled_lightning import create_model
from assembled_lightning.weights import (
    Weights,
    WeightsError,
    build_model,
    from_pretrained,
    save_pretrained,
)

REVISION = "0123456789abcdef0123456789abcdef01234567"
THIN = {"base_width": 8, "num_classes": 5}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 as a user would set it (huggingface_hub reads it at import time)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def publish(cache: Path, repo: str, folder: Path, revision: str = REVISION) -> None:
    """Lay a pretrained folder out as a Hugging Face cache snapshot of ``repo``@``revision``."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hub(tmp_path: Path, offline: None) -> tuple[Path, torch.nn.Module, Weights]:
    """A thin Assemble-ResNet-50 published as ``org/thin`` in a local cache, and its entry."""
    torch.manual_seed(0)
    source = create_model("assemble_resnet50", **THIN).eval()
    for module in source.modules():  # non-trivial BN so that a wrong load shows in the logits
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.0)
            module.running_var.data.uniform_(0.5, 1.5)
    folder = save_pretrained(source, tmp_path / "export", architecture="assemble_resnet50")
    cache = tmp_path / "hf-cache"
    publish(cache, "org/thin", folder)
    entry = Weights(
        name="assemble_resnet50.test",
        model="assemble_resnet50",
        hf_repo="org/thin",
        revision=REVISION,
        sha256=sha256(folder / "model.safetensors"),
        config_overrides={"base_width": 8},
        meta={"num_classes": 5, "preprocessing_type": "imagenet_224_256"},
    )
    return cache, source, entry


def logits(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 64, 64))


def test_offline_hub_download_loads_the_published_weights(hub) -> None:  # type: ignore[no-untyped-def]
    cache, source, entry = hub
    model = build_model("assemble_resnet50", weights=entry, cache_dir=cache)
    assert torch.equal(logits(model), logits(source))


def test_features_only_with_hub_weights_gives_the_published_models_maps(hub) -> None:  # type: ignore[no-untyped-def]
    cache, source, entry = hub
    features = build_model(
        "assemble_resnet50", weights=entry, cache_dir=cache, features_only=True, out_indices=(2, 4)
    ).eval()
    captured: dict[str, torch.Tensor] = {}  # the published model's own layer2 / layer4 outputs
    for name in ("layer2", "layer4"):
        module = getattr(source, name)
        module.register_forward_hook(lambda _m, _i, out, name=name: captured.update({name: out}))
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        source.eval()(images)
        maps = features(images)
    assert len(maps) == 2
    assert torch.equal(maps[0], captured["layer2"]) and torch.equal(maps[1], captured["layer4"])


def test_a_branch_revision_is_refused_for_a_hosted_entry(hub) -> None:  # type: ignore[no-untyped-def]
    """A branch follows the repository, so the sha256 could no longer match: pin a commit."""
    _, _, entry = hub
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"revision 'main' is not a 40-hex-digit commit"):
        replace(entry, revision="main")


def test_wrong_checksum_is_refused(hub) -> None:  # type: ignore[no-untyped-def]
    cache, _, entry = hub
    from dataclasses import replace

    with pytest.raises(WeightsError, match="checksum mismatch"):
        build_model("assemble_resnet50", weights=replace(entry, sha256="0" * 64), cache_dir=cache)


def test_truncated_file_gives_a_clear_error(hub) -> None:  # type: ignore[no-untyped-def]
    cache, _, entry = hub
    snapshot = cache / "models--org--thin" / "snapshots" / REVISION
    blob = snapshot / "model.safetensors"
    data = blob.read_bytes()
    blob.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):  # a folder has no sha256
        from_pretrained(snapshot)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        build_model("assemble_resnet50", weights=entry, cache_dir=cache)


def test_weights_of_another_architecture_name_the_mismatched_keys(  # type: ignore[no-untyped-def]
    hub, tmp_path: Path
) -> None:
    cache, _, entry = hub
    from dataclasses import replace

    other = save_pretrained(create_model("resnet50", **THIN), tmp_path / "r50")
    publish(cache, "org/r50", other)
    wrong = replace(entry, hf_repo="org/r50", sha256=sha256(other / "model.safetensors"))
    with pytest.raises(WeightsError) as error:
        build_model("assemble_resnet50", weights=wrong, cache_dir=cache)
    message = str(error.value)
    assert "missing" in message and "layer1.big.0.conv1.weight" in message
    assert "unexpected: layer1.0." in message and "shape mismatch" in message


def test_num_classes_override_builds_a_new_head_and_loads_the_rest(hub) -> None:  # type: ignore[no-untyped-def]
    cache, source, entry = hub
    model = build_model("assemble_resnet50", weights=entry, cache_dir=cache, num_classes=3)
    assert model.fc.out_features == 3
    source_state, state = source.state_dict(), model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(value, source_state[key]), key
    features = model.eval().forward_features(torch.randn(1, 3, 64, 64))
    assert features.shape == (1, 256, 2, 2)


def test_missing_file_offline_explains_what_to_do(hub) -> None:  # type: ignore[no-untyped-def]
    cache, _, entry = hub
    from dataclasses import replace

    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        build_model(
            "assemble_resnet50", weights=replace(entry, hf_repo="org/absent"), cache_dir=cache
        )


def test_from_pretrained_reads_a_repo_id_from_the_cache(hub) -> None:  # type: ignore[no-untyped-def]
    cache, source, _ = hub
    model = from_pretrained("org/thin", revision=REVISION, cache_dir=cache)
    assert torch.equal(logits(model), logits(source))


def test_save_pretrained_round_trip_and_model_card(tmp_path: Path) -> None:
    model = create_model("se_mobilenet_v1", num_classes=7, width_multiplier=0.25).eval()
    folder = save_pretrained(
        model, tmp_path / "out", architecture="se_mobilenet_v1", meta={"metrics": {"top1": 1.0}}
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == "mobilenet" and config["config"]["width_multiplier"] == 0.25
    card = (folder / "README.md").read_text()
    assert "se_mobilenet_v1" in card and "| top1 | 1.0 |" in card
    loaded = from_pretrained(folder)
    assert torch.equal(logits(loaded), logits(model))


def test_pretrained_folder_without_config_is_explained(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"has no config\.json"):
        from_pretrained(tmp_path)


def test_lightning_and_plain_checkpoint_files_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_model("resnet18", num_classes=4, base_width=8).eval()
    plain, lightning = tmp_path / "model.pt", tmp_path / "last.ckpt"
    torch.save(source.state_dict(), plain)
    prefixed = {f"model.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": prefixed, "epoch": 3}, lightning)
    for path in (plain, lightning):
        model = build_model("resnet18", weights=str(path), num_classes=4, base_width=8)
        assert torch.equal(logits(model), logits(source))
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        build_model("resnet18", weights=str(tmp_path / "broken.ckpt"))
