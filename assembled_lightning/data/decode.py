"""Decode any image file to RGB ``uint8 [3, H, W]``, or fail with a message naming the file.

The format is found from the content, not the file name (ImageNet has PNG data in files named
``.JPEG``). JPEGs are decoded with libjpeg's defaults — by torchvision's libjpeg-turbo straight
into a tensor for plain RGB and grayscale files (faster), by Pillow otherwise, with the same
pixels — which equal the original's ``tf.image.decode_jpeg(channels=3,
dct_method='INTEGER_ACCURATE')`` on the preprocessing fixtures (ORIGINAL.md §4); no draft mode
within the pixel bound, no colour management.

Every other kind becomes RGB the way the original's TFRecord builder saw it, which re-encoded PNG
and CMYK files through ``tf.image.decode_png(channels=3)`` (ORIGINAL.md §4):

- alpha (``RGBA``, ``LA``, palette transparency) is dropped, keeping the stored colours, as
  TF's PNG decoder (``png_set_strip_alpha``) and torchvision's ``convert("RGB")`` loader do;
  compositing on white would give the fine-tuned and converted weights inputs that neither
  pipeline ever produced;
- 16-bit grayscale keeps the high byte, as TF's ``png_set_strip_16`` (and Pillow's own 16-bit
  RGB PNG decoding) do;
- grayscale (``L``, ``1``) is replicated into three equal channels; CMYK uses Pillow's
  conversion.

EXIF orientation is not applied: the original's ``decode_jpeg`` ignores it, so a rotated photo
reaches the model exactly as stored. Truncated or corrupt files raise
:class:`ImageDecodeError` instead of yielding half-decoded pixels; so do 32-bit integer and
floating-point images (TIFF), which Pillow's RGB conversion would clip or blacken.

Bad paths fail at once with an ``OSError`` that says what is wrong: a directory named like an
image, a symbolic-link loop, a path under a regular file, no permission. Files are opened
non-blocking and must be regular files, so a FIFO fails instead of waiting for a writer forever.
:func:`is_bad_image_error` tells these per-file errors from the machine's (out of memory or file
handles), which data modules never skip.

Images are bounded by Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` (89.5 M pixels by default; None:
no bound), read from the header before anything is decoded, so one small file cannot take
seconds and gigabytes (a 12000² PNG of 420 KB decodes to 432 MB of pixels). Pillow only warns up
to twice its bound; here a file over it is a bad image — except a JPEG, which libjpeg decodes at
1/2, 1/4 or 1/8 scale (DCT scaling: Pillow's ``draft``) until it fits; its pixels then differ
slightly from a full decode followed by a resize. Images within the bound (every image of the
paper's data sets) are decoded exactly, as above.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, JpegImagePlugin

_SIXTEEN_BIT_GRAY = ("I;16", "I;16B", "I;16L", "I;16N")
# What Pillow's parsers and decoders raise on bad content (struct/index errors come from
# malformed headers); a missing file fails before, while reading the bytes.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)


class ImageDecodeError(ValueError):
    """An image file is empty, truncated, corrupt, too large or not an image."""


_SKIP_HINT = "(data modules skip bad files with skip_bad_images: true)"
_PATH_HINTS = {
    errno.ENOENT: "the file is missing (or a link to nothing): restore it, or fix the listing",
    errno.EISDIR: "it is a directory, not an image file: move it out of the data set",
    errno.ELOOP: "a symbolic link loop: fix or delete the link",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the listing that names it",
    errno.EACCES: "permission denied: make the file readable (chmod a+r)",
    errno.EPERM: "permission denied: make the file readable (chmod a+r)",
}
_MACHINE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM}


def is_bad_image_error(error: BaseException) -> bool:
    """Whether ``error`` (from :func:`decode_image`) is the file's fault — content that does not
    decode or a path that cannot be read — rather than the machine's (out of memory, out of file
    handles), which no file skipping should hide."""
    if isinstance(error, ImageDecodeError):
        return True
    return isinstance(error, OSError) and error.errno not in _MACHINE_ERRNOS


def _path_error(error: OSError, path: Path) -> OSError:
    """The same ``OSError`` subclass (``OSError(errno, ...)`` picks it), saying what to do."""
    if error.errno in _MACHINE_ERRNOS:
        return error
    hint = _PATH_HINTS.get(error.errno or 0, "check the file and the disk it is on")
    return OSError(
        error.errno, f"cannot read image ({error.strerror}): {hint} {_SKIP_HINT}", str(path)
    )


def read_image_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file, or an ``OSError`` / :class:`ImageDecodeError` that says what
    is wrong with the path. Opened non-blocking: a FIFO would otherwise block forever."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise _path_error(error, path) from error
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISREG(mode):
            with os.fdopen(descriptor, "rb", closefd=False) as handle:
                return handle.read()
    except OSError as error:
        raise _path_error(error, path) from error
    finally:
        os.close(descriptor)
    if stat.S_ISDIR(mode):
        raise _path_error(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), path)
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket or device"
    raise ImageDecodeError(
        f"cannot read image {path}: it is {kind}, not a regular file; move it out of the data "
        f"set {_SKIP_HINT}"
    )


def _over_bound(label: str, width: int, height: int, bound: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"cannot decode image {label}: it is {width}×{height} = {width * height:,} pixels, over "
        f"the bound of {bound:,} (PIL.Image.MAX_IMAGE_PIXELS) that keeps one file from taking "
        "seconds and gigabytes to decode: downscale the file (a few thousand pixels a side is "
        f"plenty for training), or raise PIL.Image.MAX_IMAGE_PIXELS {_SKIP_HINT}"
    )


def _bound_size(image: Image.Image, label: str) -> bool:
    """Keep ``image`` within ``PIL.Image.MAX_IMAGE_PIXELS`` before it is decoded: a JPEG is
    drafted to 1/2, 1/4 or 1/8 scale (returns True); anything else over the bound is an error."""
    bound = Image.MAX_IMAGE_PIXELS
    width, height = image.size
    if bound is None or width * height <= bound:
        return False
    if isinstance(image, JpegImagePlugin.JpegImageFile):  # also MPO, many cameras' JPEGs
        for scale in (2, 4, 8):
            if -(-width // scale) * -(-height // scale) <= bound:
                image.draft(None, (width // scale, height // scale))
                return True
    raise _over_bound(label, width, height, bound)


def pil_to_rgb(image: Image.Image, label: str) -> Image.Image:
    """``image`` as 8-bit RGB, as every decoded file becomes (CMYK, grayscale, palette,
    16-bit and alpha modes converted); 32-bit and float pixels refused (``label`` names the
    image in the error)."""
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "floating-point"
        raise ImageDecodeError(
            f"cannot decode image {label}: it has {kind} pixels (mode {image.mode}), which have "
            "no single meaning as 8-bit RGB (converting would clip or blacken them); save it as "
            f"an 8-bit image {_SKIP_HINT}"
        )
    if image.mode in _SIXTEEN_BIT_GRAY:
        high_byte = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(high_byte, "L").convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _decode_plain_jpeg(image: Image.Image, data: bytes) -> torch.Tensor | None:
    """An RGB or grayscale JPEG (at full size) decoded by torchvision's libjpeg-turbo straight
    into a CHW tensor, ≈ 30 % faster than through Pillow; None for anything else (CMYK, MPO,
    damaged files), which Pillow decodes or refuses with our message, and when torchvision has
    no image IO (deprecated since 0.29 in favour of TorchCodec). Both use libjpeg's default
    integer-accurate DCT and fancy upsampling, so the pixels are the same (tested)."""
    if type(image) is not JpegImagePlugin.JpegImageFile or image.mode not in ("RGB", "L"):
        return None
    with warnings.catch_warnings():  # torchvision warns on every call since 0.29
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from torchvision.io import ImageReadMode, decode_jpeg
        except ImportError:  # a torchvision without image IO: Pillow decodes it
            return None
        try:
            encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return decode_jpeg(encoded, mode=ImageReadMode.RGB)
        except RuntimeError:  # truncated or corrupt: Pillow raises with the file's name below
            return None


def decode_image(
    source: str | os.PathLike[str] | bytes, *, name: str | None = None
) -> torch.Tensor:
    """RGB ``uint8`` tensor ``[3, H, W]`` of an image file or of its bytes.

    ``name`` labels ``bytes`` input in error messages (e.g. the shard and key it came from).
    A missing or unreadable path raises the usual ``OSError`` subclass (``FileNotFoundError``,
    ``IsADirectoryError`` …) with a message that says what to do; a path that is no regular
    file (a FIFO), content that cannot be decoded and images over the pixel bound raise
    :class:`ImageDecodeError`. The tensor is a channels-first view of an HWC buffer (call
    ``.contiguous()`` if needed).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (some library set it), which silently "
            "decodes truncated files into partly grey images; set it back to False — bad files "
            "can be skipped instead"
        )
    if isinstance(source, bytes):
        data, label = source, name or f"<{len(source)} bytes>"
    else:
        data, label = read_image_file(source), name or str(source)
    if not data:
        raise ImageDecodeError(
            f"cannot decode image {label}: the file is empty. Re-download it, or delete it "
            f"{_SKIP_HINT}"
        )
    try:
        with warnings.catch_warnings():  # over the bound is an error (or a draft) below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
        with opened as image:
            drafted = _bound_size(image, label)
            fast = None if drafted else _decode_plain_jpeg(image, data)
            if fast is not None:
                return fast
            image.load()
            rgb = pil_to_rgb(image, label)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:  # Pillow's own refusal, over twice the bound
        raise ImageDecodeError(
            f"cannot decode image {label}: {error} It is over twice PIL.Image.MAX_IMAGE_PIXELS: "
            f"downscale the file, or raise PIL.Image.MAX_IMAGE_PIXELS {_SKIP_HINT}"
        ) from error
    except _DECODE_ERRORS as error:
        raise ImageDecodeError(
            f"cannot decode image {label}: {error}. The file is truncated, corrupt or not an "
            f"image: re-download it, or delete it {_SKIP_HINT}"
        ) from error
    array = np.array(rgb, dtype=np.uint8)  # one writable copy out of Pillow
    return torch.from_numpy(array).permute(2, 0, 1)  # a CHW view; no second copy
