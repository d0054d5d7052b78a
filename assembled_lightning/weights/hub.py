"""Fetch and read weight files: Hugging Face hub or a local folder → verified safetensors.

Only safetensors are ever read, so a downloaded file can never run code (no unpickling).
Downloads go through ``huggingface_hub.hf_hub_download``, which gives the user its cache,
pinned revisions, tokens and ``HF_HUB_OFFLINE`` for free.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .registry import Weights

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class WeightsError(RuntimeError):
    """Weights could not be fetched, verified or loaded; the message says what to do."""


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    repo_id: str,
    filename: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """``hf_hub_download`` with an error that says how to get the file another way."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir)  # type: ignore[arg-type]
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise WeightsError(
            f"could not fetch {filename} of {repo_id}@{revision or 'main'} from the Hugging Face "
            f"hub ({type(error).__name__}: {error}). Offline (HF_HUB_OFFLINE=1) only the local "
            "cache is searched. If you hold the official TF checkpoint, convert it with "
            "`assembled-lightning convert-tf` and pass the output folder as weights=."
        ) from error


def fetch_weights_file(weights: Weights, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download (or find in the cache) a registered entry's file and verify its sha256.

    An entry whose file is not uploaded is refused before any network access; a hosted entry
    pins a commit and a sha256 (``Weights`` checks that on construction), so what is loaded is
    exactly the file that was checked.
    """
    if not weights.hosted:
        raise WeightsError(
            f"weights {weights.name} are not uploaded yet, so there is nothing to download. "
            "Convert the official TF checkpoint (linked from the clovaai/assembled-cnn README) "
            f"yourself: `assembled-lightning convert-tf <checkpoint folder> --model "
            f"{weights.model} --drop-background --out <folder>`, then pass weights='<folder>'."
        )
    assert weights.sha256 is not None  # Weights.__post_init__ requires it of hosted entries
    path = download_file(weights.hf_repo, weights.filename, weights.revision, cache_dir)
    verify_sha256(path, weights.sha256)
    return path


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise WeightsError(
            f"checksum mismatch for {path}: sha256 {actual}, expected {expected}. The file is "
            "damaged or not the published one: delete it (or its Hugging Face cache entry) and "
            "download it again."
        )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file; a truncated or foreign file raises ``WeightsError``."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"{path} is not a readable safetensors file ({error}); it is truncated or corrupt: "
            "download or convert it again"
        ) from error
