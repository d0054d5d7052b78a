"""The reference side of the corruption benchmarks: hendrycks' ``make_imagenet_c.py`` run in its
own (old) Python environment, driven from ``corruption_speed.py`` / ``corruption_fidelity.py``.

The reference needs numpy < 2, scikit-image 0.19, Wand + ImageMagick, OpenCV and Pillow, which
do not mix with this project's environment, so it runs in a separate interpreter
(``--reference-python``) as a worker process. ``--reference-src`` is a folder holding a module
``reference.py`` whose ``CORRUPTIONS`` dict maps the 19 corruption names to the reference's
functions (and which exposes ``plasma_fractal``), next to the frost images ``frost1.png`` …
``frost6.jpg``. Nothing of the reference is part of this repository.

This file has two halves. :class:`ReferenceWorker` (project side, standard library only) starts
the worker and sends it requests; :func:`serve` (reference side, numpy + the reference only,
no torch) answers them: one JSON object per line on stdin, one JSON reply per line on stdout.
Every reference call gets a PIL image, as in the reference's own pipeline, and its result is
truncated with ``np.uint8`` as the released dataset was.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee_portrait.jpg", "hubble_deep_field.jpg")
PHOTO_DIR = Path("../shared/reference/tf/preprocessing")  # the project's test photos
FOG_WIBBLEDECAY = (2, 2, 1.7, 1.5, 1.4)  # plasma map decay per severity (make_imagenet_c.fog)
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # sampled
CROP = 224  # the side the reference hard-codes for fog's and frost's crops


def prepared_photos(folder: Path) -> np.ndarray:
    """The four test photos as N×224×224×3 uint8 after torchvision's Resize(256) +
    CenterCrop(224), the reference's preprocessing (project side: needs torchvision)."""
    from PIL import Image
    from torchvision import transforms

    prepare = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(CROP)])
    return np.stack([np.asarray(prepare(Image.open(folder / n).convert("RGB"))) for n in PHOTOS])


def seed_for(seed: int, photo: int, severity: int) -> int:
    """The NumPy seed of one reference call: distinct per (seed, photo, severity)."""
    return 1000 * seed + 10 * photo + severity


class ReferenceWorker:
    """A running reference interpreter; use as a context manager."""

    def __init__(self, python: Path, source: Path, photos: Path, threads: int) -> None:
        limits = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        command = [str(python), __file__, "--reference-src", str(source), "--photos", str(photos)]
        self._process = subprocess.Popen(
            [*command, "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **limits},
        )

    def request(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; a worker failure raises with its message."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference worker exited (code {self._process.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"reference worker, {op} {arguments}: {reply['error']}")
        return reply

    def __enter__(self) -> ReferenceWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)


# ---- reference side -------------------------------------------------------------------------


def _versions(reference: Any) -> dict[str, str]:
    """Versions of the reference interpreter's libraries and the reference module's path."""
    import cv2
    import PIL
    import scipy
    import skimage
    import wand.version

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "Pillow": PIL.__version__,
        "opencv": cv2.__version__,
        "Wand": wand.version.VERSION,
        "ImageMagick": wand.version.MAGICK_VERSION,
        "reference": str(Path(reference.__file__).resolve()),
    }


def _run(function: Any, photo: np.ndarray, severity: int) -> np.ndarray:
    """One reference call on a PIL image, truncated to uint8 as the released dataset."""
    from PIL import Image

    return np.uint8(np.asarray(function(Image.fromarray(photo), severity)))


def _time(reference: Any, photos: np.ndarray, corruption: str, images: int) -> dict[str, Any]:
    """Seconds per severity for ``images`` calls (cycling through the photos)."""
    function = reference.CORRUPTIONS[corruption]
    np.random.seed(0)
    seconds = {}
    for severity in range(1, 6):
        start = time.perf_counter()
        for i in range(images):
            _run(function, photos[i % len(photos)], severity)
        seconds[str(severity)] = time.perf_counter() - start
    return {"seconds": seconds}


def _corrupt(
    reference: Any, photos: np.ndarray, corruption: str, severity: int, seeds: list[int], out: str
) -> dict[str, Any]:
    """Outputs (seeds×N×H×W×3 uint8) with ``np.random.seed(seed_for(...))`` before each call."""
    function = reference.CORRUPTIONS[corruption]
    outputs = np.empty((len(seeds), *photos.shape), np.uint8)
    for s, seed in enumerate(seeds):
        for i, photo in enumerate(photos):
            np.random.seed(seed_for(seed, i, severity))
            outputs[s, i] = _run(function, photo, severity)
    np.savez(out, outputs=outputs)
    return {"path": out}


def _pins(reference: Any, corruption: str, severity: int) -> dict[str, np.ndarray]:
    """Draw what the reference's call is about to draw from NumPy's global RNG (same order),
    so a re-seeded call uses exactly these values."""
    import cv2

    if corruption == "fog":
        plasma = reference.plasma_fractal(wibbledecay=FOG_WIBBLEDECAY[severity - 1])
        return {"plasma": plasma[:CROP, :CROP]}
    if corruption == "frost":
        index = np.random.randint(5)
        texture = cv2.imread(str(Path(reference.__file__).parent / FROST_FILES[index]))
        top = np.random.randint(0, texture.shape[0] - CROP)
        left = np.random.randint(0, texture.shape[1] - CROP)
        crop = texture[top : top + CROP, left : left + CROP][..., [2, 1, 0]]
        return {"texture": crop, "index": np.array(index), "offset": np.array((top, left))}
    if corruption == "motion_blur":
        return {"angle": np.array(np.random.uniform(-45, 45))}
    raise ValueError(f"no pinned inputs for {corruption!r}")


def _pinned(
    reference: Any, photos: np.ndarray, corruption: str, severity: int, seeds: list[int], out: str
) -> dict[str, Any]:
    """Outputs and the random inputs each call drew (arrays with leading seeds×N axes)."""
    function = reference.CORRUPTIONS[corruption]
    outputs = np.empty((len(seeds), *photos.shape), np.uint8)
    pins: dict[str, list[np.ndarray]] = {}
    for s, seed in enumerate(seeds):
        for i, photo in enumerate(photos):
            np.random.seed(seed_for(seed, i, severity))
            for key, value in _pins(reference, corruption, severity).items():
                pins.setdefault(key, []).append(value)
            np.random.seed(seed_for(seed, i, severity))
            outputs[s, i] = _run(function, photo, severity)
    shape = (len(seeds), len(photos))
    arrays: dict[str, Any] = {k: np.stack(v).reshape(*shape, *v[0].shape) for k, v in pins.items()}
    np.savez(out, outputs=outputs, **arrays)
    return {"path": out}


def serve(source: Path, photos: np.ndarray) -> None:
    """Answer requests until stdin closes: ``info``, ``time``, ``corrupt``, ``pinned``."""
    import warnings

    warnings.simplefilter("ignore")  # the reference's deprecated calls, once per location
    sys.path.insert(0, str(source))
    import reference

    handlers: dict[str, Callable[..., dict[str, Any]]] = {
        "info": functools.partial(_versions, reference),
        "time": functools.partial(_time, reference, photos),
        "corrupt": functools.partial(_corrupt, reference, photos),
        "pinned": functools.partial(_pinned, reference, photos),
    }
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = handlers[request.pop("op")](**request)
        except Exception as error:  # report it to the driver, which raises
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-src", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True, help="N×224×224×3 uint8 .npy")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)
    serve(args.reference_src, np.load(args.photos))


if __name__ == "__main__":
    main()
