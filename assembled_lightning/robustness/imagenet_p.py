"""ImageNet-P (Hendrycks & Dietterich, ICLR 2019): sequences of gradually perturbed images,
scored by how often the top-1 prediction flips between frames (mFR).

Two layouts are read:

* the released one, ``<root>/<perturbation>/<wnid>/<name>.mp4`` (H.264, 224×224; decoded with
  PyAV: ``pip install "assembled-lightning[video]"``);
* frame folders, ``<root>/<perturbation>/<wnid>/<name>/<frame>.png`` (or ``.jpg``/``.JPEG``),
  frames in file-name order — e.g. the output of ``ffmpeg -i name.mp4 name/%02d.png``, which
  needs no video decoder in Python.

A noise perturbation of difficulty 2 or 3 is its own folder (``gaussian_noise_2``), as released.
Each batch is one video: its frames (``1×T×3×H×W`` uint8), label, id and perturbation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.decode import decode_image
from ..data.samples import relative_id
from ..data.transforms import Normalization, Normalize
from .baselines import ALL_IMAGENET_P_PERTURBATIONS, IMAGENET_P_PERTURBATIONS

IMAGENET_P_LAYOUT = """  <root>/<perturbation>/<wnid>/<name>.mp4      (released; read with PyAV)
  <root>/<perturbation>/<wnid>/<name>/<frame>.png  (frame folders, frames in name order)
  e.g. <root>/gaussian_noise/n01440764/ILSVRC2012_val_00000293.mp4
Get ImageNet-P from https://zenodo.org/record/3565846 (extract the tar files into <root>)."""

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def perturbation_and_difficulty(folder_name: str) -> tuple[str, int]:
    """``gaussian_noise_2`` → (``gaussian_noise``, 2); ``rotate`` → (``rotate``, 1)."""
    match = re.fullmatch(r"(.+?)_([23])", folder_name)
    if match and match.group(1) in ALL_IMAGENET_P_PERTURBATIONS:
        return match.group(1), int(match.group(2))
    if folder_name not in ALL_IMAGENET_P_PERTURBATIONS:
        raise ValueError(
            f"unknown ImageNet-P perturbation {folder_name!r}; known: "
            f"{', '.join(ALL_IMAGENET_P_PERTURBATIONS)} (noise ones also with _2 / _3)"
        )
    return folder_name, 1


def read_video_frames(path: Path) -> torch.Tensor:
    """All frames of an ``.mp4`` as uint8 T×3×H×W (RGB)."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            f"reading {path} needs PyAV: pip install 'assembled-lightning[video]' (or convert "
            "the videos to frame folders with ffmpeg, see the ImageNet-P layout)"
        ) from error
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as error:
        raise ValueError(f"{path} is not a readable video ({error}); re-extract it") from error
    if not frames:
        raise ValueError(f"{path} has no video frames; re-extract it")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def read_frame_folder(folder: Path) -> torch.Tensor:
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise ValueError(f"{folder} has no frames ({', '.join(FRAME_SUFFIXES)})")
    images = [decode_image(p) for p in frames]
    if len({tuple(image.shape) for image in images}) != 1:
        raise ValueError(f"the frames of {folder} differ in size")
    return torch.stack(images)


class ImageNetPVideos(Dataset[dict[str, Any]]):
    """The videos of some perturbations as items (``frames``, ``target``, ``sample_id``,
    ``perturbation``, ``difficulty``)."""

    def __init__(self, root: Path, folders: list[str], classes: list[str] | None = None) -> None:
        self.root = root
        self.videos: list[tuple[Path, int, str, int]] = []
        found_classes: set[str] = set()
        listed: list[tuple[str, Path]] = []
        for name in folders:
            folder = root / name
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"ImageNet-P perturbation folder {folder} is missing.\n"
                    f"Expected layout:\n{IMAGENET_P_LAYOUT}"
                )
            for wnid_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                found_classes.add(wnid_dir.name)
                listed += [(name, video) for video in sorted(wnid_dir.iterdir())]
        self.classes = classes or sorted(found_classes)
        index = {wnid: i for i, wnid in enumerate(self.classes)}
        for name, video in listed:
            if not (video.suffix.lower() == ".mp4" or video.is_dir()):
                continue
            wnid = video.parent.name
            if wnid not in index:
                raise ValueError(f"{video.parent} is not one of the {len(index)} classes")
            perturbation, difficulty = perturbation_and_difficulty(name)
            self.videos.append((video, index[wnid], perturbation, difficulty))
        if not self.videos:
            raise FileNotFoundError(
                f"no videos under {root} for {folders}.\nExpected layout:\n{IMAGENET_P_LAYOUT}"
            )

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label, perturbation, difficulty = self.videos[index]
        frames = read_video_frames(path) if path.is_file() else read_frame_folder(path)
        return {
            "frames": frames,
            "target": label,
            "sample_id": relative_id(path, self.root),
            "perturbation": perturbation,
            "difficulty": difficulty,
        }


class ImageNetPDataModule(L.LightningDataModule):
    """ImageNet-P for :class:`~.task.RobustnessTask`: one video per batch, frames normalised on
    the device; under DDP the videos are shared out without padding.

    Args:
        root: The ImageNet-P folder (layout in the error message when it is missing).
        perturbations: Folder names to score (default: the 10 test perturbations of mFR, at
            difficulty 1); noise difficulties as ``gaussian_noise_2`` etc.
        num_classes: Classes expected (1000; fewer for a subset).
        normalization: ``original`` (converted TF weights) or ``torchvision``.
        num_workers: Loader worker processes.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        perturbations: list[str] | None = None,
        num_classes: int = 1000,
        normalization: Normalization = "original",
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.folders = list(perturbations or IMAGENET_P_PERTURBATIONS)
        for name in self.folders:
            perturbation_and_difficulty(name)  # a typo fails here, listing the known names
        self.expected_num_classes = num_classes
        self.normalize = Normalize(normalization)
        self.num_workers = num_workers
        self.videos: ImageNetPVideos | None = None

    @property
    def num_classes(self) -> int:
        return self.expected_num_classes

    def setup(self, stage: str | None = None) -> None:
        if self.videos is None:
            if not self.root.is_dir():
                raise FileNotFoundError(
                    f"ImageNet-P not found at {self.root}.\nExpected layout:\n{IMAGENET_P_LAYOUT}"
                )
            self.videos = ImageNetPVideos(self.root, self.folders)
            if len(self.videos.classes) != self.expected_num_classes:
                raise ValueError(
                    f"{self.root} has {len(self.videos.classes)} classes, expected "
                    f"{self.expected_num_classes}: check the data root (or set num_classes)"
                )

    def test_dataloader(self) -> DataLoader[Any]:
        self.setup("test")
        assert self.videos is not None
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(
                self.videos,
                num_replicas=self.trainer.world_size,
                rank=self.trainer.global_rank,
                shuffle=False,
            )
        return DataLoader(self.videos, batch_size=1, sampler=sampler, num_workers=self.num_workers)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> Any:
        batch["frames"] = self.normalize.to(batch["frames"].device)(batch["frames"])
        return batch
