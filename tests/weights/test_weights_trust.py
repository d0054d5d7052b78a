"""Only pinned, checksummed weights are downloaded, and misdirected calls say where to go
(issue #10, item 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import assembled_lightning.weights.hub as hub
import assembled_lightning.weights.pretrained as pretrained
from assembled_lightning import create_model
from assembled_lightning.weights import WEIGHTS, Weights, WeightsError, build_model, from_pretrained

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "ab" * 32


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the hub fails the test (it used to retry for 26 s first)."""

    def download(*args: object, **kwargs: object) -> Path:
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(hub, "download_file", download)
    monkeypatch.setattr(pretrained, "download_file", download)


@pytest.mark.parametrize(
    ("model", "weights"),
    [
        ("assemble_resnet50", "DEFAULT"),
        ("assemble_resnet50", "assemble_resnet50.tf_in1k"),
        ("assemble_resnet152", WEIGHTS["assemble_resnet152.tf_in1k"]),
    ],
)
def test_unhosted_entries_are_refused_at_once_with_the_conversion_hint(
    no_downloads: None, model: str, weights: str | Weights
) -> None:
    with pytest.raises(WeightsError) as info:
        build_model(model, weights=weights)
    message = str(info.value)
    assert message.startswith(f"weights {model}.tf_in1k are not uploaded")
    assert "assembled-lightning convert-tf" in message and f"--model {model}" in message
    assert "--drop-background" in message and "weights=" in message


@pytest.mark.parametrize(
    ("revision", "sha256", "message"),
    [
        ("main", SHA256, r"revision 'main'.*40-hex-digit commit"),
        ("v1.0", SHA256, r"revision 'v1\.0'"),
        (COMMIT, None, r"sha256 None.*64 hex digits"),
        (COMMIT, "abc", r"sha256 'abc'"),
    ],
)
def test_a_hosted_entry_must_pin_a_commit_and_a_sha256(
    revision: str, sha256: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Weights(
            name="resnet50.test",
            model="resnet50",
            hf_repo="org/resnet50",
            revision=revision,
            sha256=sha256,
            meta={"num_classes": 1000, "hosted": True},
        )


def test_a_pinned_entry_and_an_unhosted_placeholder_are_accepted() -> None:
    pinned = Weights("resnet50.test", "resnet50", "org/r50", revision=COMMIT, sha256=SHA256)
    assert pinned.hosted  # an entry that does not say otherwise is one to download
    placeholder = Weights("resnet50.todo", "resnet50", "org/r50", meta={"hosted": False})
    assert not placeholder.hosted


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_every_registered_entry_is_either_pinned_or_marked_unhosted(name: str) -> None:
    entry = WEIGHTS[name]
    if entry.hosted:
        assert len(entry.revision) == 40 and entry.sha256 is not None and len(entry.sha256) == 64


@pytest.mark.parametrize("keyword", ["pretrained", "weights"])
def test_create_model_with_pretrained_points_to_the_weights_api(keyword: str) -> None:
    arguments: dict[str, Any] = {keyword: True if keyword == "pretrained" else "DEFAULT"}
    with pytest.raises(TypeError) as info:
        create_model("assemble_resnet50", **arguments)
    message = str(info.value)
    assert "unknown ResNetConfig field" not in message
    assert "build_model('assemble_resnet50', weights='DEFAULT')" in message
    assert "torch.hub.load" in message


@pytest.mark.parametrize(
    "source", ["/no/such/folder", "./no/such", "../absent", "~/nowhere", "a/b/c"]
)
def test_from_pretrained_of_a_missing_folder_says_so(no_downloads: None, source: str) -> None:
    with pytest.raises(WeightsError, match=rf"folder {source} does not exist"):
        from_pretrained(source)


def test_from_pretrained_of_a_missing_path_object_says_so(no_downloads: None) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        from_pretrained(Path("absent"))


def test_from_pretrained_of_an_invalid_repo_id_says_what_it_is(no_downloads: None) -> None:
    """Neither a folder nor an ``owner/name`` repo id: no HF validation traceback."""
    with pytest.raises(WeightsError, match=r"not a folder.*owner/name"):
        from_pretrained("bad repo id!")
