"""Image → model tensor: resize policy, crop, scaling, mean/std, layout and dtype.

Starts from what FiftyOne hands a model (RGB uint8 HWC) and ends at exactly the tensor a loaded
session expects, reading layout/size/dtype from the session's TensorSpec, not from a catalog entry.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, fields
from functools import lru_cache
from typing import Annotated, Literal, NamedTuple, Optional

import numpy as np
from PIL import Image
from pydantic import ConfigDict, Field, PositiveInt
from pydantic.dataclasses import dataclass

from ..runtime.tensors import TensorSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
DEFAULT_CROP = {"short": 0.875, "squash": 1.0}  # timm's/torchvision's crop after a short-side resize; none after squash


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class PreprocessConfig:
    """How a model wants its pixels: the one pre-processing config, from catalog entry to tensor (values on the
    0..1 scale, as timm and torchvision state them). It is also the catalog schema's `preprocess` field, so a
    bad value is refused with the entry and field named."""

    input_size: Optional[PositiveInt] = None  # None: read from the loaded model
    resize: Literal["short", "squash"] = "short"  # short: scale the short side, then centre-crop
    # crop size / resize size (1.0: no crop); None: DEFAULT_CROP of `resize`, so that a squash (whose users
    # state the exact input size, e.g. 32x32 CIFAR) is not silently cropped
    crop_fraction: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN  # in the model's channel order
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: Literal["RGB", "BGR"] = "RGB"  # BGR: Caffe/OpenCV-trained models

    def __post_init__(self) -> None:
        if self.crop_fraction is None:
            object.__setattr__(self, "crop_fraction", DEFAULT_CROP[self.resize])

    def to_dict(self) -> dict:
        """JSON-ready (lists, not tuples), so that stored run settings compare equal to fresh ones. The channel
        order appears only when it is not RGB, so settings recorded before it existed still compare equal."""
        d = {**asdict(self), "mean": list(self.mean), "std": list(self.std)}
        if self.channel_order == "RGB":
            del d["channel_order"]
        return d

    def with_changes(self, **changes: object) -> PreprocessConfig:
        """This recipe with `changes` (None values: not given). A new resize policy without a crop gets that
        policy's default crop: a crop chosen for one policy is wrong for the other."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes.get("resize", self.resize) != self.resize and "crop_fraction" not in changes:
            changes["crop_fraction"] = None
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for people: what `models add` resolved and `models calibrate` tried."""
        crop = "no crop" if self.crop_fraction == 1.0 else f"crop {self.crop_fraction:g}"
        size = f"{self.input_size}x{self.input_size}" if self.input_size else "size from the model"
        mean, std = (", ".join(f"{v:.4g}" for v in t) for t in (self.mean, self.std))
        return (f"{size}, resize {self.resize}, {crop}, {self.interpolation}, mean ({mean}), std ({std}), "
                f"{self.channel_order}")


PREPROCESS_FIELDS = tuple(f.name for f in fields(PreprocessConfig))


class ImageFit(NamedTuple):
    """Where a decoded image goes: the model input's (height, width) and the recipe that resizes it there, which is
    what a decoder needs to decode no more pixels than the recipe uses (JPEG draft mode)."""

    input_hw: tuple[int, int]
    config: PreprocessConfig


def input_hw(spec: TensorSpec) -> tuple[int, int]:
    """Height and width of an image input, from its shape and layout."""
    if spec.layout == "NHWC":
        return spec.shape[1], spec.shape[2]
    if spec.layout == "NCHW":
        return spec.shape[2], spec.shape[3]
    raise ValueError(f"input '{spec.name}' with shape {spec.shape} is not an image tensor (NHWC or NCHW)")


def resize_and_crop(image: Image.Image, size: tuple[int, int], cfg: PreprocessConfig) -> Image.Image:
    """Geometric part of pre-processing, on a PIL image: resize then centre-crop, done as one resize of the
    crop's source box (same pixels, ~40 % less work than resizing the whole image and cropping after)."""
    h, w = size
    if cfg.resize == "squash":
        rw, rh = round(w / cfg.crop_fraction), round(h / cfg.crop_fraction)
    else:
        scale = round(min(h, w) / cfg.crop_fraction) / min(image.size)
        rw, rh = max(w, round(image.width * scale)), max(h, round(image.height * scale))
    sx, sy = image.width / rw, image.height / rh
    left, top = (rw - w) // 2, (rh - h) // 2
    box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
    return image.resize((w, h), _FILTERS[cfg.interpolation], box=box)


@lru_cache(maxsize=16)
def _affine_rows(cfg: PreprocessConfig, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(x - mean) / std as x * scale + offset, tiled over a whole image row: numpy broadcasting against a
    3-element axis runs 3-element inner loops, ~10x slower than one row-long loop."""
    std = np.asarray(cfg.std, np.float64)
    scale, offset = 1.0 / (255.0 * std), -np.asarray(cfg.mean, np.float64) / std
    return np.tile(scale, width).astype(np.float32), np.tile(offset, width).astype(np.float32)


def to_tensor(pixels: np.ndarray, spec: TensorSpec, cfg: PreprocessConfig, out: np.ndarray | None = None
              ) -> np.ndarray:
    """HWC uint8 (already at the input size) → one sample of `spec` (no batch dim). With `out` (a C-contiguous
    array of the sample's shape and dtype, e.g. one row of a batch), the sample is written there and returned:
    a batch is then filled in place, without stacking copies."""
    if cfg.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    h, w, c = pixels.shape
    direct = out is not None and spec.layout != "NCHW" and spec.dtype == "float32"
    if spec.dtype in ("uint8", "int8"):
        # Quantized graphs take raw pixels; int8 ones centred on zero.
        sample = pixels if spec.dtype == "uint8" else (pixels.astype(np.int16) - 128).astype(np.int8)
    else:
        scale, offset = _affine_rows(cfg, w)
        rows = out.reshape(h, w * c) if direct else None
        sample = np.multiply(pixels.reshape(h, w * c), scale, out=rows, dtype=np.float32)  # once per image
        sample += offset
        sample = sample.reshape(h, w, c).astype(spec.dtype, copy=False)
    if spec.layout == "NCHW":
        sample = sample.transpose(2, 0, 1)
    if out is None:
        return np.ascontiguousarray(sample)
    if not direct:
        out[...] = sample
    return out


def preprocess(image: np.ndarray | Image.Image, spec: TensorSpec, cfg: PreprocessConfig,
               out: np.ndarray | None = None) -> np.ndarray:
    """RGB image (array HWC uint8 or PIL) → one sample for the session input `spec` (written into `out` if given,
    see `to_tensor`)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    cropped = resize_and_crop(image, input_hw(spec), cfg)
    return to_tensor(np.asarray(cropped), spec, cfg, out)
