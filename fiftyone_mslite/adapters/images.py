"""Image files → RGB pixels, one policy for every entry point (CLI predict, annotate, apply_model).

Real collections hold grayscale, RGBA, CMYK, 16-bit, palette and EXIF-rotated files, and the odd huge or
broken one. Each is decoded to what FiftyOne itself would hand a model (RGB uint8, orientation applied,
alpha dropped), or refused with a message that names the file. Only regular files are read, and at most
MAX_FILE_BYTES of them. JPEG draft mode (DCT-domain downscaling by 1/2, 1/4 or 1/8 while decoding) is used
only down to the size the model's resize step needs, and also decodes JPEGs too large to hold in memory at
full size.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from ..errors import ImageDecodeError
from ..files import UnreadableFile, open_regular
from .preprocessing import ImageFit, PreprocessConfig

ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


def needed_size(size: tuple[int, int], input_hw: tuple[int, int], cfg: PreprocessConfig) -> tuple[int, int]:
    """Smallest (w, h) an image of `size` may be decoded at without changing what pre-processing scales
    from: the size its resize step would produce (never more than `size`)."""
    w, h = size
    if cfg.resize == "squash":
        rw, rh = round(input_hw[1] / cfg.crop_fraction), round(input_hw[0] / cfg.crop_fraction)
    else:
        scale = round(min(input_hw) / cfg.crop_fraction) / min(w, h)
        rw, rh = math.ceil(w * scale), math.ceil(h * scale)
    return min(w, rw), min(h, rh)


MAX_FILE_BYTES = 1 << 30  # what reading one image may cost; above Pillow's pixel limit even for 16-bit RGBA TIFF

def _open_file(path: str | Path) -> BinaryIO:
    """`files.open_regular` with MAX_FILE_BYTES, its refusals worded for an image: a FIFO would block the reading
    thread forever (and with it Ctrl-C), a device would never end."""
    try:
        return open_regular(path, MAX_FILE_BYTES, "one image")
    except UnreadableFile as exc:
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None


def _open(f: BinaryIO) -> Image.Image:
    """Image.open, except that a JPEG above Pillow's decompression-bomb limit still opens (lazily: nothing
    is decoded yet) so that draft mode can decode it at a fraction of its size."""
    try:
        return Image.open(f)
    except Image.DecompressionBombError:
        f.seek(0)
        if f.read(3) != b"\xff\xd8\xff":
            raise
        f.seek(0)
        return JpegImagePlugin.JpegImageFile(f)


_LARGE_HINT = "only JPEGs that large are decoded (at reduced size); downscale the image"

# Pillow warns (DecompressionBombWarning) about images between its pixel limit and twice that; this module decides
# about those itself (draft-decoded if JPEG, else refused with the file named), so the warning is only noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _too_large(img: Image.Image, max_pixels: int) -> str:
    w, h = img.size
    return (f"too large: {w}x{h} ({w * h / 1e6:.0f} Mpx) is above the decoding limit of {max_pixels / 1e6:.0f} Mpx "
            f"(PIL.Image.MAX_IMAGE_PIXELS); {_LARGE_HINT}")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB. 16/32-bit integer images are scaled (Pillow's convert would clip at 255)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):
        pixels = np.asarray(img).astype(np.int64)
        img = Image.fromarray((np.clip(pixels, 0, 65535) >> 8).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def open_rgb(path: str | Path, fit: ImageFit | None = None, draft: bool = True,
             max_pixels: int | None = None) -> Image.Image:
    """Decode as an RGB PIL image, following EXIF orientation.

    With `fit` (the model input's size and recipe) and `draft`, JPEGs are decoded in draft mode
    down to `needed_size`. Images above `max_pixels` (default: Pillow's MAX_IMAGE_PIXELS) are always
    draft-decoded if JPEG (down to `needed_size`, or 1/8 without `fit`), else refused.
    """
    max_pixels = max_pixels or Image.MAX_IMAGE_PIXELS or 1 << 62
    try:
        with _open_file(path) as f, _open(f) as img:
            oversized = img.width * img.height > max_pixels
            if img.format == "JPEG" and ((fit and draft) or oversized):
                rotated = img.getexif().get(ORIENTATION, 1) in _SWAPS_AXES
                w, h = img.size[::-1] if rotated else img.size
                need = needed_size((w, h), *fit) if fit else (1, 1)
                img.draft("RGB", need[::-1] if rotated else need)
            if img.width * img.height > max_pixels:
                raise ImageDecodeError(f"cannot decode image {path}: {_too_large(img, max_pixels)}")
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # not the default: that copies every unrotated image
            return to_rgb(img)
    except FileNotFoundError:
        raise ImageDecodeError(f"image not found: {path}") from None
    except UnidentifiedImageError:
        empty = Path(path).stat().st_size == 0
        raise ImageDecodeError(f"cannot decode image {path}: "
                               f"{'empty file (0 bytes)' if empty else 'not an image Pillow can read'}") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"cannot decode image {path}: too large: {exc} {_LARGE_HINT}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None


def load_image(path: str | Path) -> np.ndarray:
    """Decode as RGB uint8 HWC at full size (see `open_rgb`)."""
    return np.asarray(open_rgb(path))
